"""Hosted hedged bots: a real in-process host on the real Redis and PostgreSQL, two paper
accounts on two sim venues (maker on one, hedge on the other)."""

from __future__ import annotations

import json
import time
from decimal import Decimal

import pytest

from tests.workers.helpers import wait_until

pytestmark = [pytest.mark.django_db(transaction=True)]


def _market(venue: str, maker_fee: str = "0", taker_fee: str = "0"):
    from apps.exchanges.models import Market

    market, _ = Market.objects.update_or_create(
        venue=venue,
        symbol="BTC/USDT",
        defaults={
            "base": "BTC",
            "quote": "USDT",
            "tick_size": "0.01",
            "lot_size": "0.0001",
            "min_notional": "0",
            "maker_fee": maker_fee,
            "taker_fee": taker_fee,
        },
    )
    market.refresh_from_db()
    return market


def make_hedged_bot(maker_venue: str, hedge_venue: str, start: bool = True, **params):
    from apps.accounts.models import User
    from apps.bots.services import bot_create, bot_start
    from apps.exchanges.services import exchange_account_create

    user = User.objects.create_user(username=f"hedger{time.time_ns()}", password="pw-12345678")
    balances = {"BTC": "10", "USDT": "1000000"}
    maker_account = exchange_account_create(owner=user, label="maker", venue=maker_venue, paper_balances=balances)
    hedge_account = exchange_account_create(owner=user, label="hedge", venue=hedge_venue, paper_balances=balances)
    maker_market, hedge_market = _market(maker_venue), _market(hedge_venue)
    settings = {
        "hedge_account": hedge_account.pk,
        "hedge_market": hedge_market.pk,
        "order_amount": "0.01",
        "min_profitability": "0",
        "max_unhedged": "0.05",
        "requote_ticks": 0,
        **params,
    }
    bot = bot_create(
        owner=user,
        name="hedged",
        exchange_account=maker_account,
        market=maker_market,
        strategy="hedged_maker",
        params=settings,
        risk={"max_position_base": "5"},
    )
    if start:
        bot_start(bot=bot, actor=user)
    return user, bot, maker_market, hedge_market


def _net(bot, market) -> Decimal:
    from apps.orders.models import Fill

    net = Decimal(0)
    for f in Fill.objects.filter(bot=bot, client_order_id__startswith=bot.client_id_prefix):
        if f.account.venue == market.venue:
            net += f.quantity if f.side == "buy" else -f.quantity
    return net


