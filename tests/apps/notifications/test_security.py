"""Outbound safety of notifications: no private hosts (SSRF), no redirects, no response bodies
or tokens in the delivery log, Discord URLs sealed, writes for traders only, scans complete."""

from __future__ import annotations

import socket
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from apps.exchanges import crypto
from apps.notifications import delivery as delivery_module
from apps.notifications import transports
from apps.notifications.delivery import deliver_one, notify_recent_events
from apps.notifications.models import Delivery, DeliveryStatus, NotificationChannel
from apps.notifications.services import NotificationInputError, channel_create, notify, rule_create
from tests.apps.notifications.servers import WEBHOOK_SECRET, ProtocolServer

pytestmark = pytest.mark.django_db


@pytest.fixture
def protocol_server():
    server = ProtocolServer()
    yield server
    server.close()


def _queued(user, channel, key="k1"):
    rule_create(owner=user, event_kind="fill", channels=[channel])
    return notify(user=user, kind="fill", key=key, subject="Filled", body="bought 1 BTC")["queued"][0]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.1.2.3/x",
        "http://[::1]/x",
        "http://localhost/x",
        "http://0.0.0.0/x",
    ],
)
def test_private_literal_webhook_url_is_refused_at_create_with_a_field_error(trader, settings, url):
    settings.NOTIFICATIONS_ALLOW_PRIVATE_HOSTS = False
    with pytest.raises(NotificationInputError) as err:
        channel_create(owner=trader, kind="webhook", name="h", config={"url": url}, secret=WEBHOOK_SECRET)
    assert "url" in err.value.errors["config"] and "public" in err.value.errors["config"]["url"]


def test_webhook_host_resolving_to_loopback_is_refused_and_nothing_reaches_the_server(
    trader, sent, protocol_server, clean_redis, settings, monkeypatch
):
    settings.NOTIFICATIONS_ALLOW_PRIVATE_HOSTS = False
    # A public-looking name whose DNS answer is 127.0.0.1 (DNS rebinding / internal names).
    real = socket.getaddrinfo
    monkeypatch.setattr(
        socket,
        "getaddrinfo",
        lambda host, *a, **k: real("127.0.0.1", *a, **k) if host == "hooks.example.com" else real(host, *a, **k),
    )
    channel = channel_create(
        owner=trader,
        kind="webhook",
        name="h",
        config={"url": f"http://hooks.example.com:{protocol_server.port}/hook"},
        secret=WEBHOOK_SECRET,
    )
    delivery = _queued(trader, channel)
    outcome = deliver_one(delivery_id=delivery.pk)
    assert outcome.status == "failed" and "loopback" in outcome.detail
    assert protocol_server.requests == []
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED and delivery.attempts == 1


def test_literal_loopback_url_stored_earlier_is_refused_at_send_time(
    trader, sent, protocol_server, clean_redis, settings
):
    channel = channel_create(
        owner=trader, kind="webhook", name="h", config={"url": f"{protocol_server.base}/hook"}, secret=WEBHOOK_SECRET
    )
    delivery = _queued(trader, channel)
    settings.NOTIFICATIONS_ALLOW_PRIVATE_HOSTS = False
    assert deliver_one(delivery_id=delivery.pk).status == "failed"
    assert protocol_server.requests == []


def test_redirect_is_not_followed_and_is_a_failed_delivery(trader, sent, protocol_server, clean_redis):
    channel = channel_create(
        owner=trader, kind="discord", name="dc", config={"url": f"{protocol_server.base}/redirect"}
    )
    delivery = _queued(trader, channel)
    outcome = deliver_one(delivery_id=delivery.pk)
    assert outcome.status == "failed" and "redirect refused" in outcome.detail
    assert [r["path"] for r in protocol_server.requests] == ["/redirect"]
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED and "307" in delivery.last_error


