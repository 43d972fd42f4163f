"""Incidents: discrepancies the workers found between the venues and the database."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class IncidentKind(models.TextChoices):
    ORPHAN_ORDER = "orphan_order", "Orphan order on the venue"
    MISSING_ORDER = "missing_order", "Order open in the database, not on the venue"
    MISSING_FILL = "missing_fill", "Fill on the venue, not in the database"
    BALANCE_MISMATCH = "balance_mismatch", "Balance differs from the venue"
    POSITION_MISMATCH = "position_mismatch", "Perpetual position differs from the venue"
    STOP_UNCONFIRMED = "stop_unconfirmed", "Stop not confirmed by the venue"
    RISK = "risk", "Risk limit breached"
    HEDGE = "hedge", "Hedged bot stopped quoting"
    LIQUIDATION = "liquidation", "Paper perpetual position liquidated"


class Incident(models.Model):
    """One discrepancy, visible to the owner of the account/bot and to operators."""

    ts = models.DateTimeField(auto_now_add=True, db_index=True)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="incidents")
    bot = models.ForeignKey("bots.Bot", null=True, blank=True, on_delete=models.SET_NULL, related_name="incidents")
    account = models.ForeignKey(
        "exchanges.ExchangeAccount", null=True, blank=True, on_delete=models.SET_NULL, related_name="incidents"
    )
    kind = models.CharField(max_length=32, choices=IncidentKind.choices)
    message = models.TextField()
    data = models.JSONField(default=dict, blank=True)
    resolved = models.BooleanField(default=False)

    class Meta:
        ordering = ["-ts", "-id"]
        indexes = [models.Index(fields=["owner", "resolved"])]

    def __str__(self) -> str:
        return f"{self.ts:%Y-%m-%d %H:%M:%S} {self.kind}: {self.message[:60]}"
