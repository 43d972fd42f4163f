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


class FundingPayment(models.Model):
    """A funding payment the exchange booked on a live perpetual bot's position (Binance
    ``/fapi/v1/income`` ``FUNDING_FEE`` rows, ccxt ``fetchFundingHistory``): + received, - paid,
    in the settle currency. Unique per account, market and the exchange's id of the payment, so
    a payment read again (the next poll, a new owner after take-over) is stored once; the bot's
    funding figure after a take-over is the sum of its rows (``workers.perp_funding``)."""

    account = models.ForeignKey("exchanges.ExchangeAccount", on_delete=models.CASCADE, related_name="+")
    bot = models.ForeignKey("bots.Bot", on_delete=models.CASCADE, related_name="funding_payments")
    symbol = models.CharField(max_length=64)
    payment_id = models.CharField(max_length=64)
    ts = models.DateTimeField()
    amount = models.DecimalField(max_digits=38, decimal_places=18)
    currency = models.CharField(max_length=16)

    class Meta:
        ordering = ("bot", "ts")
        constraints = [models.UniqueConstraint(fields=["account", "symbol", "payment_id"], name="funding_payment_uniq")]
        indexes = [models.Index(fields=["bot", "ts"], name="funding_payment_bot_ts")]

    def __str__(self) -> str:
        return f"{self.symbol} {self.ts:%Y-%m-%d %H:%M} {self.amount} {self.currency}"
