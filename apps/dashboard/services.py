"""Writes of portal preferences."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db import transaction

from apps.accounts.errors import FieldErrors
from apps.dashboard.models import RiskDefaults
from trading.config import ConfigError
from trading.risk import RiskLimits


@transaction.atomic
def risk_defaults_set(*, user, risk: Mapping[str, Any]) -> RiskDefaults:
    """Save the risk limits new bots of ``user`` start with; raises ``FieldErrors`` per limit."""
    try:
        limits = RiskLimits.from_dict(dict(risk))
    except ConfigError as exc:
        raise FieldErrors({"risk": {k: [v] for k, v in exc.errors.items()}}) from None
    problems = limits.validate()
    if problems:
        raise FieldErrors({"risk": {k: [v] for k, v in problems.items()}})
    defaults, _ = RiskDefaults.objects.update_or_create(owner=user, defaults={"risk": dict(risk)})
    return defaults
