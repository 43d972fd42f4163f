"""Exact integer accounting: position, cost basis, PnL identities, decomposition, markouts."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trading.events import Liquidity, OrderFilled
from trading.instruments import FEE_SCALE, Instrument, Side
from trading.portfolio import Portfolio

SEC = 1_000_000_000
INST = Instrument.create(symbol="BTC/USDT", tick_size="0.01", lot_size="0.001", maker_fee="0.001", taker_fee="0.002")


def fill(side: Side, price: int, qty: int, ts: int = 0, fee: int | None = None, tid: str = "") -> OrderFilled:
    if fee is None:
        fee = INST.fee_units(price, qty, maker=True)
    return OrderFilled(ts, "c", side, price, qty, 0, fee, Liquidity.MAKER, tid or f"t{ts}-{price}-{qty}")


def test_buy_then_sell_higher_realizes_the_price_difference():
    p = Portfolio(INST)
    p.mark(0, 2 * 10000)
    p.on_fill(fill(Side.BUY, 10000, 5, fee=0))
    p.on_fill(fill(Side.SELL, 10010, 5, fee=0))
    assert p.position == 0
    assert p.realized == 10 * 5 * FEE_SCALE
    assert INST.cash(p.realized) == Decimal("0.0005")  # 0.10 USDT x 0.005 BTC


def test_average_cost_and_partial_close():
    p = Portfolio(INST)
    p.on_fill(fill(Side.BUY, 100, 2, fee=0))
    p.on_fill(fill(Side.BUY, 110, 2, fee=0))
    assert p.avg_cost == 105
    p.on_fill(fill(Side.SELL, 120, 1, fee=0))
    assert p.realized == 15 * FEE_SCALE
    assert p.avg_cost == 105
    assert p.position == 3


def test_flip_through_zero_opens_new_position_at_fill_price():
    p = Portfolio(INST)
    p.on_fill(fill(Side.BUY, 100, 2, fee=0))
    p.on_fill(fill(Side.SELL, 110, 5, fee=0))
    assert p.position == -3
    assert p.realized == 20 * FEE_SCALE
    assert p.avg_cost == 110
    p.on_fill(fill(Side.BUY, 105, 3, fee=0))
    assert p.position == 0
    assert p.realized == (20 + 15) * FEE_SCALE
    assert p.cost_basis == 0


def test_short_position_unrealized_gains_when_price_falls():
    p = Portfolio(INST)
    p.mark(0, 200)
    p.on_fill(fill(Side.SELL, 100, 4, fee=0))
    p.mark(1, 190)  # mid 95
    assert p.unrealized == 5 * 4 * FEE_SCALE


def test_fees_and_rebates_move_cash_and_fees():
    p = Portfolio(INST, initial_quote=10**15)
    p.on_fill(fill(Side.BUY, 100, 1, fee=7))
    p.on_fill(fill(Side.SELL, 100, 1, fee=-3))
    assert p.fees == 4
    assert p.cash == 10**15 - 4


def test_drawdown_from_peak_in_snapshot():
    p = Portfolio(INST, initial_quote=0)
    p.on_fill(fill(Side.BUY, 100, 10, fee=0))
    p.mark(1, 220)  # +10 ticks x 10 lots
    p.mark(2, 180)
    snap = p.snapshot(2)
    assert snap.peak == 100 * FEE_SCALE
    assert snap.drawdown == 200 * FEE_SCALE
    assert snap.equity == snap.peak - snap.drawdown


def test_markouts_use_mid_at_horizon_even_if_mid_did_not_change_at_that_instant():
    p = Portfolio(INST, markout_horizons_ns=(1 * SEC, 10 * SEC))
    p.mark(0, 200)
    p.on_fill(fill(Side.BUY, 99, 2, ts=0))
    p.mark(int(0.5 * SEC), 204)  # mid 102
    p.mark(5 * SEC, 196)  # mid 98 from 5s: the 1s horizon saw 102
    summary = p.markout_summary()
    assert summary[1 * SEC]["total"] == (102 - 99) * 2 * FEE_SCALE
    assert summary[10 * SEC]["lots"] == 0
    p.mark(10 * SEC, 196)
    assert p.markout_summary()[10 * SEC]["total"] == (98 - 99) * 2 * FEE_SCALE


def test_bad_markout_horizon_is_refused():
    with pytest.raises(ValueError, match="markout_horizons_ns"):
        Portfolio(INST, markout_horizons_ns=(0,))


actions = st.lists(
    st.one_of(
        st.tuples(st.just("mark"), st.integers(150, 250)),
        st.tuples(st.sampled_from(["buy", "sell"]), st.integers(70, 130), st.integers(1, 50), st.integers(-5, 20)),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(actions=actions, initial_base=st.integers(0, 100), initial_quote=st.integers(0, 10**13))
def test_pnl_identities_hold_exactly(actions, initial_base, initial_quote):
    p = Portfolio(INST, initial_base=initial_base, initial_quote=initial_quote)
    p.mark(0, 200)
    start = p.equity()
    for ts, a in enumerate(actions, start=1):
        if a[0] == "mark":
            p.mark(ts, a[1])
        else:
            side = Side.BUY if a[0] == "buy" else Side.SELL
            p.on_fill(fill(side, a[1], a[2], ts=ts, fee=a[3]))
        trading_pnl = p.realized + p.unrealized - p.fees
        # realized + unrealized - fees is exactly the equity change net of the initial inventory's revaluation
        reval = initial_base * (p.mid2 - p.start_mid2) * FEE_SCALE // 2
        assert p.equity() - start == trading_pnl + reval
        # decomposition: spread capture + inventory PnL - fees is the same total
        assert p.spread_capture + p.inventory_pnl - p.fees == trading_pnl
        snap = p.snapshot(ts)
        assert snap.trading_pnl == trading_pnl
        assert snap.drawdown == snap.peak - snap.equity >= 0
        assert (p.position == 0) == (p.cost_basis == 0)


@settings(max_examples=200, deadline=None)
@given(qtys=st.lists(st.tuples(st.booleans(), st.integers(1, 20)), min_size=1, max_size=30))
def test_average_cost_is_cost_basis_per_lot_and_flat_means_all_realized(qtys):
    p = Portfolio(INST)
    price = 100
    for buy, q in qtys:
        p.on_fill(fill(Side.BUY if buy else Side.SELL, price, q, fee=0))
        price += 1
        if p.position:
            assert p.avg_cost == pytest.approx(p.cost_basis / (p.position * FEE_SCALE))
            assert 100 <= p.avg_cost <= price
    if p.position == 0:
        assert p.unrealized == 0
