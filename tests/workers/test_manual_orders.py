"""Manual orders on a bot's market go through the bot's own loop and pre-trade risk: one is
placed and rests on the venue beside the quotes (which never touch it); a reduce-only order that
would not reduce is refused with the reason in the event log; bad input is a 400 naming the field."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from tests.workers.helpers import make_paper_bots, wait_until

pytestmark = [pytest.mark.django_db(transaction=True)]


def test_a_manual_order_is_placed_by_the_bots_loop_and_a_refused_one_says_why(host, redis_client):
    from apps.bots.models import Bot, BotEvent
    from apps.dashboard import live
    from apps.orders.models import Order
    from workers import bots as bot_tasks
    from workers import keys, lifecycle, supervisor

    user, account, (bot,) = make_paper_bots(1)
    supervisor.tick()
    assert wait_until(lambda: Bot.objects.get(pk=bot.pk).actual_state == "running", 20)
    assert wait_until(lambda: len((live.bot_status(bot_id=bot.pk) or {}).get("orders", [])) >= 2, 20)
    bids = [Decimal(o["price"]) for o in live.bot_status(bot_id=bot.pk)["orders"] if o["side"] == "buy"]
    price = min(bids) - Decimal("0.50")  # below the bot's own bids: it rests
    client = APIClient()
    client.force_authenticate(user)

    bad = client.post(
        f"/api/v1/bots/{bot.pk}/manual-order/", {"side": "buy", "price": "1e3", "quantity": "0.02"}, format="json"
    )
    assert bad.status_code == 400 and "price" in bad.json(), bad.content
    bad = client.post(
        f"/api/v1/bots/{bot.pk}/manual-order/", {"side": "hold", "price": str(price), "quantity": "0.02"}, format="json"
    )
    assert bad.status_code == 400 and "side" in bad.json()

    response = client.post(
        f"/api/v1/bots/{bot.pk}/manual-order/",
        {"side": "buy", "price": str(price), "quantity": "0.02", "type": "post_only"},
        format="json",
    )
    assert response.status_code == 202, response.content
    # the task the service queued, run here (no Celery worker consumes the bots queue in this test)
    assert bot_tasks.manual_order(bot.pk, json.dumps(response.json()["sent"])) == "sent to owner"
    assert wait_until(lambda: BotEvent.objects.filter(bot=bot, code="manual_order").exists(), 10)
    cid = BotEvent.objects.get(bot=bot, code="manual_order").message.split()[2]
    assert wait_until(lambda: Order.objects.filter(client_order_id=cid, price=price, status="open").exists(), 10)
    assert redis_client.hexists(keys.paper(account.pk, "BTC/USDT", "orders"), cid)  # on the venue

    # reduce-only on the side that would grow the position (buy when flat or long; sell when its
    # quotes have made it short meanwhile): refused by the bot's risk, with the reason
    held = Decimal((live.bot_status(bot_id=bot.pk) or {}).get("position") or "0")
    side, at = ("buy", price) if held >= 0 else ("sell", max(bids) + Decimal("1000"))
    payload = {"side": side, "price": str(at), "quantity": "0.02", "type": "limit", "reduce_only": True, "by": "t"}
    assert bot_tasks.manual_order(bot.pk, json.dumps(payload)) == "sent to owner"
    assert wait_until(lambda: BotEvent.objects.filter(bot=bot, code="manual_order_refused").exists(), 10)
    refused = BotEvent.objects.get(bot=bot, code="manual_order_refused").message
    assert "reduce-only" in refused and "would not reduce" in refused

    # the manual order stays through requotes and is cancelled at stop like every order
    Bot.objects.filter(pk=bot.pk).update(desired_state="stopped")
    lifecycle.apply(bot.pk)
    assert wait_until(lambda: Bot.objects.get(pk=bot.pk).actual_state == "stopped", 20)
    assert not redis_client.hexists(keys.paper(account.pk, "BTC/USDT", "orders"), cid)


def test_the_bot_page_form_sends_a_manual_order_or_names_the_bad_field(client):
    from apps.bots.models import Bot, BotEvent
    from apps.dashboard import live  # noqa: F401 (the page reads the live status)

    user, _account, (bot,) = make_paper_bots(1, start=False)
    Bot.objects.filter(pk=bot.pk).update(actual_state="running", desired_state="running")
    client.force_login(user)
    page = client.get(f"/bots/{bot.pk}/")
    assert b'id="manual-order-form"' in page.content
    response = client.post(
        f"/bots/{bot.pk}/manual-order/", {"side": "sell", "quantity": "0.02", "price": "1_000"}, follow=True
    )
    assert b"manual order refused" in response.content and b"price" in response.content
    response = client.post(
        f"/bots/{bot.pk}/manual-order/",
        {"side": "sell", "quantity": "0.02", "price": "60000", "type": "limit"},
        follow=True,
    )
    assert b"sent to the bot" in response.content
    assert not BotEvent.objects.filter(bot=bot, code="manual_order_refused").exists()
