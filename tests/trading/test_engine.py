"""The engine end to end: events in, commands out, with risk, rebalancing and lifecycle."""

from __future__ import annotations

from trading.engine import Engine
from trading.events import (
    BookDelta,
    BookSnapshot,
    CancelOrder,
    Liquidity,
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    PlaceOrder,
    TimeInForce,
    Timer,
    TopOfBook,
)
from trading.instruments import Instrument, Side
from trading.rebalance import RebalanceConfig
from trading.risk import RiskAction, RiskLimits
from trading.strategy import Quote, QuoteSet

SEC = 1_000_000_000
INST = Instrument.create(symbol="BTC/USDT", tick_size="0.01", lot_size="0.001", maker_fee="0.001", taker_fee="0.002")


class Ladder:
    """Test strategy: ``levels`` quotes per side, ``offset`` ticks off the touch, one tick apart."""

    name = "ladder"

    def __init__(self, levels: int = 2, qty: int = 10, offset: int = 1) -> None:
        self.levels, self.qty, self.offset = levels, qty, offset
        self.fills = 0

    def on_event(self, event, ctx):
        if isinstance(event, OrderFilled):
            self.fills += 1
            return None
        bid, ask = ctx.book.best_bid(), ctx.book.best_ask()
        if bid is None or ask is None:
            return None
        return QuoteSet(
            tuple(Quote(Side.BUY, bid - self.offset - i, self.qty, i) for i in range(self.levels)),
            tuple(Quote(Side.SELL, ask + self.offset + i, self.qty, i) for i in range(self.levels)),
            "ladder",
        )


class Boom:
    name = "boom"

    def on_event(self, event, ctx):
        raise RuntimeError("bad maths")


def engine(strategy=None, **kw) -> Engine:
    limits = kw.pop("limits", {})
    kw.setdefault("initial_quote", INST.cash_units("100000"))
    return Engine(strategy or Ladder(), INST, bot_id="7", risk=RiskLimits.from_dict(limits), **kw)


def snap(ts=1, bid=5_000_000, ask=5_000_010, seq=1):
    return BookSnapshot(ts, ((bid, 1000),), ((ask, 1000),), sequence=seq)


def delta(ts, seq, bids=(), asks=()):
    return BookDelta(ts, tuple(bids), tuple(asks), seq, seq)


def accept_all(e: Engine, cmds, ts):
    for c in cmds:
        if isinstance(c, PlaceOrder):
            e.on_event(OrderAccepted(ts, c.client_order_id, "v" + c.client_order_id))


def test_first_book_places_the_full_ladder_then_nothing_while_unchanged():
    e = engine()
    cmds = e.on_event(snap())
    assert [(c.side, c.price) for c in cmds] == [
        (Side.BUY, 4_999_999),
        (Side.SELL, 5_000_011),
        (Side.BUY, 4_999_998),
        (Side.SELL, 5_000_012),
    ]
    assert all(c.client_order_id.startswith("mm7-") for c in cmds)
    accept_all(e, cmds, 2)
    assert e.on_event(delta(3, 2, bids=[(4_999_000, 5)])) == []


def test_touch_move_requotes_minimally():
    e = engine()
    accept_all(e, e.on_event(snap()), 2)
    cmds = e.on_event(delta(3, 2, bids=[(5_000_001, 3)]))
    assert [type(c) for c in cmds] == [CancelOrder, PlaceOrder]
    assert cmds[1].price == 5_000_000 and cmds[1].side is Side.BUY


def test_refresh_tolerance_keeps_orders_on_small_moves():
    e = engine(refresh_tolerance=0.0001)
    accept_all(e, e.on_event(snap()), 2)
    assert e.on_event(delta(3, 2, bids=[(5_000_001, 3)])) == []


def test_max_order_age_refreshes_on_timer():
    e = engine(max_order_age_ns=30 * SEC)
    accept_all(e, e.on_event(snap()), 2)
    assert e.on_event(Timer(20 * SEC)) == []
    cmds = e.on_event(Timer(31 * SEC))
    assert [type(c) for c in cmds].count(CancelOrder) == 4
    assert [type(c) for c in cmds].count(PlaceOrder) == 4


