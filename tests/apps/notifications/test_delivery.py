"""Delivery over each protocol to local servers that speak it: what arrives, retries and
failure, de-duplication, Redis rate limits, and events turned into notifications."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from apps.notifications import transports
from apps.notifications.delivery import backoff_seconds, daily_summaries, deliver_one, notify_recent_events
from apps.notifications.models import Delivery, DeliveryStatus
from apps.notifications.services import channel_create, notify, rule_create
from tests.apps.notifications.servers import TELEGRAM_TOKEN, WEBHOOK_SECRET

pytestmark = pytest.mark.django_db


@pytest.fixture
def protocol_server():
    from tests.apps.notifications.servers import ProtocolServer

    server = ProtocolServer()
    yield server
    server.close()


@pytest.fixture
def smtp_inbox(settings):
    """A real SMTP server (aiosmtpd) with Django's SMTP backend pointed at it."""
    from aiosmtpd.controller import Controller

    from tests.apps.notifications.servers import SmtpInbox
    from tests.conftest import free_port

    inbox = SmtpInbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", controller.port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    yield inbox
    controller.stop()


def _queued(user, channel, kind="fill", key="k1", subject="Filled", body="bought 1 BTC"):
    rule_create(owner=user, event_kind=kind, channels=[channel])
    result = notify(user=user, kind=kind, key=key, subject=subject, body=body, data={"x": Decimal("1.5")})
    return result["queued"][0] if result["queued"] else None


def test_email_goes_through_django_smtp_backend_to_a_real_smtp_server(trader, sent, smtp_inbox, clean_redis):
    channel = channel_create(owner=trader, kind="email", name="mail", config={"address": "desk@example.com"})
    delivery = _queued(trader, channel)
    assert deliver_one(delivery_id=delivery.pk).status == "sent"
    assert len(smtp_inbox.messages) == 1
    message = smtp_inbox.messages[0]
    assert message["to"] == ["desk@example.com"]
    assert "Subject: Filled" in message["data"] and "bought 1 BTC" in message["data"]
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SENT and delivery.attempts == 1 and delivery.sent_at


def test_telegram_bot_api_send_message_with_token_in_path(trader, sent, protocol_server, clean_redis, settings):
    settings.TELEGRAM_API_BASE = protocol_server.base
    channel = channel_create(
        owner=trader,
        kind="telegram",
        name="tg",
        config={"chat_id": "-100123"},
        secret=TELEGRAM_TOKEN,
    )
    delivery = _queued(trader, channel)
    outcome = deliver_one(delivery_id=delivery.pk)
    assert outcome.status == "sent", outcome
    [request] = protocol_server.to("/bot")
    assert json.loads(request["body"]) == {"chat_id": "-100123", "text": "Filled\n\nbought 1 BTC"}


def test_telegram_wrong_token_fails_permanently_without_retry(trader, sent, protocol_server, clean_redis, settings):
    settings.TELEGRAM_API_BASE = protocol_server.base
    channel = channel_create(owner=trader, kind="telegram", name="tg", config={"chat_id": 5}, secret="1:bad")
    delivery = _queued(trader, channel)
    outcome = deliver_one(delivery_id=delivery.pk)
    assert outcome.status == "failed" and "401" in outcome.detail
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED and delivery.attempts == 1
    assert "bad" not in delivery.last_error and "Unauthorized" not in delivery.last_error  # no token, no body


def test_discord_webhook_gets_content(trader, sent, protocol_server, clean_redis):
    channel = channel_create(
        owner=trader, kind="discord", name="dc", config={"url": f"{protocol_server.base}/discord/1"}
    )
    delivery = _queued(trader, channel, body="x" * 3000)
    assert deliver_one(delivery_id=delivery.pk).status == "sent"
    [request] = protocol_server.to("/discord/")
    content = json.loads(request["body"])["content"]
    assert content.startswith("Filled\n\nxxx") and len(content) == 2000


