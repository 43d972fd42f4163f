"""A manual order worth more than the whole account is refused at once, naming the quantity
field, the order's value at its price, the balance and the largest quantity accepted; one the
account can pay for is sent to the bot's loop (whose pre-trade risk then decides)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from apps.bots.models import Bot
from tests.apps.bots.factories import api, make_bot
from tests.apps.dashboard.conftest import client_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def running_bot(trader):
    bot = make_bot(trader)  # paper balances 0.5 BTC + 10,000 USDT (factories.PAPER_BALANCES)
    Bot.objects.filter(pk=bot.pk).update(actual_state="running")
    bot.refresh_from_db()
    return bot


def test_the_api_refuses_a_million_btc_with_its_value(
    trader, running_bot, sent_tasks, django_capture_on_commit_callbacks
):
    payload = {"side": "buy", "price": "60000", "quantity": "1000000"}
    with django_capture_on_commit_callbacks(execute=True):
        response = api(trader).post(f"/api/v1/bots/{running_bot.pk}/manual-order/", payload, format="json")
    assert response.status_code == 400, response.content
    message = response.json()["quantity"][0]
    assert message == (
        "1000000 BTC at 60000 is an order of 60,000,000,000.00 USDT; the account holds 0.5 BTC + 10000 USDT = "
        "40,000.00 USDT at 60000; accepted: at most 0.6666 BTC"
    )
    assert sent_tasks == []


def test_the_bot_page_says_why_and_an_affordable_order_is_sent(
    trader, running_bot, sent_tasks, django_capture_on_commit_callbacks
):
    client = client_for(trader)
    url = reverse("bot-manual-order", args=[running_bot.pk])
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            url, {"side": "sell", "price": "60000", "quantity": "1000000", "type": "limit"}, follow=True
        )
    body = response.content.decode()
    assert "manual order refused" in body and "60,000,000,000.00 USDT" in body and "at most 0.6666 BTC" in body
    assert sent_tasks == []
    with django_capture_on_commit_callbacks(execute=True):
        client.post(url, {"side": "sell", "price": "60000", "quantity": "0.01", "type": "limit"})
    assert [name for name, _, _ in sent_tasks] == ["workers.bots.manual_order"]