def test_fill_updates_portfolio_and_strategy_sees_it():
    strat = Ladder()
    e = engine(strat)
    cmds = e.on_event(snap())
    accept_all(e, cmds, 2)
    bid0 = cmds[0]
    e.on_event(OrderFilled(3, bid0.client_order_id, Side.BUY, bid0.price, 4, 6, 0, Liquidity.MAKER, "T1"))
    assert e.portfolio.position == 4
    assert strat.fills == 1
    e.on_event(OrderFilled(4, bid0.client_order_id, Side.BUY, bid0.price, 4, 6, 0, Liquidity.MAKER, "T1"))
    assert e.portfolio.position == 4  # duplicate ignored
    assert any(n.code == "duplicate_fill" for n in e.notes)


def test_partially_filled_order_is_replaced_to_restore_size():
    e = engine()
    cmds = e.on_event(snap())
    accept_all(e, cmds, 2)
    bid0 = cmds[0]
    out = e.on_event(OrderFilled(3, bid0.client_order_id, Side.BUY, bid0.price, 4, 6, 0, Liquidity.MAKER, "T1"))
    assert [type(c) for c in out] == [CancelOrder, PlaceOrder]
    assert out[0].client_order_id == bid0.client_order_id and out[1].qty == 10


def test_pre_trade_reject_drops_order_and_records_readable_note():
    e = engine(limits={"max_position_base": "0.015"})
    cmds = e.on_event(snap())
    # each side: 10 lots fit (0.010 <= 0.015) but 20 do not
    assert [(c.side, c.qty) for c in cmds] == [(Side.BUY, 10), (Side.SELL, 10)]
    notes = [n for n in e.notes if n.kind == "risk_reject"]
    assert notes and notes[0].code == "max_position_base"
    assert "limit 0.015 BTC" in notes[0].message


def test_sequence_gap_pulls_quotes_until_snapshot():
    e = engine()
    accept_all(e, e.on_event(snap()), 2)
    cmds = e.on_event(delta(3, 5, bids=[(5_000_001, 3)]))
    assert [type(c) for c in cmds] == [CancelOrder] * 4
    assert e.notes[-1].code == "sequence_gap"
    assert e.on_event(delta(4, 6)) == []
    for c in cmds:
        e.on_event(OrderCancelled(5, c.client_order_id))
    again = e.on_event(snap(ts=6, seq=10))
    assert [type(c) for c in again] == [PlaceOrder] * 4


def test_top_of_book_feed_drives_quotes_without_depth():
    e = engine(Ladder(levels=1))
    cmds = e.on_event(TopOfBook(1, 100, 5, 102, 5))
    assert [(c.side, c.price) for c in cmds] == [(Side.BUY, 99), (Side.SELL, 103)]


def test_strategy_exception_is_contained_and_pulls_quotes():
    e = engine(Boom())
    assert e.on_event(snap()) == []
    assert e.notes[-1].code == "strategy_error" and "bad maths" in e.notes[-1].message


def test_pause_pulls_quotes_and_resume_requotes():
    e = engine()
    accept_all(e, e.on_event(snap()), 2)
    cmds = e.pause(3)
    assert [type(c) for c in cmds] == [CancelOrder] * 4
    for c in cmds:
        e.on_event(OrderCancelled(4, c.client_order_id))
    assert e.on_event(delta(5, 2, bids=[(4_999_000, 1)])) == []
    e.resume(6)
    assert len(e.on_event(delta(7, 3, bids=[(4_999_001, 1)]))) == 4


def test_stop_cancels_everything_and_kill_refuses_new_orders():
    e = engine()
    accept_all(e, e.on_event(snap()), 2)
    assert len(e.stop(3)) == 4
    assert e.on_event(delta(4, 2, bids=[(5_000_001, 1)])) == []
    e2 = engine()
    accept_all(e2, e2.on_event(snap()), 2)
    assert len(e2.kill(3)) == 4
    e2.resume(4)
    e2.on_event(delta(5, 2, bids=[(5_000_001, 1)]))
    assert e2.status.action == RiskAction.KILL