def test_error_log_keeps_status_and_host_but_never_the_response_body(trader, sent, protocol_server, clean_redis):
    channel = channel_create(owner=trader, kind="discord", name="dc", config={"url": f"{protocol_server.base}/fail"})
    delivery = _queued(trader, channel)
    deliver_one(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    assert delivery.last_error == f"HTTP 500 from 127.0.0.1:{protocol_server.port}"


def test_telegram_api_base_comes_from_settings_only(trader, sent, protocol_server, clean_redis, settings):
    with pytest.raises(NotificationInputError) as err:
        channel_create(
            owner=trader,
            kind="telegram",
            name="tg",
            config={"chat_id": "1", "api_base": protocol_server.base},
            secret="1:tok",
        )
    assert "api_base" in err.value.errors["config"]
    # A legacy channel still carrying api_base is sent to settings.TELEGRAM_API_BASE, not there.
    settings.TELEGRAM_API_BASE = protocol_server.base
    channel = channel_create(owner=trader, kind="telegram", name="tg", config={"chat_id": "1"}, secret="1:tok")
    NotificationChannel.objects.filter(pk=channel.pk).update(config={"chat_id": "1", "api_base": "http://10.0.0.1"})
    assert deliver_one(delivery_id=_queued(trader, channel).pk).status == "failed"  # 401 from the settings host
    assert len(protocol_server.to("/bot1:tok/")) == 1


def test_telegram_token_with_a_space_is_refused_at_create_and_never_leaks_at_send(
    trader, protocol_server, settings, caplog
):
    with pytest.raises(NotificationInputError) as err:
        channel_create(owner=trader, kind="telegram", name="tg", config={"chat_id": "1"}, secret="123:abc SECRET")
    assert "Telegram bot token" in err.value.errors["secret"] and "SECRET" not in str(err.value)
    settings.TELEGRAM_API_BASE = protocol_server.base
    with pytest.raises(transports.TransportError) as sent_err:
        transports.send_telegram({"chat_id": "1"}, "123:abc SECRET", {"subject": "s"})
    assert sent_err.value.permanent and "SECRET" not in str(sent_err.value)
    assert str(sent_err.value) == f"invalid URL for 127.0.0.1:{protocol_server.port}"
    assert "SECRET" not in caplog.text


def test_discord_url_is_stored_encrypted_shown_masked_and_still_delivers(
    trader, sent, protocol_server, clean_redis, api_for, client, operator
):
    url = f"{protocol_server.base}/discord/1234/tokensecretXYZW"
    api = api_for(trader)
    response = api.post(
        "/api/v1/notifications/channels/", {"kind": "discord", "name": "dc", "config": {"url": url}}, format="json"
    )
    assert response.status_code == 201, response.json()
    assert "tokensecret" not in response.content.decode()
    assert response.json()["config"] == {"url_hint": "http://127.0.0.1/…XYZW"} and response.json()["has_secret"]
    channel = NotificationChannel.objects.get(pk=response.json()["id"])
    assert "url" not in channel.config and crypto.decrypt(channel.secret_enc) == url
    assert "tokensecret" not in api.get("/api/v1/notifications/channels/").content.decode()
    # echoing the masked config back keeps the URL
    patched = api.patch(
        f"/api/v1/notifications/channels/{channel.pk}/", {"config": response.json()["config"]}, format="json"
    )
    assert patched.status_code == 200 and patched.json()["config"] == {"url_hint": "http://127.0.0.1/…XYZW"}
    assert deliver_one(delivery_id=_queued(trader, channel).pk).status == "sent"
    assert len(protocol_server.to("/discord/1234/")) == 1
    client.force_login(operator)
    page = client.get(f"/admin/notifications/notificationchannel/{channel.pk}/change/").content.decode()
    assert "tokensecret" not in page


def test_migration_seals_discord_urls_of_existing_channels(trader):
    import importlib

    from django.apps import apps as django_apps

    seal = importlib.import_module("apps.notifications.migrations.0003_seal_discord_urls").seal
    channel = channel_create(
        owner=trader, kind="discord", name="dc", config={"url": "https://discord.com/api/webhooks/1/abcd"}
    )
    NotificationChannel.objects.filter(pk=channel.pk).update(
        config={"url": "https://discord.com/api/webhooks/1/abcd"}, secret_enc=""
    )
    seal(django_apps, None)
    channel.refresh_from_db()
    assert channel.config == {"url_hint": "https://discord.com/…abcd"}
    assert crypto.decrypt(channel.secret_enc) == "https://discord.com/api/webhooks/1/abcd"


def test_viewers_cannot_create_channels_or_rules_or_send_tests(viewer, trader, api_for, sent):
    mine = channel_create(owner=viewer, kind="email", name="m", config={"address": "v@example.com"})
    api = api_for(viewer)
    response = api.post(
        "/api/v1/notifications/channels/",
        {"kind": "email", "name": "x", "config": {"address": "a@example.com"}},
        format="json",
    )
    assert response.status_code == 403
    assert (
        api.post(
            "/api/v1/notifications/rules/", {"event_kind": "fill", "channels": [mine.pk]}, format="json"
        ).status_code
        == 403
    )
    assert api.post(f"/api/v1/notifications/channels/{mine.pk}/test/").status_code == 403
    assert api.get("/api/v1/notifications/channels/").status_code == 200
    assert sent == [] and Delivery.objects.count() == 0
    assert (
        api_for(trader)
        .post(
            "/api/v1/notifications/channels/",
            {"kind": "email", "name": "x", "config": {"address": "a@example.com"}},
            format="json",
        )
        .status_code
        == 201
    )


def test_rule_on_a_bot_shared_with_you_is_refused_with_a_clear_error(trader, trader2, make_bot):
    bot = make_bot(trader)
    bot.shared_with.add(trader2)
    channel = channel_create(owner=trader2, kind="email", name="m", config={"address": "t2@example.com"})
    with pytest.raises(NotificationInputError) as err:
        rule_create(owner=trader2, event_kind="fill", channels=[channel], bot=bot)
    assert "not yours" in err.value.errors["bot"]


def test_scan_pages_through_every_fill_before_moving_the_cursor(trader, sent, make_bot, clean_redis, monkeypatch):
    from apps.orders.models import Fill

    monkeypatch.setattr(delivery_module, "SCAN_PAGE", 2)
    bot = make_bot(trader)
    channel = channel_create(owner=trader, kind="email", name="m", config={"address": "t@example.com"})
    NotificationChannel.objects.filter(pk=channel.pk).update(rate_limit_per_minute=100)
    rule_create(owner=trader, event_kind="fill", channels=[channel])
    now = timezone.now()
    same_ts = now - timedelta(seconds=10)
    for i in range(5):  # three share one timestamp: paging must not skip ties
        Fill.objects.create(
            ts=same_ts if i < 3 else now - timedelta(seconds=5 - i),
            account=bot.exchange_account,
            bot=bot,
            venue_trade_id=f"t-{i}",
            side="buy",
            price=Decimal("60000"),
            quantity=Decimal("0.01"),
        )
    assert notify_recent_events(now=now, redis=clean_redis)["fills"] == 5
    keys = sorted(Delivery.objects.values_list("dedupe_key", flat=True))
    assert keys == [f"fill:{bot.exchange_account_id}:t-{i}" for i in range(5)]


def test_address_is_checked_again_when_dialling_so_dns_rebinding_cannot_reach_loopback(
    protocol_server, settings, monkeypatch
):
    settings.NOTIFICATIONS_ALLOW_PRIVATE_HOSTS = False
    real = socket.getaddrinfo
    monkeypatch.setattr(
        socket,
        "getaddrinfo",
        lambda host, *a, **k: real("127.0.0.1", *a, **k) if host == "hooks.example.com" else real(host, *a, **k),
    )
    monkeypatch.setattr(transports, "check_destination", lambda url: None)  # the first answer was public
    with pytest.raises(transports.TransportError) as err:
        transports.http_post(f"http://hooks.example.com:{protocol_server.port}/hook", body=b"{}")
    assert err.value.permanent and "loopback" in str(err.value)
    assert protocol_server.requests == []