def test_webhook_is_signed_and_the_receiver_verifies_the_hmac(trader, sent, protocol_server, clean_redis):
    channel = channel_create(
        owner=trader, kind="webhook", name="wh", config={"url": f"{protocol_server.base}/hook"}, secret=WEBHOOK_SECRET
    )
    delivery = _queued(trader, channel)
    assert deliver_one(delivery_id=delivery.pk).status == "sent"
    [request] = protocol_server.to("/hook")
    assert request["verified"] is True
    body = json.loads(request["body"])
    assert body["subject"] == "Filled" and body["event_kind"] == "fill" and body["data"] == {"x": "1.5"}
    # a receiver with another secret, or a tampered body, rejects it
    ts, sig = request["headers"][transports.TIMESTAMP_HEADER], request["headers"][transports.SIGNATURE_HEADER]
    assert not transports.verify("other", ts, request["body"], sig)
    assert not transports.verify(WEBHOOK_SECRET, ts, request["body"] + b" ", sig)
    assert not transports.verify(WEBHOOK_SECRET, str(int(ts) - 3600), request["body"], sig)


def test_wrong_secret_is_rejected_by_the_receiver_as_a_permanent_failure(trader, sent, protocol_server, clean_redis):
    channel = channel_create(
        owner=trader, kind="webhook", name="wh", config={"url": f"{protocol_server.base}/hook"}, secret="not-it"
    )
    delivery = _queued(trader, channel)
    assert deliver_one(delivery_id=delivery.pk).status == "failed"
    assert protocol_server.to("/hook")[0]["verified"] is False


def test_failing_server_is_retried_with_backoff_then_marked_failed(
    trader, sent, protocol_server, clean_redis, settings
):
    settings.NOTIFICATIONS_MAX_ATTEMPTS = 3
    channel = channel_create(owner=trader, kind="discord", name="dc", config={"url": f"{protocol_server.base}/fail"})
    delivery = _queued(trader, channel)
    first = deliver_one(delivery_id=delivery.pk)
    second = deliver_one(delivery_id=delivery.pk)
    assert first.status == second.status == "retry"
    assert first.retry_after > 0
    third = deliver_one(delivery_id=delivery.pk)
    assert third.status == "failed" and "HTTP 500" in third.detail
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED and delivery.attempts == 3
    assert len(protocol_server.to("/fail")) == 3
    assert deliver_one(delivery_id=delivery.pk).status == "skipped"  # failed is final


def test_backoff_grows_exponentially(settings):
    settings.NOTIFICATIONS_RETRY_BASE_SECONDS = 2
    waits = [backoff_seconds(n) for n in (1, 2, 3, 4)]
    for n, wait in enumerate(waits):
        assert 2 * 2**n * 0.8 <= wait <= 2 * 2**n * 1.2


def test_duplicate_event_is_delivered_once(trader, sent, protocol_server, clean_redis):
    channel = channel_create(
        owner=trader, kind="discord", name="dc", config={"url": f"{protocol_server.base}/discord/1"}
    )
    delivery = _queued(trader, channel, key="fill:7:abc")
    again = notify(user=trader, kind="fill", key="fill:7:abc", subject="Filled", body="again")
    assert again["deduplicated"] == [channel.pk] and not again["queued"]
    assert deliver_one(delivery_id=delivery.pk).status == "sent"
    assert deliver_one(delivery_id=delivery.pk).status == "skipped"  # a redelivered task sends nothing
    assert len(protocol_server.to("/discord/")) == 1


def test_redis_rate_limit_defers_sends_over_the_channel_limit(trader, sent, protocol_server, clean_redis):
    channel = channel_create(
        owner=trader,
        kind="discord",
        name="dc",
        config={"url": f"{protocol_server.base}/discord/1"},
        rate_limit_per_minute=2,
    )
    rule_create(owner=trader, event_kind="fill", channels=[channel])
    ids = [notify(user=trader, kind="fill", key=f"k{i}", subject="s", body="b")["queued"] for i in range(3)]
    ids = [d[0].pk for d in ids if d]
    assert len(ids) == 2  # the third is over the limit when notified (logged rate_limited)
    Delivery.objects.filter(status=DeliveryStatus.RATE_LIMITED).update(status=DeliveryStatus.QUEUED)
    outcomes = [deliver_one(delivery_id=d.pk).status for d in Delivery.objects.order_by("id")]
    assert outcomes == ["sent", "sent", "retry"]
    assert len(protocol_server.to("/discord/")) == 2


