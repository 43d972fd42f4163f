import pytest

from apps.notifications import services
from apps.notifications.models import Delivery, NotificationChannel, NotificationRule
from tests.apps.marketdata.admin_pages import assert_admin_pages

pytestmark = pytest.mark.django_db
TOKEN = "987654:telegram-bot-token-secret"


def test_notification_admin_pages_are_for_staff_only_and_never_show_secrets(operator, trader, trader2, viewer, sent):
    channel = services.channel_create(owner=trader, kind="telegram", name="tg", config={"chat_id": "1"}, secret=TOKEN)
    rule = services.rule_create(owner=trader, event_kind="fill", channels=[channel])
    (delivery,) = services.notify(user=trader, kind="fill", key="k", subject="s", body="b")["queued"]
    page = assert_admin_pages(NotificationChannel, channel, operator=operator, outsiders=[trader, trader2, viewer])
    assert TOKEN not in page and channel.secret_enc not in page
    assert_admin_pages(NotificationRule, rule, operator=operator, outsiders=[trader, trader2, viewer])
    assert_admin_pages(Delivery, delivery, operator=operator, outsiders=[trader, trader2, viewer])


def test_admin_channel_form_checks_the_config_like_the_api(operator, trader):
    from django.test import Client

    channel = services.channel_create(owner=trader, kind="email", name="m", config={"address": "a@example.com"})
    client = Client()
    client.force_login(operator)
    url = f"/admin/notifications/notificationchannel/{channel.pk}/change/"
    form = {
        "owner": trader.pk,
        "kind": "email",
        "name": "m",
        "config": '{"address": "nope"}',
        "rate_limit_per_minute": 20,
    }
    response = client.post(url, form)
    assert response.status_code == 200 and "is not an email address" in response.content.decode()
    channel.refresh_from_db()
    assert channel.config == {"address": "a@example.com"}
    # Switching to Telegram needs a bot token, which is only set through the API.
    response = client.post(url, {**form, "kind": "telegram", "config": '{"chat_id": "1"}'})
    assert "secret: required for telegram" in response.content.decode()
    response = client.post(url, {**form, "config": '{"address": "b@example.com"}', "enabled": "on"})
    assert response.status_code == 302
    channel.refresh_from_db()
    assert channel.config == {"address": "b@example.com"}