def test_reduce_only_quotes_only_the_reducing_side_sized_to_position():
    e = engine(limits={"max_inventory_deviation": 0.05, "on_inventory_deviation": "reduce_only"}, target_base_ratio=0.0)
    cmds = e.on_event(snap())
    accept_all(e, cmds, 2)
    bid0 = cmds[0]
    # buy 10 lots: base becomes ~0.05 BTC * 50k = 2.5k of 100k -> 2.5%: still fine
    e.on_event(OrderFilled(3, bid0.client_order_id, Side.BUY, bid0.price, 10, 0, 0, Liquidity.MAKER, "T1"))
    assert e.status.action == RiskAction.NONE
    # a big fill on the second bid pushes inventory past 5%
    bid1 = cmds[2]
    e.on_event(OrderFilled(4, bid1.client_order_id, Side.BUY, bid1.price, 10, 0, 0, Liquidity.MAKER, "T2"))
    e.portfolio.on_fill(OrderFilled(4, "manual", Side.BUY, bid1.price, 100, 0, 0, Liquidity.MAKER, "T3"))
    out = e.on_event(delta(5, 2, asks=[(5_000_020, 1)]))
    assert e.status.action == RiskAction.REDUCE_ONLY
    assert e.desired.bids  # the strategy still wants bids ...
    assert not [c for c in out if isinstance(c, PlaceOrder) and c.side is Side.BUY]  # ... none are sent
    assert not [o for o in e.orders.live() if o.side is Side.BUY]
    assert len([o for o in e.orders.live() if o.side is Side.SELL]) == 2
    assert any(n.kind == "risk" and n.code == "inventory_deviation" for n in e.notes)


def test_widen_pushes_quotes_away_from_mid():
    e = engine(
        Ladder(levels=1, offset=10),
        limits={"volatility_pause": 0.0001, "on_volatility": "widen", "widen_multiplier": 3},
    )
    e.on_event(snap())
    out = e.on_event(BookSnapshot(3, ((5_001_990, 5),), ((5_002_000, 5),), sequence=9))  # +0.04% in 3 ns
    assert e.status.action == RiskAction.WIDEN
    places = [c for c in out if isinstance(c, PlaceOrder)]
    assert len(places) == 2
    mid = (5_001_990 + 5_002_000) / 2
    for c in places:
        assert abs(c.price - mid) >= 3 * 14  # 15 ticks from mid before widening


def test_daily_loss_flattens_with_ioc_then_stays_out():
    e = engine(limits={"daily_loss_limit": "1", "on_daily_loss": "flatten"})
    cmds = e.on_event(snap())
    accept_all(e, cmds, 2)
    bid0 = cmds[0]
    e.on_event(OrderFilled(3, bid0.client_order_id, Side.BUY, bid0.price, 10, 0, 0, Liquidity.MAKER, "T1"))
    # price drops 5%: 0.01 BTC loses ~25 USDT
    out = e.on_event(BookSnapshot(4, ((4_750_000, 100),), ((4_750_010, 100),), sequence=50))
    assert e.status.action == RiskAction.FLATTEN
    flat = [c for c in out if isinstance(c, PlaceOrder)]
    assert len(flat) == 1 and flat[0].reason == "flatten" and flat[0].time_in_force is TimeInForce.IOC
    assert flat[0].side is Side.SELL and flat[0].qty == 10 and flat[0].reduce_only
    assert all(c.client_order_id != flat[0].client_order_id for c in out if isinstance(c, CancelOrder))
    assert e.on_event(delta(5, 51, bids=[(4_750_001, 1)])) == []  # flatten already in flight
    e.on_event(OrderFilled(6, flat[0].client_order_id, Side.SELL, 4_750_001, 10, 0, 0, Liquidity.TAKER, "T9"))
    assert e.portfolio.position == 0
    assert [c for c in e.on_event(delta(7, 52, bids=[(4_750_002, 1)])) if isinstance(c, PlaceOrder)] == []
    assert any(n.kind == "flatten" for n in e.notes)


