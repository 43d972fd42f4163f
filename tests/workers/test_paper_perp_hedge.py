"""A hosted paper perpetual bot in hedge position mode (``risk.perp.position_mode: hedge``,
``workers/paper_perp_hedge.py``): its quotes name their legs, the venue keeps a long and a short
leg (stored in Redis with the funding per leg and the legs of the working orders) that survive a
take-over, and an isolated leg is liquidated on its own margin.

Real in-process hosts, Redis and PostgreSQL, stepped through the shipped USD-M recording as in
``test_paper_perp.py`` (whose helpers this uses).
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest

from tests.workers.test_paper_perp import USDM, drive, drive_more, feed_events, leave, make_bot, run, stored_state

pytestmark = [pytest.mark.django_db(transaction=True)]


def test_position_mode_is_refused_by_name():
    from apps.backtests.validation import validate_perp
    from apps.derivatives.hosting import validate_live
    from trading.contracts import ContractSpec

    spec = ContractSpec.create(kind="linear", contract_size=1, settle="USDT", max_leverage=125)
    assert validate_perp({"position_mode": "dual"}, spec) == {
        "position_mode": "'dual' is not accepted; accepted: one_way, hedge"
    }
    assert validate_perp({"position_mode": "hedge"}, spec) == {}
    assert validate_live({"position_mode": "both"}, "BTC/USDT:USDT") == {
        "perp.position_mode": "'both' is not accepted; accepted: one_way, hedge"
    }


def test_hedge_legs_are_kept_by_the_paper_venue_and_survive_a_take_over(host):
    """Both sides quote close to the touch for two minutes: each fill books on the leg its
    order named (flat: the bid opens long, the ask short; then the quotes close the open leg).
    The stored state holds both legs; a new owner restores them, the funding per leg and the legs
    of the working orders, and has the same legs, net and figures."""
    from apps.orders.models import Fill
    from trading import hedge_legs
    from trading.contracts import PositionMode
    from trading.instruments import Side
    from trading.positions import PerpPosition

    _user, _account, bot = make_bot(
        USDM,
        {"USDT": "5000"},
        {"leverage": 5, "margin_mode": "isolated", "position_mode": "hedge"},
        {"order_amount": "0.01", "ask_spread": "0.00002"},
        name="hedge takeover",
    )
    events = feed_events(USDM[2], 2)
    runner = run(host, drive(host, bot.pk, events))
    try:
        perp = runner.engine.perp
        pos = perp.position
        assert pos.mode.value == "hedge" and set(pos.legs) == {"long", "short"}
        fills = list(Fill.objects.filter(bot=bot))
        assert {f.side for f in fills} == {"buy", "sell"}, [f.side for f in fills]
        net = sum((f.quantity if f.side == "buy" else -f.quantity) for f in fills)
        # the strategy's inventory is long - short, and each leg is on its own side of zero
        assert pos.contracts(pos.net_lots) == net == Decimal(runner.engine.portfolio.position) / 1000
        assert pos.legs["long"].lots >= 0 >= pos.legs["short"].lots
        # each fill booked on the leg its order named: the fills replayed in order onto a fresh
        # hedge position on those legs give the bot's legs; both legs were used
        named = [perp.hedge.leg_of(f.client_order_id) for f in fills]
        assert set(named) == {"long", "short"}, set(named)
        replay = PerpPosition(pos.instrument, pos.spec, PositionMode.HEDGE, pos.margin_mode, pos.leverage)
        inst = runner.setup.instrument
        for f, name in sorted(zip(fills, named, strict=True), key=lambda x: (x[0].ts, x[0].id)):
            side = Side.BUY if f.side == "buy" else Side.SELL
            hedge_legs.apply_fill(replay, side, inst.ticks(f.price), inst.lots(f.quantity), 0, name)
        assert {n: leg.lots for n, leg in replay.legs.items()} == {n: leg.lots for n, leg in pos.legs.items()}
        assert replay.realized == pos.realized
        # every order the engine placed named its leg
        working = runner.engine.orders.orders
        assert working and all(perp.hedge.leg_of(cid) in ("long", "short") for cid in working)
        state = stored_state(bot)
        assert state["legs"] == {name: [leg.lots, str(leg.basis)] for name, leg in pos.legs.items()}
        assert set(state["order_legs"]) <= set(working)
        figures = perp.snapshot()
        assert figures["position_mode"] == "hedge" and set(figures["legs"]) == {"long", "short"}
        legs = {name: (leg.lots, leg.basis) for name, leg in pos.legs.items()}
        realized, fees = pos.realized, pos.fees
    finally:
        run(host, leave(host, runner))
    host.drain_writers(30)
    from workers.host import Host

    other = Host(ttl_ms=3000)
    other.start_thread()
    assert other.started.wait(5)
    try:
        again = run(other, drive(other, bot.pk, events[-1:]))
        try:
            p2 = again.engine.perp
            assert {name: (leg.lots, leg.basis) for name, leg in p2.position.legs.items()} == legs
            assert (p2.position.realized, p2.position.fees) == (realized, fees)
            assert again.engine.portfolio.position == p2.position.net_lots
            assert p2.snapshot()["legs"]["long"]["entry_price"] == figures["legs"]["long"]["entry_price"]
        finally:
            run(other, leave(other, again))
        other.drain_writers(30)
    finally:
        other.stop()


def test_an_isolated_long_leg_is_liquidated_on_its_own_margin(host):
    """20x isolated, hedge mode: only the bid is near the touch, so the long leg grows; its
    isolated wallet is what it opened with (entry notional / 20), not the account's 300 USDT.
    The book drops below that leg's liquidation price: the leg is closed at its bankruptcy price
    (its wallet lost), an incident is written and the bot pauses, flat."""
    from apps.core.models import Incident
    from trading import hedge_legs
    from trading.contracts import to_decimal

    _user, _account, bot = make_bot(
        USDM,
        {"USDT": "300"},
        {"leverage": 20, "margin_mode": "isolated", "position_mode": "hedge"},
        {"order_amount": "0.01"},
        name="hedge liquidation",
    )
    events = feed_events(USDM[2], 1.5)
    runner = run(host, drive(host, bot.pk, events[: len(events) // 2]))
    try:
        perp = runner.engine.perp
        pos = perp.position
        assert pos.legs["long"].lots > 0 and pos.legs["short"].lots == 0, dict(pos.legs)
        side, liq = perp.leg_liquidations["long"]
        entry = pos.entry_price("long")
        wallet = hedge_legs.leg_wallet(pos, "long", perp.leg_funding.get("long", Fraction(0)))
        assert side == 1 and wallet == pos.spec.notional(pos.contracts(pos.legs["long"].lots), entry) / 20 + (
            perp.leg_funding.get("long", Fraction(0))
        )
        assert liq == perp.liquidation and entry * Fraction(94, 100) < liq < entry
        realized_before = pos.realized
        crash = to_decimal(liq * Fraction(97, 100), 1)
        run(host, drive_more(host, runner, events[len(events) // 2 :], crash))
        host.drain_writers(30)
        # the drive went on after the first half: the leg is what it was at the crash
        assert pos.legs["long"].lots == 0 and runner.paper_perp.liquidated is not None
        liquidated = stored_state(bot)["liquidated"]
        assert liquidated["position_mode"] == "hedge" and set(liquidated["legs"]) == {"long"}
        assert Decimal(liquidated["legs"]["long"]["pnl"]) < 0 and pos.realized < realized_before
        incident = Incident.objects.get(bot=bot, kind="liquidation")
        assert "the long leg (isolated)" in incident.message and "bankruptcy price" in incident.message
        # the leg's close is a Fill row at its bankruptcy price with its loss
        from apps.orders.models import Fill

        (row,) = Fill.objects.filter(bot=bot, liquidity="liq")
        leg = liquidated["legs"]["long"]
        assert row.venue_trade_id == f"liquidation-{liquidated['ts']}-long" and row.side == "sell"
        assert row.price == Decimal(leg["bankruptcy_price"]) and row.realized_pnl == Decimal(leg["pnl"])
        assert runner.state == "paused" and runner.engine.portfolio.position == 0
    finally:
        run(host, leave(host, runner))


def test_on_cross_margin_the_account_is_liquidated_closing_its_legs(host):
    """Cross margin, hedge mode: the account's wallet (300 USDT) backs the legs and one
    liquidation price is watched for them; the crash closes every open leg at the account's
    bankruptcy price, where the margin balance is used up."""
    from apps.core.models import Incident
    from trading.contracts import to_decimal

    _user, _account, bot = make_bot(
        USDM,
        {"USDT": "300"},
        {"leverage": 20, "margin_mode": "cross", "position_mode": "hedge"},
        {"order_amount": "0.01"},
        name="hedge cross liquidation",
    )
    events = feed_events(USDM[2], 1.5)
    runner = run(host, drive(host, bot.pk, events[: len(events) // 2]))
    try:
        perp = runner.engine.perp
        pos = perp.position
        assert pos.legs["long"].lots > 0, dict(pos.legs)
        ((name, (side, liq)),) = perp.leg_liquidations.items()
        assert name == "account" and side == 1 and liq == perp.liquidation
        crash = to_decimal(liq * Fraction(97, 100), 1)
        run(host, drive_more(host, runner, events[len(events) // 2 :], crash))
        host.drain_writers(30)
        assert pos.legs["long"].lots == 0 and pos.legs["short"].lots == 0
        # the account's margin balance is used up at the bankruptcy price
        assert perp.wallet + pos.realized + pos.funding - pos.fees == 0
        liquidated = stored_state(bot)["liquidated"]
        assert set(liquidated["legs"]) == {"account"}
        assert "the account (both legs, cross)" in Incident.objects.get(bot=bot, kind="liquidation").message
        # each closed leg is its own Fill row; their losses add up to the account's
        from apps.orders.models import Fill

        rows = {r.venue_trade_id: r for r in Fill.objects.filter(bot=bot, liquidity="liq")}
        closed = {leg for leg, c in liquidated["legs"]["account"]["contracts"].items() if Decimal(c)}
        assert set(rows) == {f"liquidation-{liquidated['ts']}-{leg}" for leg in closed}, (rows, closed)
        assert sum(r.realized_pnl for r in rows.values()) == Decimal(liquidated["pnl"])
        assert runner.state == "paused" and runner.engine.portfolio.position == 0
    finally:
        run(host, leave(host, runner))


def _seed_legs(bot, lots: int, price: Decimal) -> None:
    """A stored paper position with a long and a short leg of ``lots`` each at ``price`` (net 0),
    as a new owner finds it at take-over (``workers.paper_perp`` state)."""
    import json

    from workers import lifecycle, paper_perp

    basis = str(Fraction(price) * lots)
    state = {
        "legs": {"long": [lots, basis], "short": [-lots, basis]},
        "realized": "0", "fees": "0", "funding": "0", "last_fill": None, "liquidated": None,
        "liquidations": None, "leg_funding": {}, "order_legs": {},
    }  # fmt: skip
    key = paper_perp.state_key(bot.exchange_account_id, bot.market.symbol, bot.pk)
    lifecycle.redis_client().hset(key, mapping={"seq": 0, "state": json.dumps(state)})


def test_a_kill_with_flatten_closes_both_legs_of_equal_legs(host):
    """Legs +0.01 / -0.01 net to zero, but the bot is fully exposed on both: a kill with flatten
    sends one reduce-only IOC order per leg naming it (a sell closing the long leg, a buy closing
    the short leg), each as large as its leg and priced through the touch, and the paper venue's
    fills leave both legs at zero."""
    from apps.bots.models import BotEvent
    from apps.orders.models import Fill, Order
    from workers.bot_control import StopLoop

    _user, _account, bot = make_bot(
        USDM,
        {"USDT": "5000"},
        {"leverage": 5, "margin_mode": "isolated", "position_mode": "hedge"},
        {
            "order_amount": "0.01",
            "bid_spread": "0.05",
            "ask_spread": "0.05",
        },  # quotes far from the touch: nothing fills
        name="hedge flatten",
    )
    events = feed_events(USDM[2], 0.3)
    first = next(e for e in events if hasattr(e, "bids") and e.bids and e.asks)
    _seed_legs(bot, 10, Decimal(first.bids[0][0]) / 10)
    runner = run(host, drive(host, bot.pk, events))
    try:
        perp = runner.engine.perp
        pos = perp.position
        assert (pos.legs["long"].lots, pos.legs["short"].lots) == (10, -10)
        assert runner.engine.portfolio.position == 0  # the net: flat, yet both legs are open
        bid, ask = runner.engine.book.best_bid(), runner.engine.book.best_ask()
        with pytest.raises(StopLoop, match="kill_flatten"):  # the loop ends stopped
            run(host, runner._control("kill_flatten"))
        host.drain_writers(30)
        assert (pos.legs["long"].lots, pos.legs["short"].lots) == (0, 0), dict(pos.legs)
        orders = {o.side: o for o in Order.objects.filter(bot=bot, time_in_force="ioc")}
        assert set(orders) == {"buy", "sell"}, orders
        assert orders["sell"].quantity == orders["buy"].quantity == Decimal("0.010")
        assert perp.hedge.leg_of(orders["sell"].client_order_id) == "long"
        assert perp.hedge.leg_of(orders["buy"].client_order_id) == "short"
        inst = runner.setup.instrument
        # the same protection as a one-way flatten: at most 0.5 % (at least 5 ticks) through the touch
        cross = max(5, (bid + ask) * 50 // 20_000)
        assert inst.ticks(orders["sell"].price) == bid - cross and inst.ticks(orders["buy"].price) == ask + cross
        fills = Fill.objects.filter(bot=bot)
        assert sorted((f.side, f.quantity) for f in fills) == [("buy", Decimal("0.010")), ("sell", Decimal("0.010"))]
        message = BotEvent.objects.get(bot=bot, code="flatten").message
        assert "the long leg (0.010) and the short leg (0.010)" in message, message
        assert stored_state(bot)["legs"] == {"long": [0, "0"], "short": [0, "0"]}
    finally:
        if host.bots.get(bot.pk) is runner:
            run(host, leave(host, runner))
