"""The simulated venue fills our orders the way a FIFO matching engine would, conservatively."""

from __future__ import annotations

from decimal import Decimal

import pytest

from trading.events import (
    AmendOrder,
    BookDelta,
    BookSnapshot,
    CancelAll,
    CancelOrder,
    Liquidity,
    OrderAccepted,
    OrderAmended,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    PlaceOrder,
    TimeInForce,
    TopOfBook,
    TradeTick,
)
from trading.fillsim import SimulatedExchange
from trading.instruments import Instrument, Side
from trading.latency import ConstantLatency, RecordedLatency
from trading.ports import OrderStatus
from trading.queue import ProbQueueModel, RiskAverseQueueModel

MS = 1_000_000


def make_instrument() -> Instrument:
    return Instrument.create(
        symbol="BTC/USDT", tick_size="0.1", lot_size="0.001", maker_fee="-0.0001", taker_fee="0.0004"
    )


def make_exchange(**kwargs) -> SimulatedExchange:
    ex = SimulatedExchange(make_instrument(), **kwargs)
    ex.on_market(BookSnapshot(ts=0, bids=((1000, 5), (999, 7), (998, 9)), asks=((1001, 4), (1002, 6), (1003, 8))))
    return ex


def place(ex, cid, side, price, qty, ts=1, tif=TimeInForce.POST_ONLY):
    ex.submit(PlaceOrder(cid, side, price, qty, tif), ts)
    return ex.advance(ts)


def fills(events):
    return [e for e in events if isinstance(e, OrderFilled)]


def test_resting_bid_joins_behind_displayed_size_and_trades_eat_the_queue_first():
    ex = make_exchange()
    assert [type(e) for e in place(ex, "b1", Side.BUY, 1000, 2)] == [OrderAccepted]
    assert ex.queue_ahead("b1") == 5
    assert ex.on_market(TradeTick(ts=2, price=1000, qty=4, aggressor=Side.SELL)) == []
    assert ex.queue_ahead("b1") == 1
    first = fills(ex.on_market(TradeTick(ts=3, price=1000, qty=2, aggressor=Side.SELL)))
    assert [(f.qty, f.leaves_qty, f.price) for f in first] == [(1, 1, 1000)]
    second = fills(ex.on_market(TradeTick(ts=4, price=1000, qty=3, aggressor=Side.SELL)))
    assert [(f.qty, f.leaves_qty) for f in second] == [(1, 0)]
    assert ex.order("b1").status is OrderStatus.FILLED
    assert ex.open_orders() == []


def test_trade_from_the_same_side_does_not_touch_our_queue():
    ex = make_exchange()
    place(ex, "b1", Side.BUY, 1000, 2)
    assert ex.on_market(TradeTick(ts=2, price=1000, qty=50, aggressor=Side.BUY)) == []
    assert ex.queue_ahead("b1") == 5


def test_trade_printed_through_our_price_fills_the_whole_remainder_at_our_price_as_maker():
    ex = make_exchange()
    place(ex, "s1", Side.SELL, 1002, 3)
    events = fills(ex.on_market(TradeTick(ts=2, price=1003, qty=1, aggressor=Side.BUY)))
    assert [(f.side, f.price, f.qty, f.leaves_qty, f.liquidity) for f in events] == [
        (Side.SELL, 1002, 3, 0, Liquidity.MAKER)
    ]


def test_book_moving_through_our_price_fills_us():
    ex = make_exchange()
    place(ex, "b1", Side.BUY, 999, 2)
    assert ex.on_market(BookDelta(ts=2, bids=(), asks=((1001, 0), (1002, 0), (1000, 3)))) == []
    events = fills(ex.on_market(BookDelta(ts=3, bids=((1000, 0), (999, 0)), asks=((999, 1),))))
    assert [(f.price, f.qty, f.leaves_qty) for f in events] == [(999, 2, 0)]


def test_top_of_book_crossing_our_price_fills_us():
    ex = make_exchange()
    place(ex, "s1", Side.SELL, 1002, 1)
    events = fills(ex.on_market(TopOfBook(ts=2, bid_price=1002, bid_qty=3, ask_price=1003, ask_qty=1)))
    assert [(f.price, f.qty) for f in events] == [(1002, 1)]


