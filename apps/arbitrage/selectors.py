"""Reads of the arbitrage tracker. Opportunities are market-wide data: every authenticated
user may read them. Settings are per user."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from django.db.models import Q, QuerySet

from apps.arbitrage.models import ArbitrageSettings, Opportunity


def opportunity_list(
    *,
    user,
    symbol: str | None = None,
    venues: Sequence[str] = (),
    min_net_edge_bps: Decimal | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    executed: bool | None = None,
) -> QuerySet[Opportunity]:
    """Opportunities newest first. ``venues``: both legs on these venues (empty: any)."""
    if not user.is_authenticated:
        return Opportunity.objects.none()
    rows = Opportunity.objects.all()
    if symbol:
        rows = rows.filter(symbol=symbol)
    if venues:
        rows = rows.filter(Q(buy_venue__in=venues) & Q(sell_venue__in=venues))
    if min_net_edge_bps is not None:
        rows = rows.filter(net_edge_bps__gte=min_net_edge_bps)
    if start is not None:
        rows = rows.filter(ts__gte=start)
    if end is not None:
        rows = rows.filter(ts__lt=end)
    if executed is not None:
        rows = rows.filter(executed=executed)
    return rows.order_by("-ts", "-id")


def arbitrage_settings_get(*, user) -> ArbitrageSettings:
    """The user's settings; defaults (unsaved) when they never saved any."""
    return ArbitrageSettings.objects.filter(owner=user).first() or ArbitrageSettings(owner=user)
