"""Market-making quality analytics: decomposition, markouts, quoting and inventory sampling."""

from __future__ import annotations

from decimal import Decimal

from trading.analytics import (
    AnalyticsBacktest,
    QuoteInterval,
    Top,
    order_to_trade_ratio,
    replay_pnl,
    report,
    sample_quoting,
)
from trading.engine import Engine
from trading.events import Liquidity, OrderFilled
from trading.fillsim import SimulatedExchange
from trading.instruments import FEE_SCALE, Instrument, Side
from trading.risk import RiskLimits
from trading.strategies import build_strategy
from trading.synthetic.avellaneda_stoikov import ASParams, event_stream

NS = 1_000_000_000
INST = Instrument.create(symbol="BTC/USDT", tick_size="0.01", lot_size="0.001", maker_fee="0.0001")


def fill(ts, side, price, qty, fee=0, trade_id="t"):
    return OrderFilled(
        ts=ts,
        client_order_id="c",
        trade_id=trade_id,
        side=side,
        price=price,
        qty=qty,
        leaves_qty=0,
        fee=fee,
        liquidity=Liquidity.MAKER,
    )


def test_decomposition_and_markouts_of_a_buy_below_the_mid_that_then_rises():
    tops = [Top(0, 99, 101), Top(2 * NS, 101, 103), Top(20 * NS, 102, 104)]
    fills = [fill(NS, Side.BUY, 99, 10, fee=5)]
    p = replay_pnl(INST, fills, tops, end_ns=100 * NS)
    # bought 10 lots 1 tick under the mid: spread capture 10 tick-lots
    assert p.spread_capture == 10 * FEE_SCALE
    # mid 100 -> 102 -> 103 with 10 lots: inventory PnL 30 tick-lots
    assert p.inventory_pnl == 30 * FEE_SCALE
    assert p.fees == 5
    assert p.spread_capture + p.inventory_pnl - p.fees == p.trading_pnl
    summary = p.markout_summary()
    # 1 s after the fill (t=2 s) the mid is 102 -> +3 ticks; 10 s (t=11 s) 102; 60 s (t=61 s) 103
    assert summary[NS]["avg_ticks_per_lot"] == 3.0
    assert summary[10 * NS]["avg_ticks_per_lot"] == 3.0
    assert summary[60 * NS]["avg_ticks_per_lot"] == 4.0


def test_adverse_selection_shows_as_negative_markouts():
    tops = [Top(0, 100, 102), Top(NS // 2, 96, 98)]
    p = replay_pnl(INST, [fill(1, Side.BUY, 100, 5)], tops, end_ns=100 * NS)
    assert p.markout_summary()[NS]["avg_ticks_per_lot"] == -3.0


def test_quote_uptime_time_at_top_spread_and_inventory_from_order_lifetimes():
    tops = [Top(0, 100, 104)]
    quotes = [
        QuoteInterval(Side.BUY, 100, 0, 6 * NS),  # at the top bid for 6 s
        QuoteInterval(Side.SELL, 105, 0, 4 * NS),  # behind the top ask for 4 s
        QuoteInterval(Side.SELL, 104, 4 * NS, None),  # at the top ask from 4 s
    ]
    fills = [fill(5 * NS, Side.BUY, 100, 3)]
    s = sample_quoting(quotes, tops, fills, start_ns=0, end_ns=10 * NS, step_ns=NS)
    q = s.quoting()
    assert q.quote_uptime == 0.6  # both sides for 6 of the 10 s
    assert q.bid_at_top == 0.6 and q.ask_at_top == 0.6
    assert q.time_at_top == 0.2  # both at the top from 4 s to 6 s
    assert s.average_spread_ticks() == (4 * 5 + 2 * 4) / 6
    hist = s.inventory_histogram(bins=3)
    assert [b["share"] for b in hist] == [0.5, 0.0, 0.5]
    assert s.inventory().max == 3


def test_order_to_trade_ratio():
    assert order_to_trade_ratio(40, 8) == 5.0
    assert order_to_trade_ratio(3, 0) is None


def test_backtest_report_keeps_the_pnl_identity_and_measures_quoting():
    events = list(event_stream(INST, params=ASParams(s0=100.0, horizon=0.5), seed=3))
    strategy = build_strategy(
        "fixed_spread",
        {"order_amount": "0.01", "bid_spread": "0.002", "ask_spread": "0.002", "refresh_time": "0.5"},
        INST,
    )
    engine = Engine(strategy, INST, bot_id="an", risk=RiskLimits(), initial_quote=INST.cash_units("100000"))
    bt = AnalyticsBacktest(engine, events, SimulatedExchange(INST))
    result = bt.run()
    out = report(INST, engine.portfolio, bt.sampler, orders_placed=result.orders_placed)
    pnl = {k: Decimal(v) for k, v in out["pnl"].items()}
    assert pnl["spread_capture"] + pnl["inventory_pnl"] - pnl["fees"] == pnl["total"]
    assert out["fills"] == result.fill_count > 0
    assert 0 < out["quote_uptime"] <= 1
    assert out["quote_uptime"] == result.quoting.quote_uptime
    assert out["avg_quoted_spread"] > 0
    assert set(out["markouts"]) == {"1s", "10s", "60s"}
    assert abs(sum(b["share"] for b in out["inventory"]["histogram"]) - 1) < 1e-9
