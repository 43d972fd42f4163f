"""Reads for bots, scoped: owners see theirs, viewers what is shared with them, operators all."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Q, QuerySet

from apps.accounts.models import User
from apps.bots.models import Bot, BotConfigVersion, BotEvent


def bot_list(*, user: User, desired_state: str | None = None, actual_state: str | None = None) -> QuerySet[Bot]:
    """Bots the user may see."""
    qs = Bot.objects.select_related("owner", "exchange_account", "market")
    if not user.is_operator:
        shared = Bot.shared_with.through.objects.filter(user_id=user.pk).values("bot_id")
        qs = qs.filter(Q(owner=user) | Q(pk__in=shared))
    if desired_state:
        qs = qs.filter(desired_state=desired_state)
    if actual_state:
        qs = qs.filter(actual_state=actual_state)
    return qs.order_by("id")


def bot_can_change(*, user: User, bot: Bot) -> bool:
    """Only the owner (a trader) and operators may change a bot; viewers of shared bots only read."""
    return user.is_operator or (bot.owner_id == user.pk and user.can_trade)


def bot_config_history(*, bot: Bot) -> QuerySet[BotConfigVersion]:
    return BotConfigVersion.objects.filter(bot=bot).select_related("author").order_by("-version")


def bot_event_list(
    *, bot: Bot, kind: str | None = None, start: datetime | None = None, end: datetime | None = None
) -> QuerySet[BotEvent]:
    qs = BotEvent.objects.filter(bot=bot)
    if kind:
        qs = qs.filter(kind=kind)
    if start:
        qs = qs.filter(ts__gte=start)
    if end:
        qs = qs.filter(ts__lt=end)
    return qs.order_by("-ts", "-id")