def test_partial_fill_when_trade_after_queue_is_smaller_than_our_size():
    ex = make_exchange()
    place(ex, "b1", Side.BUY, 1000, 10)
    events = fills(ex.on_market(TradeTick(ts=2, price=1000, qty=8, aggressor=Side.SELL)))
    assert [(f.qty, f.leaves_qty) for f in events] == [(3, 7)]
    assert ex.order("b1").status is OrderStatus.PARTIALLY_FILLED
    assert ex.order("b1").filled_qty == 3


def test_two_of_our_orders_at_one_level_share_a_trade_in_time_priority():
    ex = make_exchange()
    place(ex, "b1", Side.BUY, 1000, 2, ts=1)
    place(ex, "b2", Side.BUY, 1000, 2, ts=2)
    events = fills(ex.on_market(TradeTick(ts=3, price=1000, qty=8, aggressor=Side.SELL)))
    # 5 ahead of both; 3 lots left over: b1 takes 2, b2 the last 1.
    assert [(f.client_order_id, f.qty) for f in events] == [("b1", 2), ("b2", 1)]


def test_latency_delays_arrival_and_acknowledgement():
    ex = make_exchange(latency=ConstantLatency(entry_ns=1 * MS, response_ns=2 * MS))
    ex.submit(PlaceOrder("b1", Side.BUY, 1000, 1), 10 * MS)
    assert ex.advance(10 * MS) == []
    assert ex.open_orders() == []  # still on the wire
    assert ex.advance(12 * MS) == []  # at the venue since 11 ms, answer still travelling
    assert len(ex.open_orders()) == 1
    events = ex.advance(13 * MS)
    assert events == [OrderAccepted(ts=13 * MS, client_order_id="b1", venue_order_id="sim-1")]


def test_order_arrives_to_the_book_as_it_is_then_not_as_it_was_when_sent():
    ex = make_exchange(latency=ConstantLatency(entry_ns=5 * MS))
    ex.submit(PlaceOrder("b1", Side.BUY, 1001, 1), 0)  # would cross now
    ex.on_market(BookDelta(ts=2 * MS, bids=(), asks=((1001, 0),)))  # ask moves away before it lands
    events = ex.advance(5 * MS)
    assert [type(e) for e in events] == [OrderAccepted]
    assert ex.queue_ahead("b1") == 0


def test_post_only_order_that_would_cross_is_rejected():
    ex = make_exchange()
    events = place(ex, "b1", Side.BUY, 1001, 1)
    assert len(events) == 1 and isinstance(events[0], OrderRejected)
    assert events[0].reason == "post_only_would_cross"
    assert events[0].code == "post_only_would_cross"
    assert ex.open_orders() == [] and ex.stats.orders_placed == 0


def test_ioc_order_walks_the_book_as_taker_with_exact_fees_and_cancels_the_rest():
    ex = make_exchange()
    events = place(ex, "t1", Side.BUY, 1002, 15, tif=TimeInForce.IOC)
    filled = fills(events)
    assert [(f.price, f.qty, f.liquidity) for f in filled] == [(1001, 4, Liquidity.TAKER), (1002, 6, Liquidity.TAKER)]
    inst = ex.instrument
    assert [f.fee for f in filled] == [1001 * 4 * 40_000, 1002 * 6 * 40_000]
    # 0.0004 * (100.1 * 0.004 + 100.2 * 0.006) USDT, exactly
    assert sum(inst.cash(f.fee) for f in filled) == Decimal("0.0004") * (
        Decimal("100.1") * Decimal("0.004") + Decimal("100.2") * Decimal("0.006")
    )
    assert isinstance(events[-1], OrderCancelled) and events[-1].client_order_id == "t1"
    assert ex.order("t1").filled_qty == 10 and ex.order("t1").status is OrderStatus.CANCELLED


def test_maker_fill_earns_the_exact_rebate():
    ex = make_exchange()
    place(ex, "s1", Side.SELL, 1003, 2)
    (fill,) = fills(ex.on_market(TradeTick(ts=2, price=1004, qty=1, aggressor=Side.BUY)))
    assert fill.fee == -(1003 * 2 * 10_000)
    assert ex.instrument.cash(fill.fee) == Decimal("-0.0001") * Decimal("100.3") * Decimal("0.002")


