"""Reads for orders and fills, scoped through the account owner and the bot's viewers."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Q, QuerySet

from apps.accounts.models import User
from apps.bots.models import Bot
from apps.orders.models import Fill, Order


def _scope(qs: QuerySet, user: User) -> QuerySet:
    if user.is_operator:
        return qs
    shared = Bot.shared_with.through.objects.filter(user_id=user.pk).values("bot_id")
    return qs.filter(Q(account__owner=user) | Q(bot_id__in=shared))


def order_list(*, user: User) -> QuerySet[Order]:
    """Orders of the user's accounts and of bots shared with them (operators: all)."""
    return _scope(Order.objects.select_related("market", "bot", "account"), user).order_by("-created", "-id")


def fill_list(
    *, user: User, bot_id: int | None = None, start: datetime | None = None, end: datetime | None = None
) -> QuerySet[Fill]:
    """Fills the user may see, newest first, optionally for one bot and a time range [start, end)."""
    qs = _scope(Fill.objects.all(), user)
    if bot_id is not None:
        qs = qs.filter(bot_id=bot_id)
    if start is not None:
        qs = qs.filter(ts__gte=start)
    if end is not None:
        qs = qs.filter(ts__lt=end)
    return qs.order_by("-ts", "-id")
