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