def test_rebalance_buys_back_toward_target_and_records_why():
    e = engine(
        Ladder(levels=1),
        target_base_ratio=0.5,
        rebalance=RebalanceConfig(threshold=0.2, cross_ticks=2, cooldown_s=5),
        initial_quote=INST.cash_units("10000"),
    )
    out = e.on_event(snap())
    reb = [c for c in out if isinstance(c, PlaceOrder) and c.reason == "rebalance"]
    assert len(reb) == 1
    assert reb[0].side is Side.BUY and reb[0].time_in_force is TimeInForce.IOC
    assert reb[0].price == 5_000_012
    # half of 10,000 USDT at 50,000 = 0.1 BTC = 100 lots
    assert reb[0].qty == 99
    note = next(n for n in e.notes if n.kind == "rebalance")
    assert "target 50.0%" in note.message
    assert [c for c in e.on_event(delta(2, 2, bids=[(4_999_000, 1)])) if c.reason == "rebalance"] == []


def test_state_for_persistence_has_sequence_orders_and_pnl():
    e = engine(client_id_start=100)
    cmds = e.on_event(snap())
    st = e.state()
    assert st["client_id_sequence"] == 100 + len(cmds)
    assert {o["client_order_id"] for o in st["working_orders"]} == {c.client_order_id for c in cmds}
    assert st["pnl"].equity == INST.cash_units("100000")
    assert st["risk_action"] == "none"


def test_with_real_fixed_spread_strategy():
    from trading.strategies import build_strategy

    strat = build_strategy(
        "fixed_spread",
        {
            "order_amount": "0.01",
            "order_levels": 5,
            "bid_spread": "0.001",
            "ask_spread": "0.001",
            "refresh_time": 0,
            "refresh_tolerance": "0.0002",
            "max_order_age": 60,
        },
        INST,
    )
    e = engine(strat)
    assert e.refresh_tolerance == 0.0002 and e.max_order_age_ns == 60 * SEC
    cmds = e.on_event(snap())
    places = [c for c in cmds if isinstance(c, PlaceOrder)]
    assert len(places) == 10
    assert all(c.qty == 10 for c in places)
    accept_all(e, cmds, 2)
    # a 1-tick touch move is inside the 2 bps tolerance: nothing to do
    assert e.on_event(delta(3, 2, bids=[(5_000_001, 5)])) == []
    # a 0.5% move is not
    moved = e.on_event(BookSnapshot(4, ((5_025_000, 5),), ((5_025_010, 5),), sequence=9))
    assert [type(c) for c in moved].count(CancelOrder) == 10
    assert [type(c) for c in moved].count(PlaceOrder) == 10


def test_hanging_orders_keep_the_other_side_working_after_a_fill_until_max_age():
    e = engine(Ladder(levels=1), hanging_orders=True, max_order_age_ns=60 * SEC)
    cmds = e.on_event(snap())
    accept_all(e, cmds, 2)
    bid, ask = cmds
    e.on_event(OrderFilled(3, bid.client_order_id, Side.BUY, bid.price, 10, 0, 0, Liquidity.MAKER, "T1"))
    # the market moves away: the ladder requotes, but the hanging ask is left alone
    out = e.on_event(BookSnapshot(4 * SEC, ((5_000_100, 5),), ((5_000_110, 5),), sequence=9))
    assert ask.client_order_id not in {c.client_order_id for c in out if isinstance(c, CancelOrder)}
    assert e.orders.orders[ask.client_order_id].reason == "hanging"
    assert {(c.side, c.price) for c in out if isinstance(c, PlaceOrder)} == {
        (Side.BUY, 5_000_099),
        (Side.SELL, 5_000_111),
    }
    accept_all(e, out, 4 * SEC + 1)
    # at max age it is cancelled
    aged = e.on_event(Timer(61 * SEC))
    assert CancelOrder(ask.client_order_id, "max_age") in aged


def test_hanging_orders_are_pulled_on_pause():
    e = engine(Ladder(levels=1), hanging_orders=True)
    cmds = e.on_event(snap())
    accept_all(e, cmds, 2)
    bid, ask = cmds
    e.on_event(OrderFilled(3, bid.client_order_id, Side.BUY, bid.price, 10, 0, 0, Liquidity.MAKER, "T1"))
    out = e.pause(4)
    assert ask.client_order_id in {c.client_order_id for c in out}