def test_gtc_crossing_order_takes_then_rests_the_remainder():
    ex = make_exchange()
    events = place(ex, "g1", Side.SELL, 1000, 8, tif=TimeInForce.GTC)
    assert [(f.price, f.qty) for f in fills(events)] == [(1000, 5)]
    assert ex.order("g1").status is OrderStatus.PARTIALLY_FILLED
    assert ex.queue_ahead("g1") == 0


def test_cancel_racing_a_fill_keeps_the_filled_quantity_and_is_rejected_as_already_filled():
    ex = make_exchange(latency=ConstantLatency(entry_ns=0, response_ns=1 * MS, cancel_ns=5 * MS))
    ex.submit(PlaceOrder("b1", Side.BUY, 1000, 2), 0)
    ex.submit(CancelOrder("b1"), 10 * MS)  # lands at 15 ms
    filled = fills(ex.on_market(TradeTick(ts=12 * MS, price=999, qty=1, aggressor=Side.SELL)))
    assert ex.advance(12 * MS) == []
    events = ex.advance(20 * MS)
    filled += fills(events)
    assert [(f.qty, f.leaves_qty, f.ts) for f in filled] == [(2, 0, 13 * MS)]
    reject = [e for e in events if isinstance(e, OrderRejected)]
    assert [(r.code, r.reason, r.ts) for r in reject] == [("already_filled", "already filled", 16 * MS)]


def test_cancel_after_partial_fill_cancels_the_remainder_and_keeps_the_filled_quantity():
    ex = make_exchange(latency=ConstantLatency(cancel_ns=5 * MS))
    place(ex, "b1", Side.BUY, 1000, 4)
    ex.submit(CancelOrder("b1"), 10 * MS)
    partial = fills(ex.on_market(TradeTick(ts=11 * MS, price=1000, qty=7, aggressor=Side.SELL)))
    assert [(f.qty, f.leaves_qty) for f in partial] == [(2, 2)]
    events = ex.advance(15 * MS)
    assert [type(e) for e in events] == [OrderCancelled]
    report = ex.order("b1")
    assert report.status is OrderStatus.CANCELLED and report.filled_qty == 2
    # A later trade cannot fill a cancelled order.
    assert ex.on_market(TradeTick(ts=16 * MS, price=990, qty=100, aggressor=Side.SELL)) == []


def test_unknown_cancel_and_duplicate_place_are_rejected_with_readable_reasons():
    ex = make_exchange()
    place(ex, "b1", Side.BUY, 999, 1)
    events = place(ex, "b1", Side.BUY, 998, 1)
    assert [(e.code, e.client_order_id) for e in events] == [("duplicate_client_order_id", "b1")]
    ex.submit(CancelOrder("nope"), 2)
    (reject,) = ex.advance(2)
    assert reject.code == "unknown_order" and "nope" in reject.reason
    events = place(ex, "z", Side.BUY, 999, 0, ts=3)
    assert events[0].code == "invalid_order" and "qty" in events[0].reason


def test_cancel_all_cancels_every_working_order():
    ex = make_exchange()
    place(ex, "b1", Side.BUY, 999, 1)
    place(ex, "s1", Side.SELL, 1002, 1)
    ex.submit(CancelAll(), 3)
    events = ex.advance(3)
    assert sorted(e.client_order_id for e in events if isinstance(e, OrderCancelled)) == ["b1", "s1"]
    assert ex.open_orders() == []


def test_amend_down_keeps_queue_priority_and_reprice_goes_to_the_back():
    ex = make_exchange()
    place(ex, "b1", Side.BUY, 1000, 4)
    ex.on_market(TradeTick(ts=2, price=1000, qty=3, aggressor=Side.SELL))
    assert ex.queue_ahead("b1") == 2
    ex.submit(AmendOrder("b1", 1000, 3), 3)
    assert [type(e) for e in ex.advance(3)] == [OrderAmended]
    assert ex.queue_ahead("b1") == 2
    ex.submit(AmendOrder("b1", 999, 3), 4)
    ex.advance(4)
    assert ex.queue_ahead("b1") == 7
    ex.submit(AmendOrder("b1", 1001, 3), 5)
    (reject,) = ex.advance(5)
    assert reject.code == "post_only_would_cross" and ex.order("b1").price == 999