def test_recent_fills_and_bot_events_become_notifications_once(trader, sent, make_bot, clean_redis):
    from apps.bots.models import BotEvent
    from apps.orders.models import Fill

    bot = make_bot(trader)
    channel = channel_create(owner=trader, kind="discord", name="dc", config={"url": "http://127.0.0.1:9/x"})
    for kind in ("fill", "risk_breach", "bot_paused", "bot_error", "bot_stopped"):
        rule_create(owner=trader, event_kind=kind, channels=[channel])
    now = timezone.now()
    Fill.objects.create(
        ts=now - timedelta(seconds=5),
        account=bot.exchange_account,
        bot=bot,
        venue_trade_id="t-1",
        side="buy",
        price=Decimal("60000"),
        quantity=Decimal("0.01"),
    )
    BotEvent.objects.create(
        ts=now - timedelta(seconds=4), bot=bot, kind="risk", code="risk_pause", message="daily loss"
    )
    BotEvent.objects.create(ts=now - timedelta(seconds=3), bot=bot, kind="risk", code="risk_resume", message="ok")
    BotEvent.objects.create(ts=now - timedelta(seconds=2), bot=bot, kind="error", code="loop_failed", message="boom")
    BotEvent.objects.create(ts=now - timedelta(seconds=1), bot=bot, kind="lifecycle", code="stop", message="stopped")
    counts = notify_recent_events(now=now, redis=clean_redis)
    # the risk pause is a risk breach and a pause; the resume is not notified
    assert counts == {"fills": 1, "bot_events": 4, "feeds": 0}
    kinds = sorted(Delivery.objects.values_list("event_kind", flat=True))
    assert kinds == ["bot_error", "bot_paused", "bot_stopped", "fill", "risk_breach"]
    assert notify_recent_events(now=now + timedelta(seconds=5), redis=clean_redis) == {
        "fills": 0,
        "bot_events": 0,
        "feeds": 0,
    }
    assert Delivery.objects.count() == 5


def test_feed_down_notifies_owners_of_running_bots(trader, sent, make_bot, clean_redis, settings):
    bot = make_bot(trader)
    bot.desired_state = "running"
    bot.save(update_fields=["desired_state"])
    channel = channel_create(owner=trader, kind="discord", name="dc", config={"url": "http://127.0.0.1:9/x"})
    rule_create(owner=trader, event_kind="feed_down", channels=[channel])
    key = f"{settings.REDIS_PREFIX}:feed:sim:alpha:BTC/USDT:health"
    clean_redis.set(key, json.dumps({"health": "reconnecting", "last_error": "ConnectionError: reset"}))
    assert notify_recent_events(redis=clean_redis)["feeds"] == 1
    assert "ConnectionError" in Delivery.objects.get().payload["body"]
    clean_redis.set(key, json.dumps({"health": "live"}))
    assert notify_recent_events(redis=clean_redis)["feeds"] == 0


def test_daily_summary_reports_pnl_and_fills_once_per_day(trader, sent, make_bot):
    from apps.portfolio.models import PnlSnapshot

    bot = make_bot(trader)
    channel = channel_create(owner=trader, kind="discord", name="dc", config={"url": "http://127.0.0.1:9/x"})
    rule_create(owner=trader, event_kind="daily_summary", channels=[channel])
    now = timezone.now()
    for minutes, equity in ((600, "1000"), (10, "1012.5")):
        PnlSnapshot.objects.create(
            ts=now - timedelta(minutes=minutes),
            bot=bot,
            position=0,
            cash=equity,
            realized=0,
            unrealized=0,
            fees=0,
            equity=equity,
            peak_equity=equity,
            drawdown=0,
        )
    assert daily_summaries(day_end=now) == 1
    payload = Delivery.objects.get().payload
    assert "PnL 12.5" in payload["subject"] and bot.name in payload["body"]
    assert daily_summaries(day_end=now) == 0  # same day: deduplicated


def test_deliver_one_takes_a_redis_claim_so_two_workers_never_both_send(trader, sent, protocol_server, clean_redis):
    channel = channel_create(
        owner=trader, kind="discord", name="dc", config={"url": f"{protocol_server.base}/discord/1"}
    )
    delivery = _queued(trader, channel)
    from django.conf import settings

    clean_redis.set(f"{settings.REDIS_PREFIX}:notif:sending:{delivery.pk}", "1", ex=5)
    assert deliver_one(delivery_id=delivery.pk).status == "skipped"
    assert protocol_server.to("/discord/") == []
    time.sleep(0)  # claim left to expire; the next attempt (after retry) would send