def test_regime_changes_of_the_strategy_are_recorded():
    class Switcher(Ladder):
        regime = "grid"
        regime_cause = ""

        def on_event(self, event, ctx):
            if event.ts >= 5:
                self.regime, self.regime_cause = "trend_following", "trend 0.8 above 0.5"
            return super().on_event(event, ctx)

    e = engine(Switcher(levels=1))
    e.on_event(snap())
    e.on_event(delta(5, 2, bids=[(4_999_000, 1)]))
    e.on_event(delta(6, 3, bids=[(4_998_000, 1)]))
    notes = [n for n in e.notes if n.code == "regime_change"]
    assert len(notes) == 1
    assert notes[0].message == "regime grid -> trend_following: trend 0.8 above 0.5"


def test_unfilled_flatten_is_retried_at_most_once_a_second():
    e = engine(limits={"daily_loss_limit": "1", "on_daily_loss": "flatten"})
    cmds = e.on_event(snap())
    accept_all(e, cmds, 2)
    bid0 = cmds[0]
    e.on_event(OrderFilled(3, bid0.client_order_id, Side.BUY, bid0.price, 10, 0, 0, Liquidity.MAKER, "T1"))
    out = e.on_event(BookSnapshot(SEC, ((4_750_000, 100),), ((4_750_010, 100),), sequence=50))
    flat = next(c for c in out if isinstance(c, PlaceOrder))
    e.on_event(OrderCancelled(SEC + 1, flat.client_order_id, "IOC: no liquidity"))
    assert not [c for c in e.on_event(Timer(SEC + 2)) if isinstance(c, PlaceOrder)]
    retry = [c for c in e.on_event(Timer(2 * SEC)) if isinstance(c, PlaceOrder)]
    assert len(retry) == 1 and retry[0].reason == "flatten" and retry[0].qty == 10


def test_with_real_avellaneda_stoikov_strategy():
    from trading.strategies import build_strategy

    strat = build_strategy("avellaneda_stoikov", {"order_amount": "0.01", "sigma": 5.0, "k": 0.5}, INST)
    e = engine(strat)
    cmds = e.on_event(snap())
    places = [c for c in cmds if isinstance(c, PlaceOrder)]
    assert {c.side for c in places} == {Side.BUY, Side.SELL}
    bid = next(c for c in places if c.side is Side.BUY)
    ask = next(c for c in places if c.side is Side.SELL)
    assert bid.price < 5_000_000 and ask.price > 5_000_010


def test_strategy_context_counts_working_quotes_and_bad_events_are_ignored():
    seen = []

    class Peek(Ladder):
        def on_event(self, event, ctx):
            seen.append((ctx.working_bids, ctx.working_asks))
            return super().on_event(event, ctx)

    e = engine(Peek(levels=2))
    accept_all(e, e.on_event(snap()), 2)
    e.on_event(delta(3, 2, bids=[(4_999_000, 1)]))
    assert seen[-1] == (2, 2)
    assert e.on_event({"not": "an event"}) == []
    assert e.notes[-1].code == "bad_event"


def test_quote_rejected_by_the_venue_is_not_resent_at_that_price_until_the_backoff_passes():
    e = engine(Ladder(levels=1), reject_backoff_ns=100_000_000)
    cmds = e.on_event(snap())
    bid_order = next(c for c in cmds if c.side is Side.BUY)
    # The venue saw a newer book: our post-only bid would cross, so it is refused.
    again = e.on_event(
        OrderRejected(2, bid_order.client_order_id, "post_only_would_cross", code="post_only_would_cross")
    )
    assert not any(isinstance(c, PlaceOrder) and c.side is Side.BUY for c in again)
    # Within the backoff nothing is re-sent on that side at that price, even on timers...
    assert not any(isinstance(c, PlaceOrder) and c.side is Side.BUY for c in e.on_event(Timer(50_000_000)))
    # ...and once it passes, the quote goes out again.
    later = e.on_event(Timer(2 + 100_000_000))
    assert [(c.side, c.price) for c in later if isinstance(c, PlaceOrder)] == [(Side.BUY, bid_order.price)]