def test_risk_averse_queue_ignores_cancels_ahead_but_probabilistic_queue_advances():
    averse = make_exchange(queue=RiskAverseQueueModel())
    prob = make_exchange(queue=ProbQueueModel(power=2))
    for ex in (averse, prob):
        place(ex, "b1", Side.BUY, 1000, 1)
        ex.on_market(BookDelta(ts=2, bids=((1000, 15),), asks=()))  # 10 join behind us
        ex.on_market(BookDelta(ts=3, bids=((1000, 11),), asks=()))  # 4 cancelled somewhere
    assert averse.queue_ahead("b1") == 5
    assert 0 < prob.queue_ahead("b1") < 5
    # A level shrinking below our estimate caps it in both models.
    for ex in (averse, prob):
        ex.on_market(BookDelta(ts=4, bids=((1000, 1),), asks=()))
        assert ex.queue_ahead("b1") <= 1


def test_snapshot_resync_caps_queue_at_the_new_level_size():
    ex = make_exchange()
    place(ex, "b1", Side.BUY, 1000, 1)
    ex.on_market(BookSnapshot(ts=2, bids=((1000, 2),), asks=((1001, 1),)))
    assert ex.queue_ahead("b1") == 2


def test_events_are_identical_for_the_same_seed_and_input():
    def run(seed):
        ex = make_exchange(latency=RecordedLatency([1 * MS, 3 * MS, 7 * MS], seed=seed))
        out = []
        for i in range(30):
            ts = i * MS
            side = Side.BUY if i % 2 else Side.SELL
            ex.submit(PlaceOrder(f"o{i}", side, 1000 if side is Side.BUY else 1001, 1), ts)
            out += ex.on_market(TradeTick(ts=ts, price=1000 + (i % 3 == 0), qty=3, aggressor=side.opposite))
        return out + ex.advance(100 * MS)

    assert run(1) == run(1)
    assert [e.ts for e in run(1)] != [e.ts for e in run(2)]


def test_bad_latency_and_queue_parameters_are_rejected_naming_the_field():
    with pytest.raises(ValueError, match="entry_ns"):
        ConstantLatency(entry_ns=-1)
    with pytest.raises(ValueError, match="entry_samples"):
        RecordedLatency([])
    with pytest.raises(ValueError, match="power"):
        ProbQueueModel(power=0)
    with pytest.raises(TypeError, match="command"):
        make_exchange().submit("buy", 0)


def test_post_only_that_would_cross_slides_inside_the_book_when_rejects_are_off():
    ex = make_exchange(post_only_reject=False)
    events = place(ex, "b1", Side.BUY, 1003, 1)
    assert [type(e) for e in events] == [OrderAccepted, OrderAmended]
    assert events[1].price == 1000  # one tick under the best ask 1001
    assert ex.order("b1").price == 1000 and fills(events) == []


def test_big_ioc_walks_past_the_first_fifty_levels():
    ex = SimulatedExchange(make_instrument())
    ex.on_market(BookSnapshot(ts=0, bids=((999, 1),), asks=tuple((1000 + i, 1) for i in range(80))))
    events = place(ex, "t1", Side.BUY, 1069, 100, tif=TimeInForce.IOC)
    assert sum(f.qty for f in fills(events)) == 70
    assert max(f.price for f in fills(events)) == 1069


def test_amend_through_the_book_of_a_gtc_order_takes_liquidity():
    ex = make_exchange()
    place(ex, "g1", Side.BUY, 999, 3, tif=TimeInForce.GTC)
    ex.submit(AmendOrder("g1", 1001, 3), 2)
    events = ex.advance(2)
    assert [type(e) for e in events] == [OrderAmended, OrderFilled]
    assert [(f.price, f.qty, f.liquidity) for f in fills(events)] == [(1001, 3, Liquidity.TAKER)]


def test_a_malformed_book_event_is_skipped_and_counted_not_fatal():
    ex = make_exchange()
    place(ex, "b1", Side.BUY, 1000, 1)
    assert ex.on_market(BookDelta(ts=2, bids=((1000, -3),), asks=())) == []
    assert ex.bad_events == 1 and "BookDelta" in ex.bad_event_samples[0]
    filled = fills(ex.on_market(TradeTick(ts=3, price=999, qty=1, aggressor=Side.SELL)))
    assert [f.qty for f in filled] == [1]