def test_hosted_hedged_bot_hedges_every_maker_fill_and_records_attribution(host):
    from apps.bots.models import Bot, HedgeFillAttribution
    from apps.orders.models import Fill
    from workers import lifecycle, supervisor

    user, bot, _maker_market, _hedge_market = make_hedged_bot("sim:hx-maker", "sim:hx-hedge")
    supervisor.tick()
    assert wait_until(lambda: Bot.objects.get(pk=bot.pk).actual_state == "running", 20)
    prefix = bot.client_id_prefix
    maker_fills = Fill.objects.filter(bot=bot, client_order_id__startswith=prefix + "m-")
    assert wait_until(lambda: maker_fills.count() >= 3, 120), "no maker fills in 120 s"
    # the overview shows both legs while it runs
    from django.test import Client

    page = Client()
    page.force_login(user)
    html = page.get("/").content.decode()
    assert "hedge on sim:hx-hedge BTC/USDT" in html and "net " in html, html[:2000]
    for bot_row in [Bot.objects.get(pk=bot.pk)]:
        bot_row.desired_state = "stopped"
        bot_row.save(update_fields=["desired_state"])
        lifecycle.apply(bot.pk)
    assert wait_until(lambda: Bot.objects.get(pk=bot.pk).actual_state == "stopped", 30)
    host.drain_writers(10)
    fills = list(Fill.objects.filter(bot=bot).order_by("ts", "id"))
    maker = [f for f in fills if f.client_order_id.startswith(prefix + "m-")]
    hedge = [f for f in fills if f.client_order_id.startswith(prefix + "h-")]
    assert maker and hedge
    print(
        f"maker fills {len(maker)}, hedge fills {len(hedge)}, maker net {sum((f.quantity if f.side == 'buy' else -f.quantity for f in maker), Decimal(0))}"
    )
    assert all(f.liquidity == "maker" for f in maker)
    assert {f.account_id for f in maker} != {f.account_id for f in hedge}
    # each maker fill hedged once: as much hedged as made, never more (no hedge undone by another)
    assert sum(f.quantity for f in maker) == sum(f.quantity for f in hedge)
    maker_net = sum((f.quantity if f.side == "buy" else -f.quantity for f in maker), Decimal(0))
    hedge_net = sum((f.quantity if f.side == "buy" else -f.quantity for f in hedge), Decimal(0))
    # every maker fill hedged: the two legs' net positions cancel (whole hedge lots; same lot size)
    assert maker_net + hedge_net == 0, (maker_net, hedge_net)
    # each hedge fill came after a maker fill, within the hedge timeout plus a host cycle
    for f in hedge:
        before = [m for m in maker if m.ts <= f.ts]
        assert before, f"hedge fill {f.venue_trade_id} before any maker fill"
    # attribution: one row per maker fill, covered, exact decimals
    rows = {r.maker_trade_id: r for r in HedgeFillAttribution.objects.filter(bot=bot)}
    assert set(rows) == {f.venue_trade_id for f in maker}
    for f in maker:
        row = rows[f.venue_trade_id]
        assert row.quantity == f.quantity and row.price == f.price and row.side == f.side
        assert row.hedged_quantity + row.netted_quantity + row.open_quantity == row.quantity
    covered = [r for r in rows.values() if r.hedged_quantity > 0]
    assert covered and all(r.hedge_vwap is not None and r.hedge_latency_ms is not None for r in covered)
    latencies = sorted(r.hedge_latency_ms for r in covered)
    print(f"hedge latency ms (maker fill -> first hedge fill): {[str(x) for x in latencies]}")
    assert latencies[-1] < Decimal("1500"), latencies
    assert all(isinstance(r.realized_edge, Decimal) for r in rows.values())
    # the API and the bot page show them
    from rest_framework.test import APIClient

    api = APIClient()
    api.force_authenticate(user)
    answer = api.get(f"/api/v1/bots/{bot.pk}/hedge-attribution/").json()
    assert answer["count"] == len(maker)
    assert {r["maker_trade_id"] for r in answer["fills"]} == set(rows)
    assert answer["distribution"]["hedge_latency_ms"]["count"] == len(covered)
    shown = next(r for r in answer["fills"] if r["maker_trade_id"] == maker[0].venue_trade_id)
    assert Decimal(shown["realized_edge"]) == rows[maker[0].venue_trade_id].realized_edge
    html = page.get(f"/bots/{bot.pk}/").content.decode()
    assert "Hedged legs" in html and "Per-fill attribution" in html and 'id="hedged-fills"' in html
    assert "No maker fill yet." not in html


