"""Notifications: channels keep secrets encrypted and write-only, notify() matches rules and
deduplicates per channel, rate limits per channel, and every object is private to its owner
(operators see all)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection

from apps.notifications import selectors, services
from apps.notifications.models import Delivery, DeliveryStatus, NotificationChannel
from apps.notifications.services import NotificationInputError

pytestmark = pytest.mark.django_db

BOT_TOKEN = "123456:AAH-secret-telegram-token-value"


def email(owner, name="mail", **kw):
    return services.channel_create(owner=owner, kind="email", name=name, config={"address": "desk@example.com"}, **kw)


def telegram(owner, name="tg"):
    return services.channel_create(
        owner=owner, kind="telegram", name=name, config={"chat_id": "-100123"}, secret=BOT_TOKEN
    )


def test_channel_secret_is_encrypted_at_rest_and_decryptable_for_the_worker(trader):
    channel = telegram(trader)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT secret_enc, config::text FROM notifications_notificationchannel WHERE id = %s", [channel.pk]
        )
        raw_secret, raw_config = cursor.fetchone()
    assert BOT_TOKEN not in raw_secret and BOT_TOKEN not in raw_config and raw_secret
    assert services.channel_secret(channel=channel) == BOT_TOKEN


@pytest.mark.parametrize(
    ("kind", "config", "secret", "bad"),
    [
        ("email", {"address": "not-an-email"}, "", {"config"}),
        ("telegram", {"chat_id": "-1"}, "", {"secret"}),
        ("telegram", {}, "1:tok", {"config"}),
        ("telegram", {"chat_id": "-1"}, "123:abc def", {"secret"}),
        ("telegram", {"chat_id": "-1", "api_base": "https://evil.example"}, "1:tok", {"config"}),
        ("discord", {"url": "ftp://x"}, "", {"config"}),
        ("webhook", {"url": "https://hooks.example.com/x"}, "", {"secret"}),
        ("pager", {}, "", {"kind"}),
        ("email", {"address": "a@b.co", "cc": "x"}, "", {"config"}),
    ],
)
def test_channel_bad_config_names_the_field(trader, kind, config, secret, bad):
    with pytest.raises(NotificationInputError) as err:
        services.channel_create(owner=trader, kind=kind, name="x", config=config, secret=secret)
    assert set(err.value.errors) == bad


def test_notify_matches_rules_and_enqueues_after_commit(trader, sent, django_capture_on_commit_callbacks):
    mail, tg = email(trader), telegram(trader)
    services.rule_create(owner=trader, event_kind="fill", channels=[mail, tg])
    services.rule_create(owner=trader, event_kind="bot_error", channels=[mail])
    with django_capture_on_commit_callbacks(execute=True):
        result = services.notify(
            user=trader, kind="fill", key="fill:1:T1", subject="Fill", body="bought 1", data={"px": Decimal("1.5")}
        )
    assert [d.channel for d in result["queued"]] == [mail, tg]
    assert sorted(args[0] for _, args in sent) == sorted(d.pk for d in result["queued"])
    assert {name for name, _ in sent} == {"workers.notifications.deliver"}
    delivery = Delivery.objects.get(channel=mail)
    assert delivery.payload == {"subject": "Fill", "body": "bought 1", "data": {"px": "1.5"}}
    assert services.notify(user=trader, kind="risk_breach", key="r1", subject="s", body="b")["queued"] == []


def test_notify_twice_with_the_same_key_delivers_once(trader, sent, django_capture_on_commit_callbacks):
    mail = email(trader)
    services.rule_create(owner=trader, event_kind="fill", channels=[mail])
    # Two rules on the same channel still give one delivery per event.
    services.rule_create(owner=trader, event_kind="fill", channels=[mail])
    with django_capture_on_commit_callbacks(execute=True):
        first = services.notify(user=trader, kind="fill", key="fill:T9", subject="s", body="b")
        second = services.notify(user=trader, kind="fill", key="fill:T9", subject="s", body="b")
    assert len(first["queued"]) == 1
    assert second == {"queued": [], "rate_limited": [], "deduplicated": [mail.pk]}
    assert Delivery.objects.count() == 1 and len(sent) == 1


def test_threshold_bot_and_disabled_filters(trader, sent, make_bot):
    bot_a, bot_b = make_bot(trader, "a"), make_bot(trader, "b")
    mail, tg = email(trader), telegram(trader)
    services.rule_create(owner=trader, event_kind="arbitrage", channels=[mail], threshold="15")
    services.rule_create(owner=trader, event_kind="bot_paused", channels=[tg], bot=bot_a)
    assert services.notify(user=trader, kind="arbitrage", key="a1", subject="", body="", value=10)["queued"] == []
    assert services.notify(user=trader, kind="arbitrage", key="a2", subject="", body="")["queued"] == []
    assert (
        len(services.notify(user=trader, kind="arbitrage", key="a3", subject="", body="", value="15.0")["queued"]) == 1
    )
    assert services.notify(user=trader, kind="bot_paused", key="p1", subject="", body="", bot=bot_b)["queued"] == []
    assert len(services.notify(user=trader, kind="bot_paused", key="p2", subject="", body="", bot=bot_a)["queued"]) == 1
    services.channel_update(channel=tg, enabled=False)
    assert services.notify(user=trader, kind="bot_paused", key="p3", subject="", body="", bot=bot_a)["queued"] == []


def test_rate_limit_per_channel_logs_the_excess_without_sending(trader, sent, django_capture_on_commit_callbacks):
    mail = email(trader, rate_limit_per_minute=2)
    services.rule_create(owner=trader, event_kind="fill", channels=[mail])
    with django_capture_on_commit_callbacks(execute=True):
        results = [services.notify(user=trader, kind="fill", key=f"f{i}", subject="", body="") for i in range(4)]
    assert [len(r["queued"]) for r in results] == [1, 1, 0, 0]
    assert [len(r["rate_limited"]) for r in results] == [0, 0, 1, 1]
    assert len(sent) == 2
    assert Delivery.objects.filter(status=DeliveryStatus.RATE_LIMITED).count() == 2


def test_rules_only_take_own_channels_and_visible_bots(trader, trader2, make_bot):
    theirs = email(trader2, name="theirs")
    their_bot = make_bot(trader2)
    with pytest.raises(NotificationInputError) as err:
        services.rule_create(owner=trader, event_kind="fill", channels=[theirs], bot=their_bot, threshold="abc")
    assert set(err.value.errors) == {"channels", "bot", "threshold"}
    with pytest.raises(NotificationInputError) as err:
        services.rule_create(owner=trader, event_kind="test", channels=[email(trader)])
    assert set(err.value.errors) == {"event_kind"}


def test_delivery_attempts_are_recorded(trader, sent):
    delivery = services.channel_send_test(channel=email(trader))
    services.delivery_record_attempt(delivery_id=delivery.pk, sent=False, error="timeout")
    services.delivery_record_attempt(delivery_id=delivery.pk, sent=False, error="refused", final=True)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_error) == ("failed", 2, "refused")
    assert services.delivery_requeue(delivery=delivery) is True
    services.delivery_record_attempt(delivery_id=delivery.pk, sent=True)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_error) == ("sent", 3, "")
    assert delivery.sent_at is not None
    assert services.delivery_requeue(delivery=delivery) is False


# --- API ---------------------------------------------------------------------------------------
def test_api_channel_secret_is_write_only(trader, api_for, sent):
    api = api_for(trader)
    response = api.post(
        "/api/v1/notifications/channels/",
        {
            "kind": "webhook",
            "name": "hook",
            "config": {"url": "https://hooks.example.com/in"},
            "secret": "hmac-s3cret-value",
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    assert "secret" not in response.json() and response.json()["has_secret"] is True
    assert "hmac-s3cret-value" not in response.content.decode()
    listing = api.get("/api/v1/notifications/channels/")
    assert "hmac-s3cret-value" not in listing.content.decode()
    channel = NotificationChannel.objects.get()
    # Updating without a secret keeps it; the kind cannot change.
    assert (
        api.patch(f"/api/v1/notifications/channels/{channel.pk}/", {"name": "hook2"}, format="json").status_code == 200
    )
    assert services.channel_secret(channel=NotificationChannel.objects.get()) == "hmac-s3cret-value"
    bad = api.patch(f"/api/v1/notifications/channels/{channel.pk}/", {"kind": "email"}, format="json")
    assert bad.status_code == 400 and "kind" in bad.json()


def test_api_channel_errors_name_the_field(trader, api_for):
    api = api_for(trader)
    bad = api.post(
        "/api/v1/notifications/channels/", {"kind": "email", "name": "m", "config": {"address": "nope"}}, format="json"
    )
    assert bad.status_code == 400 and "address" in bad.json()["config"]
    email(trader, name="m")
    dup = api.post(
        "/api/v1/notifications/channels/",
        {"kind": "email", "name": "m", "config": {"address": "a@b.co"}},
        format="json",
    )
    assert dup.status_code == 400 and "name" in dup.json()


def test_api_rules_and_test_message(trader, api_for, sent, django_capture_on_commit_callbacks):
    api = api_for(trader)
    mail = email(trader)
    created = api.post("/api/v1/notifications/rules/", {"event_kind": "fill", "channels": [mail.pk]}, format="json")
    assert created.status_code == 201, created.json()
    assert api.post(
        "/api/v1/notifications/rules/", {"event_kind": "nope", "channels": [mail.pk]}, format="json"
    ).json().keys() == {"event_kind"}
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(f"/api/v1/notifications/channels/{mail.pk}/test/")
    assert response.status_code == 202 and response.json()["event_kind"] == "test"
    assert sent == [("workers.notifications.deliver", [response.json()["id"]])]
    log = api.get("/api/v1/notifications/deliveries/").json()
    assert [d["status"] for d in log["results"]] == ["queued"]
    assert api.post("/api/v1/notifications/deliveries/", {}, format="json").status_code == 405


def test_isolation_second_trader_and_viewer_see_nothing_operator_sees_all(
    trader, trader2, viewer, operator, api_for, sent
):
    mail = email(trader)
    rule = services.rule_create(owner=trader, event_kind="fill", channels=[mail])
    (delivery,) = services.notify(user=trader, kind="fill", key="k", subject="s", body="b")["queued"]
    urls = {
        "channels": f"/api/v1/notifications/channels/{mail.pk}/",
        "rules": f"/api/v1/notifications/rules/{rule.pk}/",
        "deliveries": f"/api/v1/notifications/deliveries/{delivery.pk}/",
    }
    for outsider in (trader2, viewer):
        api = api_for(outsider)
        for kind, url in urls.items():
            assert api.get(f"/api/v1/notifications/{kind}/").json()["results"] == []
            assert api.get(url).status_code == 404
        denied = 403 if outsider is viewer else 404  # viewers may not write at all
        assert api.patch(urls["channels"], {"name": "pwned"}, format="json").status_code == denied
        assert api.delete(urls["rules"]).status_code == denied
        assert api.post(f"{urls['channels']}test/").status_code == denied
        # Nor can they attach the victim's channel to their own rule.
        response = api.post(
            "/api/v1/notifications/rules/", {"event_kind": "fill", "channels": [mail.pk]}, format="json"
        )
        if outsider is viewer:
            assert response.status_code == 403
        else:
            assert response.status_code == 400 and "channels" in response.json()
        assert list(selectors.channel_list(user=outsider)) == []
    mail.refresh_from_db()
    assert mail.name == "mail" and Delivery.objects.count() == 1
    ops = api_for(operator)
    for url in urls.values():
        assert ops.get(url).status_code == 200
    assert len(ops.get("/api/v1/notifications/deliveries/").json()["results"]) == 1
