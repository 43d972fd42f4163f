"""Reads of notifications, scoped: each user sees their own channels, rules and deliveries;
operators see everyone's."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from apps.notifications.models import Delivery, NotificationChannel, NotificationRule


def channel_list(*, user) -> QuerySet[NotificationChannel]:
    channels = NotificationChannel.objects.select_related("owner")
    return channels if user.is_operator else channels.filter(owner=user)


def rule_list(*, user, event_kind: str | None = None) -> QuerySet[NotificationRule]:
    rules = NotificationRule.objects.select_related("owner", "bot").prefetch_related("channels")
    if not user.is_operator:
        rules = rules.filter(owner=user)
    if event_kind:
        rules = rules.filter(event_kind=event_kind)
    return rules


def delivery_list(*, user, status: str | None = None, channel_id: Any = None) -> QuerySet[Delivery]:
    deliveries = Delivery.objects.select_related("channel", "channel__owner")
    if not user.is_operator:
        deliveries = deliveries.filter(channel__owner=user)
    if status:
        deliveries = deliveries.filter(status=status)
    if channel_id:
        deliveries = deliveries.filter(channel_id=channel_id)
    return deliveries


def channel_get(*, user, channel_id: Any) -> NotificationChannel | None:
    try:
        return channel_list(user=user).get(pk=int(channel_id))
    except (NotificationChannel.DoesNotExist, TypeError, ValueError):
        return None
