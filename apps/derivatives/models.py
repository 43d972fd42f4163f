"""Stored funding rates of perpetual markets, for backtests (``FundingSchedule``) and display."""

from django.db import models


class FundingRate(models.Model):
    """The rate applied at one funding time of one perpetual market (a positive rate: longs pay)."""

    venue = models.CharField(max_length=64)
    symbol = models.CharField(max_length=64)
    ts = models.DateTimeField()
    rate = models.DecimalField(max_digits=12, decimal_places=10)
    source = models.CharField(max_length=16, default="csv")  # csv | ccxt

    class Meta:
        ordering = ("venue", "symbol", "ts")
        constraints = [models.UniqueConstraint(fields=["venue", "symbol", "ts"], name="funding_rate_uniq")]

    def __str__(self) -> str:
        return f"{self.venue} {self.symbol} {self.ts:%Y-%m-%d %H:%M} {self.rate}"
