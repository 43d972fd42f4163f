"""Per-user portal preferences."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class RiskDefaults(models.Model):
    """The risk limits a user's new bots start with (validated by ``trading.risk.RiskLimits``)."""

    owner = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="risk_defaults")
    risk = models.JSONField(default=dict, blank=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "risk defaults"

    def __str__(self) -> str:
        return f"risk defaults of {self.owner_id}"