def test_stale_hedge_feed_stops_maker_quoting_raises_the_incident_and_resumes_when_fresh(host, redis_client):
    """The hedge venue's feed loses its owner (its lease taken, so no host publishes it): the
    hedge book goes stale, every maker quote is cancelled at once, a bot event of kind ``risk``
    and an incident name the exposure left; no maker order is placed while it is stale. The
    feed comes back and, the bot being flat, quoting resumes by itself."""
    from apps.bots.models import Bot, BotEvent
    from apps.core.models import Incident
    from apps.orders.models import Order
    from workers import keys, supervisor

    user, bot, maker_market, hedge_market = make_hedged_bot("sim:hs-maker", "sim:hs-hedge", stale_after_ms=500)
    supervisor.tick()
    maker_account = bot.exchange_account_id
    k_maker_orders = keys.paper(maker_account, "BTC/USDT", "orders")
    assert wait_until(lambda: redis_client.hlen(k_maker_orders) >= 2, 30), "the bot never quoted"
    lease = keys.feed_lease(hedge_market.venue, "BTC/USDT")
    assert wait_until(lambda: redis_client.get(lease) is not None, 10)
    redis_client.set(lease, "test-holder:0", px=60_000)  # the feed's owner loses it; nobody else may claim
    stopped = BotEvent.objects.filter(bot=bot, kind="risk", code="hedge_quoting_stopped")
    assert wait_until(stopped.exists, 15), list(BotEvent.objects.filter(bot=bot).values_list("code", "message"))
    event = stopped.first()
    assert "hedge venue's book" in event.message and "exposure" in event.message
    assert wait_until(lambda: redis_client.hlen(k_maker_orders) == 0, 5), "maker quotes left resting"
    incident = Incident.objects.get(bot=bot, kind="hedge")
    assert "exposure left" in incident.message and incident.data["asset"] == "BTC"
    assert incident.data["code"] == "quoting_stopped"
    # the notifications' event scan makes it a risk-breach notification for the owner
    from django.utils import timezone

    from apps.notifications.delivery import notify_recent_events
    from apps.notifications.models import Delivery
    from apps.notifications.services import channel_create, rule_create

    channel = channel_create(owner=user, kind="discord", name="dc", config={"url": "http://127.0.0.1:9/x"})
    rule_create(owner=user, event_kind="risk_breach", channels=[channel])
    assert notify_recent_events(now=timezone.now(), redis=redis_client)["bot_events"] >= 1
    delivery = Delivery.objects.get(event_kind="risk_breach", dedupe_key__contains="hedge_quoting_stopped")
    assert "exposure" in json.dumps(delivery.payload)
    time.sleep(0.5)  # order rows follow the venue on the host's writer
    maker_orders = Order.objects.filter(bot=bot, market=maker_market)
    count = maker_orders.count()
    time.sleep(2.0)  # still stale: nothing quoted
    assert redis_client.hlen(k_maker_orders) == 0
    assert maker_orders.count() == count
    # The trader's resume action reaches the loop (it quotes again at once, flat or not; with the
    # hedge book still stale its next check stops it again).
    from rest_framework.test import APIClient

    api = APIClient()
    api.force_authenticate(user)
    assert api.post(f"/api/v1/bots/{bot.pk}/hedge-resume/").status_code == 202
    assert BotEvent.objects.filter(bot=bot, code="hedge_resume_requested").exists()
    from workers.bots import hedge_resume

    assert hedge_resume(bot.pk) == "sent to owner"  # the task the API enqueued (no Celery worker here)
    by_trader = BotEvent.objects.filter(bot=bot, code="quoting_resumed", message="resumed by the trader")
    assert wait_until(by_trader.exists, 10)
    assert wait_until(lambda: stopped.count() >= 2, 10)
    redis_client.delete(lease)  # the feed is claimed again by the host
    resumed = BotEvent.objects.filter(bot=bot, code="quoting_resumed", message__startswith="flat again")
    assert wait_until(resumed.exists, 20)
    assert wait_until(lambda: redis_client.hlen(k_maker_orders) >= 1, 10), "quoting did not resume"
    assert Bot.objects.get(pk=bot.pk).actual_state == "running"


def test_take_over_hedges_a_maker_fill_left_unhedged_once(host):
    """The previous owner died after a maker fill was recorded and before its hedge left: the new
    owner's take-over rebuilds the exposure from the recorded fills and hedges it, once."""
    from apps.bots.models import Bot, BotEvent
    from apps.bots.services import bot_start
    from apps.orders.models import Fill, Order
    from trading.events import PlaceOrder, TimeInForce
    from trading.instruments import Side
    from workers import lifecycle, records, supervisor

    user, bot, maker_market, hedge_market = make_hedged_bot("sim:ht-maker", "sim:ht-hedge", start=False)
    inst = records.market_instrument(maker_market)
    bot.refresh_from_db()
    cid = f"{bot.client_id_prefix}m-0"
    price = inst.ticks(Decimal("60000"))
    qty = inst.lots(Decimal("0.01"))
    place = PlaceOrder(cid, Side.BUY, price, qty, TimeInForce.POST_ONLY, "hedged quote")
    records.orders_create([(bot.pk, bot.exchange_account_id, maker_market.pk, inst, place, "dead-1", time.time_ns())])
    records.orders_update([(cid, "filled", "dead-1", qty, "", inst)])
    setup = records.bot_setup(bot.pk)
    records.fills_record([records.fill_row(setup, time.time_ns(), cid, Side.BUY, price, qty, 0, True, "dead-t1")])
    bot_start(bot=bot, actor=user)
    supervisor.tick()
    assert wait_until(lambda: Bot.objects.get(pk=bot.pk).actual_state == "running", 20)
    take_over = BotEvent.objects.filter(bot=bot, code="take_over")
    assert wait_until(take_over.exists, 10)
    assert "exposure 0.01" in take_over.first().message
    first_hedge = Order.objects.filter(bot=bot, client_order_id=f"{bot.client_id_prefix}h-0")
    assert wait_until(lambda: first_hedge.filter(status="filled").exists(), 20), list(
        Order.objects.filter(bot=bot).values_list("client_order_id", "status", "reason")
    )
    hedge = first_hedge.get()
    assert hedge.side == "sell" and hedge.quantity == Decimal("0.01") and hedge.market_id == hedge_market.pk
    time.sleep(2.0)  # the bot quotes on; any later maker fill gets its own hedge
    Bot.objects.filter(pk=bot.pk).update(desired_state="stopped")
    lifecycle.apply(bot.pk)
    assert wait_until(lambda: Bot.objects.get(pk=bot.pk).actual_state == "stopped", 30)
    host.drain_writers(10)
    fills = Fill.objects.filter(bot=bot)
    maker = [f for f in fills if f.client_order_id.startswith(bot.client_id_prefix + "m-")]
    hedges = [f for f in fills if f.client_order_id.startswith(bot.client_id_prefix + "h-")]
    # hedged once: as much hedged as made, and the two legs net to zero
    assert sum(f.quantity for f in maker) == sum(f.quantity for f in hedges)
    net = sum((f.quantity if f.side == "buy" else -f.quantity for f in [*maker, *hedges]), Decimal(0))
    assert net == 0


