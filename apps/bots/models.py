"""Bots: configuration (strategy, params, risk), lifecycle states, config history and events."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from timescale.db.models.fields import TimescaleDateTimeField


class DesiredState(models.TextChoices):
    RUNNING = "running", "Running"
    PAUSED = "paused", "Paused"
    STOPPED = "stopped", "Stopped"


class ActualState(models.TextChoices):
    STOPPED = "stopped", "Stopped"
    STARTING = "starting", "Starting"
    RUNNING = "running", "Running"
    PAUSED = "paused", "Paused"
    STOPPING = "stopping", "Stopping"
    ERROR = "error", "Error"


RISK_PAUSE_REASON_MAX = 500


class RiskPausedBy(models.TextChoices):
    """What holds a bot risk-paused (``Bot.risk_paused_by``). The risk sweep's auto-resume clears
    only its own pauses; the trader's start or resume clears any."""

    RISK_SWEEP = "risk_sweep", "the risk sweep"
    LIQUIDATION = "liquidation", "a liquidation"


AUTO_RESUMABLE = (RiskPausedBy.RISK_SWEEP,)


class Bot(models.Model):
    """A quoting bot on one market of one exchange account."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="bots")
    name = models.CharField(max_length=80)
    exchange_account = models.ForeignKey("exchanges.ExchangeAccount", on_delete=models.PROTECT, related_name="bots")
    market = models.ForeignKey("exchanges.Market", on_delete=models.PROTECT, related_name="bots")
    strategy = models.CharField(max_length=40)
    params = models.JSONField(default=dict, blank=True)
    risk = models.JSONField(default=dict, blank=True)
    desired_state = models.CharField(max_length=16, choices=DesiredState.choices, default=DesiredState.STOPPED)
    actual_state = models.CharField(max_length=16, choices=ActualState.choices, default=ActualState.STOPPED)
    state_reason = models.TextField(blank=True, default="")
    # The risk sweep's pause (workers/risk.py), part of the bot's state: the loop, its next
    # owner after a take-over and the supervisor read it here with the desired state, so a
    # Redis that lost its keys cannot let a risk-paused bot quote again. Set with the sweep's
    # incident and event (or by a paper perpetual's liquidation), ``risk_paused_by`` saying which;
    # cleared by auto-resume (the sweep's own pauses only) or by the trader's start/resume (an
    # override) or stop.
    risk_paused_reason = models.CharField(
        max_length=RISK_PAUSE_REASON_MAX,
        blank=True,
        default="",
        help_text="why the risk sweep holds the bot paused (empty when it does not)",
    )
    risk_paused_at = models.DateTimeField(
        null=True, blank=True, help_text="when the risk sweep paused the bot (null when it does not hold it paused)"
    )
    risk_paused_by = models.CharField(
        max_length=16,
        choices=RiskPausedBy.choices,
        blank=True,
        default="",
        help_text="what holds the bot risk-paused (empty when nothing does); auto-resume clears only "
        "the risk sweep's pauses",
    )
    client_id_prefix = models.CharField(max_length=16, unique=True, null=True, blank=True, editable=False)
    shared_with = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="shared_bots")
    auto_resume = models.BooleanField(default=False)
    config_version = models.PositiveIntegerField(default=1)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["owner", "name"], name="bot_owner_name_uniq")]
        indexes = [models.Index(fields=["desired_state", "actual_state"])]

    def __str__(self) -> str:
        return f"{self.name} (#{self.pk})"


class BotConfigVersion(models.Model):
    """One version of a bot's configuration; every change adds one."""

    bot = models.ForeignKey(Bot, on_delete=models.CASCADE, related_name="config_versions")
    version = models.PositiveIntegerField()
    strategy = models.CharField(max_length=40)
    params = models.JSONField(default=dict)
    risk = models.JSONField(default=dict)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    ts = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["bot", "-version"]
        constraints = [models.UniqueConstraint(fields=["bot", "version"], name="botconfigversion_bot_version_uniq")]

    def __str__(self) -> str:
        return f"{self.bot_id} v{self.version}"


class BotEvent(models.Model):
    """Something that happened to a bot (state change, risk breach, error, ...). Time series."""

    ts = TimescaleDateTimeField(interval="1 day")
    bot = models.ForeignKey(Bot, on_delete=models.CASCADE, related_name="events", db_index=False)  # (bot, ts) index
    kind = models.CharField(max_length=32)
    code = models.CharField(max_length=64, blank=True, default="")
    message = models.TextField(blank=True, default="")
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-ts"]
        indexes = [models.Index(fields=["bot", "ts"])]

    def __str__(self) -> str:
        return f"{self.bot_id} {self.ts:%Y-%m-%d %H:%M:%S} {self.kind} {self.code}"


class HedgeFillAttribution(models.Model):
    """One maker fill of a hosted hedged bot paired with the hedge fills that covered it
    (:mod:`trading.hedge_attribution`): expected vs realized edge (quote currency), hedge
    slippage (bps, positive = worse) and hedge latency. Written once the fill is covered, or
    while it is still open (``open_qty`` > 0) when its bot stops; updated as it gets covered."""

    bot = models.ForeignKey(Bot, on_delete=models.CASCADE, related_name="hedge_attributions")
    maker_trade_id = models.CharField(max_length=64)
    ts = models.DateTimeField()
    side = models.CharField(max_length=4)
    price = models.DecimalField(max_digits=38, decimal_places=18)
    quantity = models.DecimalField(max_digits=38, decimal_places=18)
    expected_hedge_price = models.DecimalField(max_digits=38, decimal_places=18, null=True, blank=True)
    hedge_vwap = models.DecimalField(max_digits=38, decimal_places=18, null=True, blank=True)
    hedged_quantity = models.DecimalField(max_digits=38, decimal_places=18)
    netted_quantity = models.DecimalField(max_digits=38, decimal_places=18)
    open_quantity = models.DecimalField(max_digits=38, decimal_places=18)
    expected_edge = models.DecimalField(max_digits=38, decimal_places=18, null=True, blank=True)
    realized_edge = models.DecimalField(max_digits=38, decimal_places=18)
    slippage_bps = models.DecimalField(max_digits=20, decimal_places=6, null=True, blank=True)
    hedge_latency_ms = models.DecimalField(max_digits=20, decimal_places=6, null=True, blank=True)
    covered_latency_ms = models.DecimalField(max_digits=20, decimal_places=6, null=True, blank=True)

    class Meta:
        ordering = ["-ts"]
        constraints = [
            models.UniqueConstraint(fields=["bot", "maker_trade_id"], name="hedgefillattribution_bot_trade_uniq")
        ]

    def __str__(self) -> str:
        return f"{self.bot_id} {self.maker_trade_id} {self.side} {self.quantity}"
