"""Backtest runs (queued as Celery jobs, with progress, results and fills)."""

from django.conf import settings
from django.db import models

MONEY = {"max_digits": 38, "decimal_places": 18}


class DataSource(models.TextChoices):
    RECORDING = "recording", "Shipped recording"
    STORED = "stored", "Stored market data"
    SYNTHETIC_AS = "synthetic_as", "Avellaneda-Stoikov 2008 synthetic market"
    SYNTHETIC_MULTIVENUE = "synthetic_multivenue", "Synthetic multi-venue market"
    HEDGED_RECORDINGS = "hedged_recordings", "Two shipped recordings: maker venue + hedge venue"


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    CANCELLING = "cancelling", "Cancelling"
    CANCELLED = "cancelled", "Cancelled"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


ACTIVE_STATUSES = (RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.CANCELLING)
FINAL_STATUSES = (RunStatus.CANCELLED, RunStatus.SUCCEEDED, RunStatus.FAILED)


class BacktestRun(models.Model):
    """One backtest: what to run (strategy, params, risk, data) and what came out."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="backtest_runs")
    name = models.CharField(max_length=128)
    strategy = models.CharField(max_length=64)
    params = models.JSONField(default=dict, blank=True)
    risk = models.JSONField(default=dict, blank=True)
    data_source = models.CharField(max_length=24, choices=DataSource.choices)
    data_params = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=12, choices=RunStatus.choices, default=RunStatus.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0)
    eta_seconds = models.PositiveIntegerField(null=True, blank=True)
    cancel_requested = models.BooleanField(default=False)
    metrics = models.JSONField(default=dict, blank=True)
    equity_curve = models.JSONField(default=list, blank=True, help_text="[[ts_ms, equity], ...] downsampled")
    pnl_decomposition = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True, default="")
    created = models.DateTimeField(auto_now_add=True)
    started = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created", "-id"]
        indexes = [models.Index(fields=["owner", "-created"], name="bt_run_owner_created")]
        constraints = [
            models.CheckConstraint(condition=models.Q(progress__lte=100), name="bt_run_progress_max_100"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.strategy}, {self.status})"


class FillSide(models.TextChoices):
    BUY = "buy", "Buy"
    SELL = "sell", "Sell"


class FillLiquidity(models.TextChoices):
    MAKER = "maker", "Maker"
    TAKER = "taker", "Taker"


class BacktestFill(models.Model):
    """A simulated fill of a run."""

    run = models.ForeignKey(BacktestRun, on_delete=models.CASCADE, related_name="fills")
    ts = models.DateTimeField()
    side = models.CharField(max_length=4, choices=FillSide.choices)
    price = models.DecimalField(**MONEY)
    qty = models.DecimalField(**MONEY)
    fee = models.DecimalField(**MONEY, default=0)
    liquidity = models.CharField(max_length=5, choices=FillLiquidity.choices)

    class Meta:
        ordering = ["ts", "id"]
        indexes = [models.Index(fields=["run", "ts"], name="bt_fill_run_ts")]

    def __str__(self) -> str:
        return f"run {self.run_id} {self.side} {self.qty}@{self.price}"
