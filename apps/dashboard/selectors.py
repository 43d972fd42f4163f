"""Reads of portal preferences."""

from __future__ import annotations

from typing import Any

from apps.dashboard.models import RiskDefaults


def risk_defaults_get(*, user) -> dict[str, Any]:
    """The user's default risk limits for new bots (``{}``: the engine's defaults)."""
    row = RiskDefaults.objects.filter(owner=user).first()
    return dict(row.risk) if row else {}
