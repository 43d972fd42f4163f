"""Notification delivery on a real Celery worker: a message reaches a local Telegram stand-in,
a failing server is retried with backoff and marked failed, a duplicate event is sent once."""

from __future__ import annotations

import pytest

from apps.notifications.models import Delivery
from apps.notifications.services import channel_create, notify, rule_create
from tests.apps.notifications.servers import TELEGRAM_TOKEN, ProtocolServer
from tests.workers.h10_worker import celery_worker_fixture, wait_for  # noqa: F401 (fixture)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def server():
    s = ProtocolServer()
    yield s
    s.close()


@pytest.fixture
def user():
    from apps.accounts.services import user_create

    return user_create(username="notif-user", password="x", role="trader", check_password=False)


def test_delivery_retries_with_backoff_then_fails_and_successes_are_sent_once(user, server, celery_worker):
    celery_worker(
        NOTIFICATIONS_MAX_ATTEMPTS="3",
        NOTIFICATIONS_RETRY_BASE_SECONDS="0.3",
        TELEGRAM_API_BASE=server.base,
        NOTIFICATIONS_ALLOW_PRIVATE_HOSTS="1",
    )
    failing = channel_create(owner=user, kind="discord", name="down", config={"url": f"{server.base}/fail"})
    telegram = channel_create(
        owner=user,
        kind="telegram",
        name="tg",
        config={"chat_id": "42"},
        secret=TELEGRAM_TOKEN,
    )
    rule_create(owner=user, event_kind="fill", channels=[failing, telegram])
    first = notify(user=user, kind="fill", key="fill:1:abc", subject="Filled", body="sold 0.1 BTC")
    again = notify(user=user, kind="fill", key="fill:1:abc", subject="Filled", body="sold 0.1 BTC")
    assert len(first["queued"]) == 2 and sorted(again["deduplicated"]) == sorted([failing.pk, telegram.pk])

    sent = wait_for(lambda: Delivery.objects.filter(channel=telegram, status="sent").first(), timeout=30)
    assert sent is not None, list(Delivery.objects.values("channel", "status", "attempts", "last_error"))
    assert len(server.to("/bot")) == 1 and b"sold 0.1 BTC" in server.to("/bot")[0]["body"]

    failed = wait_for(lambda: Delivery.objects.filter(channel=failing, status="failed").first(), timeout=45)
    assert failed is not None, list(Delivery.objects.values("channel", "status", "attempts", "last_error"))
    assert failed.attempts == 3 and "HTTP 500" in failed.last_error
    calls = server.to("/fail")
    assert len(calls) == 3
    # exponential backoff: the second wait is longer than the first (0.3 s then 0.6 s, +/-20 %)
    times = [c["at"] for c in calls]
    assert times[2] - times[1] > times[1] - times[0] > 0.2
