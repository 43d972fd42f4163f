"""Cross-venue arbitrage opportunities (a market-wide time series) and each user's tracker settings."""

from django.conf import settings
from django.db import models
from timescale.db.models.fields import TimescaleDateTimeField

MONEY = {"max_digits": 38, "decimal_places": 18}
BPS = {"max_digits": 18, "decimal_places": 4}


class Opportunity(models.Model):
    """Buy ``size`` on ``buy_venue`` and sell it on ``sell_venue`` at ``ts``.

    ``gross_edge_bps`` is (sell - buy) / buy before costs; ``net_edge_bps`` and ``net_profit``
    (quote currency) are after taker fees on both legs, slippage from walking each book for the
    size, and the staleness/latency discount. ``realized_*`` are filled in after paper execution.
    """

    ts = TimescaleDateTimeField(interval="1 day")
    symbol = models.CharField(max_length=64)
    buy_venue = models.CharField(max_length=64)
    sell_venue = models.CharField(max_length=64)
    buy_price = models.DecimalField(**MONEY)
    sell_price = models.DecimalField(**MONEY)
    size = models.DecimalField(**MONEY)
    gross_edge_bps = models.DecimalField(**BPS)
    net_edge_bps = models.DecimalField(**BPS)
    net_profit = models.DecimalField(**MONEY)
    fees = models.DecimalField(**MONEY, default=0)
    slippage = models.DecimalField(**MONEY, default=0)
    staleness_ms = models.PositiveIntegerField(default=0)
    latency_ms = models.PositiveIntegerField(default=0)
    executed = models.BooleanField(default=False)
    realized_edge_bps = models.DecimalField(**BPS, null=True, blank=True)
    realized_profit = models.DecimalField(**MONEY, null=True, blank=True)

    class Meta:
        verbose_name_plural = "opportunities"
        indexes = [
            models.Index(fields=["symbol", "-ts"], name="arb_opp_symbol_ts"),
            models.Index(fields=["-ts"], name="arb_opp_ts"),
        ]

    def __str__(self) -> str:
        return f"{self.symbol} {self.buy_venue}->{self.sell_venue} {self.net_edge_bps} bps"


class ArbitrageSettings(models.Model):
    """One user's tracker settings. Empty ``symbols``/``venues`` mean all."""

    owner = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="arbitrage_settings")
    min_profit = models.DecimalField(**MONEY, default=0, help_text="minimum net profit per opportunity, quote")
    notify_threshold_bps = models.DecimalField(**BPS, default=10)
    paper_execute = models.BooleanField(default=False)
    symbols = models.JSONField(default=list, blank=True)
    venues = models.JSONField(default=list, blank=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "arbitrage settings"

    def __str__(self) -> str:
        return f"arbitrage settings of {self.owner_id}"
