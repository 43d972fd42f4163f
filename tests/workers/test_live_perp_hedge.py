"""A LIVE perpetual bot in hedge position mode against the fake Binance USD-M server through the
real ccxt ``binanceusdm``: the account's position mode is switched at start (``setPositionMode``,
``/fapi/v1/positionSide/dual``) before anything else, its quotes carry ``positionSide`` (never
``reduceOnly``), a bid and an ask fill so a long and a short leg are open at once on the exchange
and in the bot, and a switch the exchange cannot take (an open position) is refused plainly with
nothing applied."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.workers.helpers import wait_until
from tests.workers.test_live_perp import RAW, feed_until, make_perp_bot, open_orders, state, stop, usdm  # noqa: F401
from tests.workers.test_live_venue import fake_binance, host  # noqa: F401 - fixtures

pytestmark = [pytest.mark.django_db(transaction=True)]


def test_a_hedge_mode_bot_switches_the_account_and_keeps_a_long_and_a_short_leg(
    host,  # noqa: F811
    fake_binance,  # noqa: F811
    usdm,  # noqa: F811
    redis_client,
):
    from apps.bots.models import BotEvent
    from apps.orders.models import Fill
    from workers import supervisor

    bot = make_perp_bot({"leverage": 5, "margin_mode": "cross", "position_mode": "hedge"})
    supervisor.tick()
    assert feed_until(redis_client, lambda: len(open_orders(fake_binance, usdm)) >= 2, 30), state(bot)
    assert fake_binance.run(lambda: usdm.dual) is True
    paths = fake_binance.run(lambda: [(r.method, r.path) for r in fake_binance.server.requests])
    assert paths.index(("POST", "/fapi/v1/positionSide/dual")) < paths.index(("POST", "/fapi/v1/order"))
    sent = fake_binance.run(fake_binance.server.calls, "POST", "/fapi/v1/order")
    params = [{**r.query, **r.body} for r in sent]
    # flat: the bid opens the long leg, the ask the short leg; no reduceOnly in hedge mode
    assert {(p["side"], p["positionSide"]) for p in params} == {("BUY", "LONG"), ("SELL", "SHORT")}
    assert not any("reduceOnly" in p for p in params)
    assert wait_until(lambda: BotEvent.objects.filter(bot=bot, code="perp_configured").exists(), 5)
    configured = BotEvent.objects.get(bot=bot, code="perp_configured")
    assert configured.data["changed"] == ["position_mode hedge", "leverage 5"]
    assert configured.data["position_mode"] == "hedge"

    # Both quotes fill at the exchange: a long and a short leg at once, there and in the bot.
    orders = {o["side"]: o for o in open_orders(fake_binance, usdm)}
    buy = fake_binance.run(usdm.fill, orders["BUY"]["clientOrderId"], "0.004")
    sell = fake_binance.run(usdm.fill, orders["SELL"]["clientOrderId"], "0.004")
    assert wait_until(lambda: Fill.objects.filter(bot=bot, venue_trade_id__in=[buy["id"], sell["id"]]).count() == 2, 10)
    long, short = (fake_binance.run(usdm.leg, RAW, side) for side in ("LONG", "SHORT"))
    assert (long.amount, short.amount) == (Decimal("0.004"), Decimal("-0.004"))
    runner = host.bots[bot.pk]
    perp = runner.engine.perp

    def legs():
        pos = perp.position
        return pos.legs["long"].lots == 4 and pos.legs["short"].lots == -4 and pos

    pos = wait_until(legs, 10)
    assert pos, dict(perp.position.legs)
    assert pos.entry_price("long") == Decimal(orders["BUY"]["price"])
    assert pos.entry_price("short") == Decimal(orders["SELL"]["price"])
    assert runner.engine.portfolio.position == 0  # the strategy's inventory: long - short
    # positionRisk reports both legs; the bot's net agrees with the exchange's (no mismatch)
    feed_until(redis_client, lambda: runner.venue.perp.reads >= 2, 10)
    assert {r.position_side for r in runner.venue.perp.reports} == {"long", "short"}
    assert not BotEvent.objects.filter(bot=bot, code="position_mismatch").exists()
    figures = perp.snapshot()
    assert figures["legs"]["long"]["contracts"] == "0.004" and figures["legs"]["short"]["contracts"] == "-0.004"

    # The legs move behind the bot with the same net (0.005 and -0.005): after two reads the bot
    # takes the exchange's legs (no position incident: the net agrees).
    def widen():
        usdm.leg(RAW, "LONG").amount, usdm.leg(RAW, "SHORT").amount = Decimal("0.005"), Decimal("-0.005")

    fake_binance.run(widen)

    def lots():
        return perp.position.legs["long"].lots, perp.position.legs["short"].lots

    assert feed_until(redis_client, lambda: lots() == (5, -5), 15), lots()
    assert not BotEvent.objects.filter(bot=bot, code="position_mismatch").exists()
    # The requotes close the legs: a bid on the short leg, an ask on the long leg.
    closes = feed_until(
        redis_client,
        lambda: (
            {
                (p["side"], p["positionSide"])
                for r in fake_binance.run(fake_binance.server.calls, "POST", "/fapi/v1/order")[len(sent) :]
                for p in [{**r.query, **r.body}]
            }
            >= {("BUY", "SHORT"), ("SELL", "LONG")}
        ),
        20,
        mid=600_100,
    )
    assert closes
    stop(bot)

    # Started again: take-over replays the two fills, which name no leg (by the close-first rule
    # the sell would close the long); the exchange's legs, with the same net, are taken instead.
    from apps.bots.models import Bot
    from apps.bots.services import bot_start

    bot_start(bot=Bot.objects.get(pk=bot.pk), actor=bot.owner)
    supervisor.tick()

    def restarted():
        again = host.bots.get(bot.pk)
        perp = again is not None and again is not runner and again.engine is not None and again.engine.perp
        return perp and perp.position.legs["long"].lots == 5 and perp.position.legs["short"].lots == -5 and perp

    again = feed_until(redis_client, restarted, 30)
    assert again, state(bot)
    assert again.position.entry_price("long") == Decimal(orders["BUY"]["price"])
    stop(bot)


def test_a_flatten_of_equal_legs_closes_each_leg_on_the_exchange(
    host,  # noqa: F811
    fake_binance,  # noqa: F811
    usdm,  # noqa: F811
    redis_client,
):
    """Both quotes fill: legs +0.004 / -0.004 on the exchange, the net flat. The trader's Flatten
    (``apps.bots.controls.bot_flatten``, then the kill with flatten it enqueues) is not refused as
    flat, and the loop sends one IOC order per leg naming it (SELL positionSide=LONG closes the
    long, BUY positionSide=SHORT the short; never reduceOnly), each as large as its leg and priced
    at most 0.5 % through the touch; the exchange takes both (neither is larger than its leg)."""
    from apps.bots.controls import bot_flatten, bot_position
    from apps.bots.models import Bot
    from apps.orders.models import Fill, Order
    from tests.workers.test_live_perp import MID
    from workers import lifecycle, supervisor

    bot = make_perp_bot({"leverage": 5, "margin_mode": "cross", "position_mode": "hedge"})
    supervisor.tick()
    assert feed_until(redis_client, lambda: len(open_orders(fake_binance, usdm)) >= 2, 30), state(bot)
    orders = {o["side"]: o for o in open_orders(fake_binance, usdm)}
    buy = fake_binance.run(usdm.fill, orders["BUY"]["clientOrderId"], "0.004")
    sell = fake_binance.run(usdm.fill, orders["SELL"]["clientOrderId"], "0.004")
    assert wait_until(lambda: Fill.objects.filter(bot=bot, venue_trade_id__in=[buy["id"], sell["id"]]).count() == 2, 10)
    perp = host.bots[bot.pk].engine.perp

    def legs():
        return perp.position.legs["long"].lots == 4 and perp.position.legs["short"].lots == -4

    assert feed_until(redis_client, legs, 10), dict(perp.position.legs)
    assert bot_position(bot.pk) == 0  # the net of the fills: flat, yet both legs are open
    from apps.bots.hedge_position import bot_legs

    # what the trader's Flatten reads: the bot's published status, a moment behind its loop
    def published():
        found = bot_legs(Bot.objects.get(pk=bot.pk))
        return found is not None and found.long and found.short

    assert feed_until(redis_client, published, 10), bot_legs(Bot.objects.get(pk=bot.pk))
    sent_before = len(fake_binance.run(fake_binance.server.calls, "POST", "/fapi/v1/order"))

    bot_flatten(bot=Bot.objects.get(pk=bot.pk), actor=bot.owner)
    lifecycle.apply(bot.pk, kill=True, flatten=True)  # what the enqueued task does
    assert wait_until(lambda: state(bot)[0] == "stopped", 30), state(bot)
    sent = fake_binance.run(fake_binance.server.calls, "POST", "/fapi/v1/order")[sent_before:]
    params = [{**r.query, **r.body} for r in sent]
    closes = {(p["side"], p["positionSide"]): p for p in params if p.get("timeInForce") == "IOC"}
    assert set(closes) == {("SELL", "LONG"), ("BUY", "SHORT")}, params
    assert all(p["quantity"] == "0.004" and "reduceOnly" not in p for p in closes.values())
    # the touch is MID -/+ 5 ticks (0.1); the protection: max(5 ticks, 0.5 % of the mid) through it
    cross = max(5, (2 * MID) * 50 // 20_000)
    assert Decimal(closes[("SELL", "LONG")]["price"]) == Decimal(MID - 5 - cross) / 10
    assert Decimal(closes[("BUY", "SHORT")]["price"]) == Decimal(MID + 5 + cross) / 10
    rows = Order.objects.filter(bot=bot, time_in_force="ioc")
    assert rows.count() == 2 and not rows.filter(status="rejected").exists(), list(rows.values("status", "reason"))


def test_a_position_mode_switch_with_an_open_position_is_refused_with_nothing_applied(
    host,  # noqa: F811
    fake_binance,  # noqa: F811
    usdm,  # noqa: F811
    redis_client,
):
    from apps.bots.models import BotEvent
    from workers import supervisor

    def open_position():
        p = usdm.position(RAW)
        p.amount, p.entry = Decimal("0.01"), Decimal("60000")

    fake_binance.run(open_position)
    bot = make_perp_bot({"leverage": 5, "margin_mode": "isolated", "position_mode": "hedge"})
    supervisor.tick()
    assert feed_until(redis_client, lambda: state(bot)[0] == "error", 30), state(bot)
    expected = (
        "position_mode: cannot switch the binanceusdm account from one_way to hedge while BTC/USDT:USDT has an open "
        "position (0.01 contracts); accepted: a switch once every position is closed and no order is open"
    )
    reason = state(bot)[1]
    assert reason.startswith("configuration refused: ") and expected in reason, reason
    assert expected in BotEvent.objects.get(bot=bot, code="perp_refused").message
    for path in ("/fapi/v1/positionSide/dual", "/fapi/v1/leverage", "/fapi/v1/marginType", "/fapi/v1/order"):
        assert fake_binance.run(fake_binance.server.calls, "POST", path) == [], path
    assert fake_binance.run(lambda: usdm.dual) is False
