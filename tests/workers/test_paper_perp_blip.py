"""The hosted paper venue liquidates a position whose mark went through its liquidation price and
came back between two cycles of the bot (``workers/paper_perp.py``: every book's mid since the
last check is noted, the worst one is judged).

Real in-process host, Redis and PostgreSQL. Each bot starts from a stored paper position (as a
new owner finds it), quoting far from the touch so nothing fills; it is stepped through the first
seconds of the shipped USD-M recording, then the host dispatches a crash (or a spike) and the
recovery before the bot's next cycle, which sees only the recovered book."""

from __future__ import annotations

import json
from fractions import Fraction

import pytest

from tests.workers.test_paper_perp import USDM, drive, feed_events, leave, make_bot, run, stored_state

pytestmark = [pytest.mark.django_db(transaction=True)]

FAR = {"order_amount": "0.01", "bid_spread": "0.05", "ask_spread": "0.05"}  # quotes that never fill
SMALL = FAR | {"order_amount": "0.002"}  # within a 30 USDT account's margin at 20x


def _seed(bot, legs: dict, **extra) -> None:
    """A stored paper position ``legs`` (``{name: lots}``, all at the recording's first bid)."""
    from workers import lifecycle, paper_perp

    price = _first_bid()
    state = {
        "legs": {name: [lots, str(price * abs(lots))] for name, lots in legs.items()},
        "realized": "0", "fees": "0", "funding": "0", "last_fill": None, "liquidated": None, "liquidations": None,
    } | extra  # fmt: skip
    key = paper_perp.state_key(bot.exchange_account_id, bot.market.symbol, bot.pk)
    lifecycle.redis_client().hset(key, mapping={"seq": 0, "state": json.dumps(state)})


def _events():
    return feed_events(USDM[2], 0.2)


def _first_bid() -> Fraction:
    first = next(e for e in _events() if getattr(e, "bids", None) and e.asks)
    return Fraction(first.bids[0][0], 10)  # tick 0.1


def _tick(price: Fraction, up: bool = False) -> Fraction:
    """``price`` rounded to a whole tick (0.1), down or up."""
    ticks = price * 10 // 1
    return Fraction(ticks + (1 if up and ticks != price * 10 else 0), 10)


def _snapshot_raw(ts: int, mid: Fraction) -> bytes:
    """An encoded top-of-book snapshot around ``mid`` (quote price), one tick each side."""
    from workers import codec

    mid_ticks = int(mid * 10)
    return codec.encode_snapshot(ts, [(mid_ticks - 1, 10**6)], [(mid_ticks + 1, 10**6)])


async def _blip(host, runner, mids: list[Fraction], *, one_batch: bool) -> int:
    """The host dispatches a snapshot at each of ``mids`` (in one reader batch, where all but the
    last are skipped as superseded, or one batch each, each applied and handed to the bot), then
    the bot runs one cycle and its lifecycle commands. Returns the first snapshot's ts."""
    from workers import keys

    setup = runner.setup
    stream = keys.feed_stream(setup.venue, setup.symbol)
    ts0 = runner.clock() + 1_000
    batch = [(stream, _snapshot_raw(ts0 + i, mid), 0) for i, mid in enumerate(mids)]
    if one_batch:
        host._dispatch(batch)
    else:
        for entry in batch:
            host._dispatch([entry])
    runner.clock = lambda: ts0 + len(mids)
    await runner._cycle()
    while runner.controls:
        await runner._control(runner.controls.popleft())
    return ts0


def test_a_crash_and_recovery_between_cycles_liquidates_a_one_way_isolated_long(host):
    """Long 0.01 at the first bid P, 20x isolated: wallet P x 0.01 / 20, liquidation P x 0.95 /
    0.996. The book falls to 1 % under it and is back at P before the bot's next cycle: the
    paper venue liquidates at the bankruptcy price P x 0.95, the mark recorded is the crash's."""
    _user, _account, bot = make_bot(USDM, {"USDT": "5000"}, {"leverage": 20, "margin_mode": "isolated"}, FAR,
                                    name="blip long")  # fmt: skip
    price = _first_bid()
    _seed(bot, {"both": 10}, isolated=str(price * Fraction(1, 100) / 20))
    runner = run(host, drive(host, bot.pk, _events()))
    try:
        perp = runner.engine.perp
        liq = perp.liquidation
        assert perp.position.net_lots == 10 and liq == price * Fraction(95, 100) / Fraction(996, 1000)
        # a recovery alone (no crash) liquidates nothing
        run(host, _blip(host, runner, [price], one_batch=False))
        assert runner.paper_perp.liquidated is None and perp.position.net_lots == 10
        crash = _tick(liq * Fraction(99, 100))
        inventory = runner.engine.portfolio.position  # the seeded position has no fills behind it
        ts0 = run(host, _blip(host, runner, [crash, price], one_batch=False))
        host.drain_writers(30)
        assert perp.mark > liq  # the cycle's own book is the recovered one
        liquidated = runner.paper_perp.liquidated
        assert liquidated is not None and perp.position.net_lots == 0
        assert Fraction(liquidated["mark"]) == crash
        assert Fraction(liquidated["bankruptcy_price"]) == price * Fraction(95, 100)
        assert liquidated["ts"] == ts0 + 2 and perp.position.realized == -price * Fraction(1, 100) / 20
        assert runner.state == "paused" and runner.engine.portfolio.position == inventory - 10  # the close, sold
        assert stored_state(bot)["liquidated"] == liquidated
    finally:
        run(host, leave(host, runner))