def test_stopping_a_hedged_bot_without_an_owner_cancels_both_legs_orders(clean_redis):
    """Its host stopped (leases released, orders left resting on the paper venues): the stop
    with no owner finds the orders of both legs by their client-id families and cancels them."""
    from apps.bots.models import Bot
    from workers import keys, lifecycle, supervisor
    from workers.host import Host

    _user, bot, _maker_market, hedge_market = make_hedged_bot("sim:hu-maker", "sim:hu-hedge")
    bot.refresh_from_db()
    h = Host(ttl_ms=3000)
    h.start_thread()
    assert h.started.wait(5)
    try:
        supervisor.tick()
        k_maker = keys.paper(bot.exchange_account_id, "BTC/USDT", "orders")
        assert wait_until(lambda: clean_redis.hlen(k_maker) >= 2, 30), "the bot never quoted"
    finally:
        h.stop()
    resting = [c.decode() for c in clean_redis.hkeys(k_maker)]
    assert resting and all(c.startswith(bot.client_id_prefix + "m-") for c in resting)
    # an order left on the hedge leg too (as a dead owner's limit hedge would be)
    k_hedge = keys.paper(bot.params["hedge_account"], hedge_market.symbol, "orders")
    clean_redis.hset(k_hedge, f"{bot.client_id_prefix}h-9", clean_redis.hget(k_maker, resting[0]))
    Bot.objects.filter(pk=bot.pk).update(desired_state="stopped")
    assert lifecycle.apply(bot.pk) == "stop (unowned)"
    assert clean_redis.hlen(k_maker) == 0 and clean_redis.hlen(k_hedge) == 0
    assert Bot.objects.get(pk=bot.pk).actual_state == "stopped"


