"""Notification tasks: deliver one message (retries with exponential backoff), scan recent
events into notifications (beat, every 5 s) and the daily summary (beat, daily)."""

from __future__ import annotations

import logging

from celery import shared_task

logger = logging.getLogger(__name__)


@shared_task(bind=True, name="workers.notifications.deliver", max_retries=None, ignore_result=True)
def deliver(self, delivery_id: int) -> str:
    """Send a queued delivery; retry transient failures and rate-limit waits with backoff."""
    from apps.notifications.delivery import deliver_one

    outcome = deliver_one(delivery_id=delivery_id)
    if outcome.status == "retry":
        logger.info("delivery %s: retry in %.2fs (%s)", delivery_id, outcome.retry_after or 0, outcome.detail)
        raise self.retry(countdown=outcome.retry_after or 1.0)
    return outcome.status


@shared_task(name="workers.notifications.scan_events", ignore_result=True, expires=30)
def scan_events() -> dict:
    """Fills, risk breaches, pauses, errors, stops and feeds down since the last scan."""
    from apps.notifications.delivery import notify_recent_events

    return notify_recent_events()


@shared_task(name="workers.notifications.daily_summary", ignore_result=True)
def daily_summary() -> int:
    """Each subscribed user's summary of the last 24 hours."""
    from apps.notifications.delivery import daily_summaries

    return daily_summaries()
