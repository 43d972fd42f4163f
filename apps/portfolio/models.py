"""Balances per account and asset, and PnL snapshots per bot (time series)."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import models
from timescale.db.models.fields import TimescaleDateTimeField

MONEY = {"max_digits": 38, "decimal_places": 18}


class Balance(models.Model):
    """The latest known balance of one asset on one exchange account."""

    account = models.ForeignKey("exchanges.ExchangeAccount", on_delete=models.CASCADE, related_name="balances")
    asset = models.CharField(max_length=32)
    free = models.DecimalField(**MONEY, default=0)
    total = models.DecimalField(**MONEY, default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["account", "asset"]
        constraints = [models.UniqueConstraint(fields=["account", "asset"], name="balance_account_asset_uniq")]

    def __str__(self) -> str:
        return f"{self.account_id} {self.asset} {self.total}"


class PnlSnapshotQuerySet(models.QuerySet):
    def delete(self):
        """Delete, keeping the minute rollup right on TimescaleDB too (plain PostgreSQL's
        AFTER DELETE trigger does it there; see ``pnl_minutes_recompute``)."""
        from django.db import connections, transaction

        from apps.core.timeseries import Bucket, timescale_enabled
        from apps.portfolio.services import pnl_minutes_recompute

        if not timescale_enabled(connections[self.db]):
            return super().delete()
        with transaction.atomic(using=self.db):
            minute = Bucket(models.F("ts"), timedelta(minutes=1))
            keys = list(self.annotate(minute=minute).values_list("bot_id", "minute").distinct().order_by())
            result = super().delete()
            pnl_minutes_recompute(keys)
        return result


class PnlSnapshot(models.Model):
    """A bot's position and PnL at one moment (quote currency). Time series."""

    ts = TimescaleDateTimeField(interval="1 day")
    # Indexed by (bot, ts) below; no separate bot index and no database FK check per row (both
    # would only slow the bulk ingest); Django still cascades the delete of a bot.
    bot = models.ForeignKey(
        "bots.Bot", on_delete=models.CASCADE, related_name="pnl_snapshots", db_index=False, db_constraint=False
    )
    position = models.DecimalField(**MONEY)
    cash = models.DecimalField(**MONEY)
    mid = models.DecimalField(**MONEY, null=True, blank=True)
    realized = models.DecimalField(**MONEY)
    unrealized = models.DecimalField(**MONEY)
    fees = models.DecimalField(**MONEY)
    equity = models.DecimalField(**MONEY)
    peak_equity = models.DecimalField(**MONEY)
    drawdown = models.DecimalField(**MONEY)
    # A perpetual bot's funding booked so far (settle currency, + received / - paid); NULL on spot.
    funding = models.DecimalField(**MONEY, null=True, blank=True)

    objects = PnlSnapshotQuerySet.as_manager()

    class Meta:
        ordering = ["-ts"]
        indexes = [models.Index(fields=["bot", "ts"], name="pnlsnapshot_bot_ts")]

    def __str__(self) -> str:
        return f"{self.bot_id} {self.ts:%Y-%m-%d %H:%M:%S} equity={self.equity}"


class PnlMinute(models.Model):
    """PnL per bot and minute: last values, equity high/low and the largest drawdown.

    Not managed by Django: the same table on both databases, kept up to date for every insert
    (COPY, bulk_create, single rows) by a trigger on ``portfolio_pnlsnapshot``: statement-level
    on plain PostgreSQL, row-level on TimescaleDB (migrations 0005-0007). Re-bucketing these
    rows gives exactly what bucketing the raw snapshots gives, many times faster. Read it
    through :func:`apps.portfolio.selectors.pnl_series`.
    """

    pk = models.CompositePrimaryKey("bot", "minute")
    bot = models.ForeignKey("bots.Bot", on_delete=models.DO_NOTHING, db_constraint=False, related_name="+")
    minute = models.DateTimeField(db_column="bucket")  # start of the minute
    position = models.DecimalField(**MONEY)
    cash = models.DecimalField(**MONEY)
    mid = models.DecimalField(**MONEY, null=True)
    realized = models.DecimalField(**MONEY)
    unrealized = models.DecimalField(**MONEY)
    fees = models.DecimalField(**MONEY)
    equity = models.DecimalField(**MONEY)
    peak_equity = models.DecimalField(**MONEY)
    equity_high = models.DecimalField(**MONEY)
    equity_low = models.DecimalField(**MONEY)
    max_drawdown = models.DecimalField(**MONEY)

    class Meta:
        managed = False
        db_table = "portfolio_pnlminute"
        ordering = ["bot", "minute"]

    def __str__(self) -> str:
        return f"{self.bot_id} {self.minute:%Y-%m-%d %H:%M} equity={self.equity}"


class InventoryTarget(models.Model):
    """A user's target for one asset's net inventory over all their accounts and bots (base
    units), the risk limit on that net, and the optional portfolio hedge that keeps the net
    within ``band`` of the target by placing one order through ``hedge_bot``'s loop."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="inventory_targets")
    asset = models.CharField(max_length=32)
    target = models.DecimalField(**MONEY, default=0)
    max_net = models.DecimalField(**MONEY, null=True, blank=True)  # limit on |net|; null: no limit
    band = models.DecimalField(**MONEY, null=True, blank=True)  # hedge band: |net - target| <= band
    hedge_enabled = models.BooleanField(default=False)
    hedge_bot = models.ForeignKey("bots.Bot", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["owner", "asset"]
        constraints = [models.UniqueConstraint(fields=["owner", "asset"], name="inventory_target_owner_asset_uniq")]

    def __str__(self) -> str:
        return f"{self.owner_id} {self.asset} target {self.target}"