def test_a_spike_skipped_by_the_host_as_superseded_liquidates_a_one_way_cross_short(host):
    """Short 0.01 at P on cross margin with 30 USDT: liquidation (30 + 0.01 P) / (0.01 x 1.004).
    The spike above it and the recovery come in one reader batch: the host skips the spike's
    snapshot (superseded) but notes its mid for the paper venue, which liquidates the short."""
    _user, _account, bot = make_bot(USDM, {"USDT": "30"}, {"leverage": 20, "margin_mode": "cross"}, SMALL,
                                    name="blip short")  # fmt: skip
    price = _first_bid()
    _seed(bot, {"both": -10})
    runner = run(host, drive(host, bot.pk, _events()))
    try:
        perp = runner.engine.perp
        liq = perp.liquidation
        assert perp.position.net_lots == -10 and liq is not None and liq > price
        spike = _tick(liq * Fraction(101, 100), up=True)
        run(host, _blip(host, runner, [spike, price], one_batch=True))
        host.drain_writers(30)
        liquidated = runner.paper_perp.liquidated
        assert liquidated is not None and perp.position.net_lots == 0 and perp.mark < liq
        assert Fraction(liquidated["mark"]) == spike
        # cross: the account's margin balance is used up at the bankruptcy price
        assert perp.wallet + perp.position.realized + perp.position.funding - perp.position.fees == 0
    finally:
        run(host, leave(host, runner))


def test_a_crash_and_a_spike_between_cycles_liquidate_each_isolated_leg_at_its_own_mark(host):
    """Hedge mode, 20x isolated: long 0.01 and short 0.01 at P. Long leg: liquidation P x 0.95 /
    0.996, bankruptcy P x 0.95; short leg: P x 1.05 / 1.004, bankruptcy P x 1.05. Between two
    cycles the book falls under the first and rises over the second: both legs are liquidated,
    each by its own worst mark."""
    _user, _account, bot = make_bot(
        USDM, {"USDT": "5000"}, {"leverage": 20, "margin_mode": "isolated", "position_mode": "hedge"}, FAR,
        name="blip legs",
    )  # fmt: skip
    price = _first_bid()
    _seed(bot, {"long": 10, "short": -10}, leg_funding={}, order_legs={})
    runner = run(host, drive(host, bot.pk, _events()))
    try:
        perp = runner.engine.perp
        found = perp.leg_liquidations
        assert found == {
            "long": (1, price * Fraction(95, 100) / Fraction(996, 1000)),
            "short": (-1, price * Fraction(105, 100) / Fraction(1004, 1000)),
        }
        crash = _tick(found["long"][1] * Fraction(99, 100))
        spike = _tick(found["short"][1] * Fraction(101, 100), up=True)
        run(host, _blip(host, runner, [crash, spike, price], one_batch=False))
        host.drain_writers(30)
        assert perp.position.legs["long"].lots == 0 and perp.position.legs["short"].lots == 0
        legs = runner.paper_perp.liquidated["legs"]
        assert Fraction(legs["long"]["mark"]) == crash and Fraction(legs["short"]["mark"]) == spike
        assert Fraction(legs["long"]["bankruptcy_price"]) == price * Fraction(95, 100)
        assert Fraction(legs["short"]["bankruptcy_price"]) == price * Fraction(105, 100)
        # each leg lost its own wallet, P x 0.01 / 20
        assert perp.position.realized == -2 * price * Fraction(1, 100) / 20
        from apps.orders.models import Fill

        rows = {r.venue_trade_id for r in Fill.objects.filter(bot=bot, liquidity="liq")}
        ts = runner.paper_perp.liquidated["ts"]
        assert rows == {f"liquidation-{ts}-long", f"liquidation-{ts}-short"}
    finally:
        run(host, leave(host, runner))


def test_a_crash_between_cycles_liquidates_the_cross_account_of_both_legs(host):
    """Hedge mode, cross, 30 USDT: long 0.02 and short 0.01 at P (long-like: the lowest mark is
    the one judged). A crash under the account's liquidation price and back closes both legs."""
    _user, _account, bot = make_bot(
        USDM, {"USDT": "30"}, {"leverage": 20, "margin_mode": "cross", "position_mode": "hedge"}, SMALL,
        name="blip cross legs",
    )  # fmt: skip
    price = _first_bid()
    _seed(bot, {"long": 20, "short": -10}, leg_funding={}, order_legs={})
    runner = run(host, drive(host, bot.pk, _events()))
    try:
        perp = runner.engine.perp
        ((name, (side, liq)),) = perp.leg_liquidations.items()
        assert name == "account" and side == 1
        crash = _tick(liq * Fraction(99, 100))
        run(host, _blip(host, runner, [crash, price], one_batch=False))
        host.drain_writers(30)
        pos = perp.position
        assert pos.legs["long"].lots == 0 and pos.legs["short"].lots == 0 and perp.mark > liq
        liquidated = runner.paper_perp.liquidated
        assert set(liquidated["legs"]) == {"account"} and Fraction(liquidated["mark"]) == crash
        assert perp.wallet + pos.realized + pos.funding - pos.fees == 0
    finally:
        run(host, leave(host, runner))
