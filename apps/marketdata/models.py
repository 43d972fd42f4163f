"""Market data stored by the feeds: top-of-book and depth snapshots, public trades.

All three are time series (hypertables on TimescaleDB, segmented by market for compression);
any unique constraint includes ``ts`` because a hypertable has no other primary key.
"""

from django.db import models
from timescale.db.models.fields import TimescaleDateTimeField

MONEY = {"max_digits": 38, "decimal_places": 18}


class TopOfBookSnapshot(models.Model):
    """Best bid and ask of a market at ``ts``."""

    ts = TimescaleDateTimeField(interval="1 day")
    market = models.ForeignKey("exchanges.Market", on_delete=models.CASCADE, related_name="+")
    bid = models.DecimalField(**MONEY)
    bid_qty = models.DecimalField(**MONEY)
    ask = models.DecimalField(**MONEY)
    ask_qty = models.DecimalField(**MONEY)

    class Meta:
        # The unique (market, ts) index also serves newest-first scans (read backwards).
        constraints = [models.UniqueConstraint(fields=["market", "ts"], name="md_tob_unique_market_ts")]

    def __str__(self) -> str:
        return f"{self.market_id} {self.ts:%Y-%m-%d %H:%M:%S} {self.bid}/{self.ask}"


class DepthSnapshot(models.Model):
    """Top-N levels of both sides at ``ts``: ``bids``/``asks`` are ``[[price, qty], ...]`` as
    decimal strings, best first."""

    ts = TimescaleDateTimeField(interval="1 day")
    market = models.ForeignKey("exchanges.Market", on_delete=models.CASCADE, related_name="+")
    bids = models.JSONField(default=list)
    asks = models.JSONField(default=list)
    mid = models.DecimalField(**MONEY, null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["market", "ts"], name="md_depth_unique_market_ts")]

    def __str__(self) -> str:
        return f"{self.market_id} {self.ts:%Y-%m-%d %H:%M:%S} depth {len(self.bids)}x{len(self.asks)}"


class Aggressor(models.TextChoices):
    BUY = "buy", "Buy"
    SELL = "sell", "Sell"


class Trade(models.Model):
    """A public trade print; ``aggressor`` is the taker's side."""

    ts = TimescaleDateTimeField(interval="1 day")
    market = models.ForeignKey("exchanges.Market", on_delete=models.CASCADE, related_name="+")
    price = models.DecimalField(**MONEY)
    qty = models.DecimalField(**MONEY)
    aggressor = models.CharField(max_length=4, choices=Aggressor.choices)
    trade_id = models.CharField(max_length=64)

    class Meta:
        indexes = [models.Index(fields=["market", "-ts"], name="md_trade_market_ts")]
        constraints = [
            models.UniqueConstraint(fields=["market", "trade_id", "ts"], name="md_trade_unique_market_id_ts")
        ]

    def __str__(self) -> str:
        return f"{self.market_id} {self.ts:%H:%M:%S} {self.aggressor} {self.qty}@{self.price}"
