"""Property tests: whatever the market does, the simulated venue never overfills an order and never
fills it at a price worse than its limit, and every fill it makes reaches us."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from trading.events import (
    AmendOrder,
    BookDelta,
    BookSnapshot,
    CancelOrder,
    OrderAmended,
    OrderFilled,
    PlaceOrder,
    TimeInForce,
    TradeTick,
)
from trading.fillsim import SimulatedExchange
from trading.instruments import Instrument, Side
from trading.latency import ConstantLatency
from trading.queue import ProbQueueModel, RiskAverseQueueModel

INSTRUMENT = Instrument.create(symbol="X/Y", tick_size="1", lot_size="1", maker_fee="-0.0001", taker_fee="0.0005")
prices = st.integers(90, 110)
sides = st.sampled_from([Side.BUY, Side.SELL])
levels = st.lists(st.tuples(prices, st.integers(0, 20)), max_size=4).map(tuple)
actions = st.one_of(
    st.tuples(st.just("place"), sides, prices, st.integers(1, 10), st.sampled_from(list(TimeInForce))),
    st.tuples(st.just("cancel"), st.integers(0, 30)),
    st.tuples(st.just("amend"), st.integers(0, 30), prices, st.integers(1, 12)),
    st.tuples(st.just("trade"), sides, prices, st.integers(1, 15)),
    st.tuples(st.just("delta"), levels, levels),
    st.tuples(st.just("wait"), st.integers(0, 3)),
)


def _book() -> BookSnapshot:
    return BookSnapshot(ts=0, bids=tuple((99 - i, 5) for i in range(5)), asks=tuple((101 + i, 5) for i in range(5)))


@settings(max_examples=150, deadline=None)
@given(
    script=st.lists(actions, max_size=60),
    latency_ms=st.integers(0, 3),
    prob_queue=st.booleans(),
)
def test_never_overfills_never_fills_worse_than_limit_and_loses_no_fill(script, latency_ms, prob_queue):
    ms = 1_000_000
    ex = SimulatedExchange(
        INSTRUMENT,
        latency=ConstantLatency(entry_ns=latency_ms * ms, response_ns=latency_ms * ms),
        queue=ProbQueueModel() if prob_queue else RiskAverseQueueModel(),
    )
    ex.on_market(_book())
    limits: dict[str, list[int]] = {}  # every price the order ever had (amends change it)
    qty: dict[str, int] = {}
    sides_by_id: dict[str, Side] = {}
    received: list = []
    ts = 0
    n = 0
    for action in script:
        ts += ms
        kind = action[0]
        if kind == "place":
            _, side, price, size, tif = action
            cid = f"o{n}"
            n += 1
            limits[cid] = [price]
            qty[cid] = size
            sides_by_id[cid] = side
            ex.submit(PlaceOrder(cid, side, price, size, tif), ts)
        elif kind == "cancel":
            ex.submit(CancelOrder(f"o{action[1]}"), ts)
        elif kind == "amend":
            cid = f"o{action[1]}"
            limits.setdefault(cid, []).append(action[2])
            qty[cid] = max(qty.get(cid, 0), action[3])
            ex.submit(AmendOrder(cid, action[2], action[3]), ts)
        elif kind == "trade":
            received += ex.on_market(TradeTick(ts=ts, price=action[2], qty=action[3], aggressor=action[1]))
        elif kind == "delta":
            received += ex.on_market(BookDelta(ts=ts, bids=action[1], asks=action[2]))
        else:
            ts += action[1] * ms
        received += ex.advance(ts)
    received += ex.advance(ts + 10 * ms)

    filled: dict[str, int] = {}
    for event in received:
        if isinstance(event, OrderFilled):
            cid = event.client_order_id
            filled[cid] = filled.get(cid, 0) + event.qty
            assert event.qty > 0
            assert event.side is sides_by_id[cid]
            if event.side is Side.BUY:
                assert event.price <= max(limits[cid])
            else:
                assert event.price >= min(limits[cid])
            assert event.fee == INSTRUMENT.fee_units(event.price, event.qty, maker=event.liquidity.value == "maker")
        elif isinstance(event, OrderAmended):
            assert event.qty > 0
    for cid, total in filled.items():
        assert total <= qty[cid]
        report = ex.order(cid)
        assert report is not None and report.filled_qty == total  # every fill reached us
    assert [e.ts for e in received] == sorted(e.ts for e in received)
    assert ex.stats.qty_filled == sum(filled.values())
