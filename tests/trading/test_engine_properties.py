"""Property tests: the engine against the simulated venue on random markets never loses an
order or a fill, never keeps two live quotes at one price and side, and its books balance."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from trading.engine import Engine
from trading.events import BookSnapshot, OrderFilled, Timer, TradeTick
from trading.fillsim import SimulatedExchange
from trading.instruments import FEE_SCALE, Instrument, Side
from trading.latency import ConstantLatency
from trading.oms import OrderState
from trading.risk import RiskLimits
from trading.strategies import build_strategy

MS = 1_000_000
INST = Instrument.create(symbol="BTC/USDT", tick_size="0.01", lot_size="0.001", maker_fee="-0.0001", taker_fee="0.001")

steps = st.lists(
    st.tuples(
        st.integers(-30, 30),  # mid move in ticks
        st.integers(1, 6),  # spread in ticks
        st.one_of(st.none(), st.tuples(st.booleans(), st.integers(1, 40), st.integers(-8, 8))),  # trade
        st.integers(1, 400),  # ms until the next step
    ),
    min_size=5,
    max_size=50,
)


@settings(max_examples=25, deadline=None)
@given(
    steps=steps,
    latency_ms=st.integers(0, 50),
    tolerance=st.sampled_from(["0", "0.00002", "0.0005"]),
    levels=st.integers(1, 4),
)
def test_engine_with_simulated_venue_keeps_orders_and_fills_consistent(steps, latency_ms, tolerance, levels):
    strategy = build_strategy(
        "fixed_spread",
        {
            "order_amount": "0.005",
            "order_levels": levels,
            "bid_spread": "0.00001",
            "ask_spread": "0.00001",
            "level_spacing": "0.00002",
            "refresh_time": 0,
            "refresh_tolerance": tolerance,
            "max_order_age": 1,
        },
        INST,
    )
    engine = Engine(
        strategy,
        INST,
        bot_id="p",
        risk=RiskLimits.from_dict({"max_position_base": "0.05"}),
        initial_base=INST.lots("0.1"),
        initial_quote=INST.cash_units("10000"),
    )
    venue = SimulatedExchange(INST, latency=ConstantLatency(latency_ms * MS, latency_ms * MS))
    fills: list[OrderFilled] = []
    sent_ids: set[str] = set()
    ts = 1_700_000_000_000_000_000
    mid = 5_000_000

    def deliver(cmds, at):
        for c in cmds:
            if hasattr(c, "client_order_id") and type(c).__name__ == "PlaceOrder":
                assert c.client_order_id not in sent_ids  # ids never reused
                sent_ids.add(c.client_order_id)
            venue.submit(c, at)

    def feed(event):
        for reply in venue.on_market(event) if not isinstance(event, Timer) else venue.advance(event.ts):
            if isinstance(reply, OrderFilled):
                fills.append(reply)
            deliver(engine.on_event(reply), reply.ts)
        deliver(engine.on_event(event), event.ts)

    for i, (move, spread, trade, gap_ms) in enumerate(steps):
        mid += move
        bid = mid - spread // 2 - 1
        ask = bid + spread
        feed(BookSnapshot(ts, ((bid, 50), (bid - 1, 50)), ((ask, 50), (ask + 1, 50)), sequence=i + 1))
        if trade is not None:
            buy, qty, off = trade
            price = (ask if buy else bid) + off
            feed(TradeTick(ts + 1, price, qty, Side.BUY if buy else Side.SELL, f"m{i}"))
        ts += gap_ms * MS
        feed(Timer(ts - 1))
        live = [o for o in engine.orders.orders.values() if o.status is not OrderState.PENDING_CANCEL]
        keys = [(o.side, o.price) for o in live if o.reason == "quote"]
        assert len(keys) == len(set(keys)), "two live quotes at one price and side"
        # every order the venue holds is one the engine knows about
        venue_ids = {r.client_order_id for r in venue.open_orders()}
        assert venue_ids <= set(engine.orders.orders)

    # drain: let every answer come back
    ts += 10_000 * MS
    feed(Timer(ts))
    port = engine.portfolio
    assert port.position == sum(int(f.side) * f.qty for f in fills)
    assert port.fees == sum(f.fee for f in fills)
    assert port.cash == INST.cash_units("10000") - sum(int(f.side) * f.price * f.qty * FEE_SCALE + f.fee for f in fills)
    assert port.spread_capture + port.inventory_pnl - port.fees == port.realized + port.unrealized - port.fees
    # nothing is left working at the venue that the engine has forgotten
    assert {r.client_order_id for r in venue.open_orders()} <= set(engine.orders.orders)
