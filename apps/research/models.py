"""Parameter optimisations: an Optuna search over a strategy's parameters on a recording, with
walk-forward validation, run as Celery tasks on the ``backtests`` queue."""

from django.conf import settings
from django.db import models

from apps.backtests.models import RunStatus


class Optimisation(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="optimisations")
    name = models.CharField(max_length=128)
    strategy = models.CharField(max_length=64)
    base_params = models.JSONField(default=dict, blank=True)
    search_space = models.JSONField(default=dict)
    sampler = models.CharField(max_length=8, default="tpe")  # tpe | grid
    objective = models.CharField(max_length=40)
    constraints = models.JSONField(default=dict, blank=True)
    recording = models.CharField(max_length=64)  # a shipped recording's name or user:<id>
    max_events = models.PositiveIntegerField(null=True, blank=True)
    folds = models.PositiveSmallIntegerField(default=0)  # 0: one study on everything, no out-of-sample
    n_trials = models.PositiveIntegerField()
    parallel = models.PositiveSmallIntegerField(default=2)  # trial tasks per fold, spread over workers
    oos_min = models.DecimalField(max_digits=38, decimal_places=18, null=True, blank=True)
    status = models.CharField(max_length=12, choices=RunStatus.choices, default=RunStatus.QUEUED)
    fold = models.PositiveSmallIntegerField(default=0)  # the fold being optimised
    trials_done = models.PositiveIntegerField(default=0)
    progress = models.PositiveSmallIntegerField(default=0)
    eta_seconds = models.FloatField(null=True, blank=True)
    results = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    created = models.DateTimeField(auto_now_add=True)
    started = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created",)
        indexes = [models.Index(fields=("owner", "-created"))]

    def __str__(self) -> str:
        return f"{self.name} ({self.strategy}, {self.status})"

    def study_name(self, fold: int) -> str:
        return f"mm-opt-{self.pk}-fold-{fold}"


class UserRecording(models.Model):
    """A recording a user uploaded (or ``record_feed`` wrote): gzip files of ``<local_ns> <json>``
    lines of one market, validated and measured when registered (``apps.research.recordings``).
    ``record_feed`` registers what it writes under its ``--owner`` (default: the inactive system
    user ``recorder``, whose recordings operators see and use); its files join one stream."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="recordings")
    name = models.CharField(max_length=128)
    market = models.ForeignKey("exchanges.Market", on_delete=models.PROTECT, related_name="+")
    files = models.JSONField(default=list)  # paths relative to settings.RECORDINGS_DIR, in order
    size_bytes = models.BigIntegerField(default=0)
    first_ts = models.DateTimeField(null=True)
    last_ts = models.DateTimeField(null=True)
    lines = models.BigIntegerField(default=0)
    counts = models.JSONField(default=dict)  # snapshots, deltas, tops, trades, unknown
    bad_lines = models.BigIntegerField(default=0)  # all of them
    bad_samples = models.JSONField(default=list)  # the first 20: {"file", "line", "reason"}
    bad_reasons = models.JSONField(default=dict)  # every rejected line counted by why: {reason: count}
    source = models.CharField(max_length=16, default="upload")  # upload | record_feed
    gaps = models.IntegerField(default=0)  # times the book lost its sequence
    unsynced_seconds = models.FloatField(default=0.0)  # time without a synced book
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("-created",)
        constraints = [models.UniqueConstraint(fields=["owner", "name"], name="recording_owner_name_uniq")]

    def __str__(self) -> str:
        return f"{self.name} ({self.market})"


class SimulatorProfile(models.Model):
    """A fill-simulation profile fitted from a bot's own orders: its place->ack and cancel->ack
    round trips as quantile tables (p0 .. p100, ns) and the queue model to use, used by backtests
    and shadow backtests that name it (``data_params.profile``)."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="simulator_profiles")
    name = models.CharField(max_length=128)
    bot = models.ForeignKey("bots.Bot", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    start = models.DateTimeField()
    end = models.DateTimeField()
    place_ack_ns = models.JSONField(help_text="place->ack quantiles p0..p100, ns")
    cancel_ack_ns = models.JSONField(help_text="cancel->ack quantiles p0..p100, ns")
    place_samples = models.PositiveIntegerField()
    cancel_samples = models.PositiveIntegerField()
    cancel_source = models.CharField(max_length=16)  # measured | place_ack (no cancel timings)
    queue_model = models.CharField(max_length=16, default="risk_averse")  # risk_averse | probabilistic
    queue_power = models.FloatField(null=True, blank=True)
    live = models.JSONField(default=dict, blank=True, help_text="the bot's own figures over the period")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created", "-id"]
        constraints = [models.UniqueConstraint(fields=["owner", "name"], name="simprofile_owner_name_uniq")]

    def __str__(self) -> str:
        return f"{self.name} (bot #{self.bot_id})"