def test_a_hedge_failing_past_its_retry_budget_stops_quoting_until_the_trader_resumes(host, redis_client):
    """The hedge venue answers every order 429/5xx (the paper venue's fault injection, on the
    hedge leg only): the maker fill's hedge fails, is retried once, the budget is spent; quoting
    stays stopped (not flat), the incident names the exposure; the faults cleared, the trader's
    resume hedges the exposure and the legs net to zero."""
    from apps.bots.models import Bot, BotEvent
    from apps.core.models import Incident
    from apps.orders.models import Fill
    from workers import keys, lifecycle, supervisor
    from workers.bots import hedge_resume
    from workers.paper_faults import PaperFaults

    _user, bot, _maker_market, _hedge_market = make_hedged_bot("sim:hf-maker", "sim:hf-hedge", retry_budget=1)
    supervisor.tick()
    assert wait_until(lambda: bot.pk in host.bots and host.bots[bot.pk].hedged is not None, 20)
    assert wait_until(lambda: "hedge" in host.bots[bot.pk].hedged.legs, 20)
    host.bots[bot.pk].hedged.legs["hedge"].venue.faults = PaperFaults(error=1.0, seed=3)
    prefix = bot.client_id_prefix
    exhausted = BotEvent.objects.filter(bot=bot, kind="risk", code="hedge_hedge_budget_exhausted")
    assert wait_until(exhausted.exists, 120), list(BotEvent.objects.filter(bot=bot).values_list("code", "message"))
    incident = Incident.objects.get(bot=bot, kind="hedge", data__code="hedge_budget_exhausted")
    made = Fill.objects.filter(bot=bot, client_order_id__startswith=prefix + "m-")
    assert made.exists() and not Fill.objects.filter(bot=bot, client_order_id__startswith=prefix + "h-").exists()
    assert "left unhedged" in incident.message and incident.data["exposure"] != "0.0"
    k_maker = keys.paper(bot.exchange_account_id, "BTC/USDT", "orders")
    assert wait_until(lambda: redis_client.hlen(k_maker) == 0, 5)
    time.sleep(2.0)  # not flat: no quote, no resume by itself
    assert redis_client.hlen(k_maker) == 0
    assert not BotEvent.objects.filter(bot=bot, code="quoting_resumed").exists()
    host.bots[bot.pk].hedged.legs["hedge"].venue.faults = None
    assert hedge_resume(bot.pk) == "sent to owner"
    hedged = Fill.objects.filter(bot=bot, client_order_id__startswith=prefix + "h-")
    assert wait_until(hedged.exists, 20), "the exposure was not hedged after the resume"
    Bot.objects.filter(pk=bot.pk).update(desired_state="stopped")
    lifecycle.apply(bot.pk)
    assert wait_until(lambda: Bot.objects.get(pk=bot.pk).actual_state == "stopped", 30)
    host.drain_writers(10)
    fills = list(Fill.objects.filter(bot=bot))
    net = sum((f.quantity if f.side == "buy" else -f.quantity for f in fills), Decimal(0))
    assert net == 0


def test_owner_gone_while_the_hedge_is_in_flight_the_next_owner_hedges_once(clean_redis):
    """Host A's hedge orders spend 5 s in flight (the paper fault injection's delay, hedge leg
    only); A stops while a maker fill's hedge has not reached the venue. Host B takes the bot
    over and hedges the fill; the hedge A never sent is not sent by anyone: as much hedged as
    made."""
    from apps.bots.models import Bot
    from apps.orders.models import Fill
    from workers import lifecycle, supervisor
    from workers.host import Host
    from workers.paper_faults import PaperFaults

    _user, bot, _maker_market, _hedge_market = make_hedged_bot("sim:hk-maker", "sim:hk-hedge")
    bot.refresh_from_db()
    prefix = bot.client_id_prefix
    a = Host(ttl_ms=3000)
    a.start_thread()
    assert a.started.wait(5)
    try:
        supervisor.tick()
        assert wait_until(lambda: bot.pk in a.bots and "hedge" in getattr(a.bots[bot.pk].hedged, "legs", {}), 20)
        a.bots[bot.pk].hedged.legs["hedge"].venue.faults = PaperFaults(delay_ms=5000, seed=1)
        made = Fill.objects.filter(bot=bot, client_order_id__startswith=prefix + "m-")
        assert wait_until(made.exists, 120), "no maker fill"
    finally:
        a.stop()
    assert not Fill.objects.filter(bot=bot, client_order_id__startswith=prefix + "h-").exists()
    b = Host(ttl_ms=3000)
    b.start_thread()
    assert b.started.wait(5)
    try:
        supervisor.tick()
        hedged = Fill.objects.filter(bot=bot, client_order_id__startswith=prefix + "h-")
        assert wait_until(hedged.exists, 30), "the new owner did not hedge"
        Bot.objects.filter(pk=bot.pk).update(desired_state="stopped")
        lifecycle.apply(bot.pk)
        assert wait_until(lambda: Bot.objects.get(pk=bot.pk).actual_state == "stopped", 30)
    finally:
        b.stop()
    fills = list(Fill.objects.filter(bot=bot))
    maker = [f for f in fills if f.client_order_id.startswith(prefix + "m-")]
    hedges = [f for f in fills if f.client_order_id.startswith(prefix + "h-")]
    assert sum(f.quantity for f in maker) == sum(f.quantity for f in hedges)
    assert sum((f.quantity if f.side == "buy" else -f.quantity for f in fills), Decimal(0)) == 0
