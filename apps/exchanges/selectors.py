"""Reads for exchange accounts and markets, scoped to the requesting user."""

from __future__ import annotations

from django.db.models import QuerySet

from apps.accounts.models import User
from apps.exchanges.models import ExchangeAccount, Market


def exchange_account_list(*, user: User) -> QuerySet[ExchangeAccount]:
    """The user's own accounts (operators: every account)."""
    qs = ExchangeAccount.objects.select_related("owner")
    if not user.is_operator:
        qs = qs.filter(owner=user)
    return qs.order_by("id")


def market_list(*, venue: str | None = None, symbol: str | None = None, active: bool | None = True) -> QuerySet[Market]:
    """Markets are public metadata: every signed-in user may read them."""
    qs = Market.objects.all()
    if venue:
        qs = qs.filter(venue=venue)
    if symbol:
        qs = qs.filter(symbol=symbol)
    if active is not None:
        qs = qs.filter(active=active)
    return qs.order_by("venue", "symbol")
