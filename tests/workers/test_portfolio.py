"""The portfolio sweep: a user's net per asset beyond its limit raises one incident and one
risk-breach notification, and the user's running bots on that asset refuse (pre-trade) the
orders that would grow it, quotes and manual orders alike, until the net is back within."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from tests.workers.helpers import make_paper_bots, wait_until

pytestmark = [pytest.mark.django_db(transaction=True)]


def _notify_me(user):
    from apps.notifications.services import channel_create, rule_create

    channel = channel_create(owner=user, kind="email", name="me", config={"address": f"{user.username}@example.com"})
    rule_create(owner=user, event_kind="risk_breach", channels=[channel])
    return channel


def test_a_breach_raises_one_incident_and_notification_and_blocks_that_side_until_cleared(clean_redis, redis_client):
    from apps.bots.models import Bot
    from apps.core.models import Incident
    from apps.notifications.models import Delivery
    from apps.portfolio.targets import inventory_target_delete, inventory_target_set
    from workers import keys, portfolio

    alice, _account, (bot,) = make_paper_bots(1, username="alice", start=False)
    bob, _bob_account, (bob_bot,) = make_paper_bots(1, username="bob", start=False)
    Bot.objects.filter(pk__in=[bot.pk, bob_bot.pk]).update(desired_state="running")
    channel = _notify_me(alice)
    inventory_target_set(owner=alice, actor=alice, asset="BTC", target="8", max_net="9.5")  # holds 10 BTC
    inventory_target_set(owner=bob, actor=bob, asset="BTC", max_net="20")
    pubsub = redis_client.pubsub()
    pubsub.subscribe(keys.bot_control(bot.pk), keys.bot_control(bob_bot.pk))
    pubsub.get_message(timeout=1)
    pubsub.get_message(timeout=1)

    assert portfolio.sweep() == {"users": 2, "breaches": 1, "cleared": 0}
    incident = Incident.objects.get(owner=alice)
    assert incident.kind == "risk" and "net BTC 10 " in incident.message and "limit of 9.5" in incident.message
    assert incident.data["blocked_side"] == "buy"
    delivery = Delivery.objects.get(channel=channel)
    assert "BTC" in delivery.payload["subject"] and delivery.payload["data"]["asset"] == "BTC"
    block = json.loads(redis_client.get(keys.portfolio_block(bot.pk)))
    assert block["side"] == "buy" and "beyond the limit of 9.5" in block["message"]
    assert redis_client.get(keys.portfolio_block(bob_bot.pk)) is None
    heard = pubsub.get_message(timeout=2)
    assert heard and heard["channel"].decode() == keys.bot_control(bot.pk) and heard["data"] == b"portfolio"

    # the same breach on the next pass: no second incident, notification or control message
    assert portfolio.sweep()["breaches"] == 0
    assert Incident.objects.filter(owner=alice).count() == 1 and Delivery.objects.filter(channel=channel).count() == 1
    assert pubsub.get_message(timeout=0.5) is None

    inventory_target_set(owner=alice, actor=alice, asset="BTC", max_net="11")
    assert portfolio.sweep() == {"users": 2, "breaches": 0, "cleared": 1}
    assert redis_client.get(keys.portfolio_block(bot.pk)) is None
    heard = pubsub.get_message(timeout=2)
    assert heard and heard["data"] == b"portfolio"
    assert not Incident.objects.filter(owner=bob).exists()

    # a new breach is a new incident; deleting the target (alice has no target left) lifts the block
    target = inventory_target_set(owner=alice, actor=alice, asset="BTC", max_net="9.5")
    assert portfolio.sweep()["breaches"] == 1 and Incident.objects.filter(owner=alice).count() == 2
    assert pubsub.get_message(timeout=2)["data"] == b"portfolio"
    inventory_target_delete(target=target, actor=alice)
    assert portfolio.sweep() == {"users": 1, "breaches": 0, "cleared": 1}
    assert redis_client.get(keys.portfolio_block(bot.pk)) is None
    assert pubsub.get_message(timeout=2)["data"] == b"portfolio"
    pubsub.close()


def test_a_running_bot_refuses_orders_that_grow_the_breach_and_quotes_again_once_cleared(host, redis_client):
    from apps.bots.models import Bot, BotEvent
    from apps.dashboard import live
    from apps.portfolio.targets import inventory_target_set
    from workers import bots as bot_tasks
    from workers import portfolio, supervisor

    user, _account, (bot,) = make_paper_bots(1, username="carol", spread="0.002")
    supervisor.tick()
    assert wait_until(lambda: Bot.objects.get(pk=bot.pk).actual_state == "running", 20)

    def sides() -> set[str]:
        return {o["side"] for o in (live.bot_status(bot_id=bot.pk) or {}).get("orders", [])}

    assert wait_until(lambda: sides() == {"buy", "sell"}, 20)
    inventory_target_set(owner=user, actor=user, asset="BTC", max_net="5")  # holds about 10 BTC: long breach
    portfolio.sweep()
    assert wait_until(lambda: BotEvent.objects.filter(bot=bot, code="portfolio_net_limit").exists(), 10)
    assert wait_until(
        lambda: BotEvent.objects.filter(bot=bot, code="portfolio_net_limit", kind="risk_reject").exists(), 15
    )
    assert wait_until(lambda: sides() == {"sell"}, 20), sides()  # bids filled or cancelled, never replaced
    mid = live.book_mid(venue=bot.market.venue, symbol=bot.market.symbol)
    payload = {"side": "buy", "price": str((mid * Decimal("0.99")).quantize(Decimal("0.01"))), "quantity": "0.01",
               "type": "limit", "reduce_only": False, "by": "carol"}  # fmt: skip
    assert bot_tasks.manual_order(bot.pk, json.dumps(payload)) == "sent to owner"
    assert wait_until(lambda: BotEvent.objects.filter(bot=bot, code="manual_order_refused").exists(), 10)
    refused = BotEvent.objects.get(bot=bot, code="manual_order_refused").message
    assert "beyond the limit of 5" in refused

    inventory_target_set(owner=user, actor=user, asset="BTC", max_net="100")
    portfolio.sweep()
    assert wait_until(lambda: BotEvent.objects.filter(bot=bot, code="portfolio_net_cleared").exists(), 10)
    assert wait_until(lambda: sides() == {"buy", "sell"}, 20), sides()


def test_no_second_hedge_while_the_last_hedge_order_is_still_working(clean_redis):
    from datetime import timedelta

    from django.utils import timezone

    from apps.bots.models import BotEvent
    from apps.orders.models import Order
    from workers.portfolio import _previous_hedge_working

    _user, account, (bot,) = make_paper_bots(1, username="erin", start=False)
    assert _previous_hedge_working(bot) is None
    now = timezone.now()
    BotEvent.objects.create(bot=bot, ts=now - timedelta(seconds=5), kind="lifecycle", code="manual_order",
                            message="manual order old-1 sent: an earlier one")  # fmt: skip
    BotEvent.objects.create(bot=bot, ts=now, kind="portfolio", code="portfolio_hedge", message="hedge")
    BotEvent.objects.create(bot=bot, ts=now + timedelta(milliseconds=5), kind="lifecycle", code="manual_order",
                            message="manual order h-1 sent: sell 0.3 BTC at 59880 limit by erin")  # fmt: skip
    common = {"bot": bot, "account": account, "market": bot.market, "side": "sell", "price": 59880, "quantity": "0.3"}
    Order.objects.create(client_order_id="old-1", status="open", **common)
    order = Order.objects.create(client_order_id="h-1", status="partially_filled", **common)
    assert _previous_hedge_working(bot) == "h-1"
    Order.objects.filter(pk=order.pk).update(status="filled")
    assert _previous_hedge_working(bot) is None  # the earlier manual order is not the hedge's
