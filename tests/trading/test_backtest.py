"""The backtester replays events through the real engine and the fill simulation, and reports."""

from __future__ import annotations

import math

import pytest

from trading.backtest import Backtest
from trading.engine import Engine
from trading.events import BookSnapshot, OrderFilled, Timer
from trading.fillsim import SimulatedExchange
from trading.instruments import Instrument
from trading.latency import ConstantLatency, RecordedLatency
from trading.risk import RiskLimits
from trading.strategies import build_strategy
from trading.synthetic.avellaneda_stoikov import ASParams, event_stream

MS = 1_000_000
INSTRUMENT = Instrument.create(symbol="AS/USD", tick_size="0.01", lot_size="1", maker_fee="-0.0001")


def make_engine(spread: str = "0.0075") -> Engine:
    strategy = build_strategy(
        "fixed_spread",
        {"order_amount": "1", "bid_spread": spread, "ask_spread": spread, "refresh_time": "0.1"},
        INSTRUMENT,
    )
    return Engine(strategy, INSTRUMENT, bot_id="bt", risk=RiskLimits(), initial_quote=INSTRUMENT.cash_units("10000"))


def make_backtest(seed: int = 1, latency=None, **kwargs) -> Backtest:
    events = list(event_stream(INSTRUMENT, seed=seed, step_ns=100 * MS))
    exchange = SimulatedExchange(INSTRUMENT, latency=latency or ConstantLatency(1 * MS, 1 * MS), seed=seed)
    return Backtest(make_engine, events, exchange, timer_interval_ns=100 * MS, **kwargs)


def test_same_engine_events_and_seed_give_an_identical_result():
    latency = lambda: RecordedLatency([1 * MS, 2 * MS, 5 * MS], seed=3)  # noqa: E731
    first = make_backtest(latency=latency()).run()
    second = make_backtest(latency=latency()).run()
    assert first == second
    assert first.fill_count > 10
    assert make_backtest(seed=2, latency=latency()).run() != first


def test_report_adds_up():
    result = make_backtest().run()
    pnl = result.pnl
    assert pnl.total == pnl.spread_capture + pnl.inventory_pnl - pnl.fees
    assert pnl.fees < 0  # maker rebates only: the quotes are post-only
    assert result.fill_count == len(result.fills)
    assert result.filled_qty == sum(f.qty for f in result.fills)
    assert result.fill_ratio == pytest.approx(result.filled_qty / result.placed_qty)
    assert 0 < result.fill_ratio < 1
    assert result.final_position == sum(f.qty * f.side for f in result.fills)
    assert result.inventory.min <= result.inventory.time_weighted_mean <= result.inventory.max
    assert 0.5 < result.quoting.quote_uptime <= 1.0
    assert result.orders_placed >= result.filled_qty and result.cancels_sent > 0
    assert result.timers == ASParams().n_steps - 1
    assert result.equity_curve[-1][1] - result.equity_curve[0][1] == pnl.total
    assert result.max_drawdown >= 0 and result.sharpe is not None and math.isfinite(result.sharpe)


def test_fills_on_the_as_market_happen_as_often_as_the_paper_says():
    # Quotes rest 0.75 (75 ticks) from the mid on each side; with the mid moving one step of
    # sigma*sqrt(dt) before orders arrive, a side fills with probability
    # A*dt*exp(-k*delta)*cosh(k*sigma*sqrt(dt)) per step.
    p = ASParams()
    fills = steps = 0
    for seed in range(4):
        result = make_backtest(seed=seed, latency=ConstantLatency()).run()
        fills += result.fill_count
        steps += p.n_steps
    delta = 0.75
    expected = 2 * steps * p.arrival_a * p.dt * math.exp(-p.decay_k * delta) * math.cosh(p.decay_k * 2 * p.dt**0.5)
    # quotes are placed from a one- or two-tick book mid, so delta is 0.745..0.755
    assert abs(fills - expected) < 4 * math.sqrt(expected) + 0.01 * expected


def test_cancel_stops_early_and_progress_is_reported():
    seen: list[float] = []
    bt = make_backtest(progress=seen.append, progress_every=50)
    bt.should_stop = lambda: len(seen) >= 3
    result = bt.run()
    assert result.cancelled
    assert result.events == 150
    assert seen == sorted(seen) and 0 < seen[-1] < 1


def test_progress_reaches_one_on_a_full_run():
    seen: list[float] = []
    make_backtest(progress=seen.append, progress_every=100).run()
    assert seen[-1] == 1.0 and seen == sorted(seen)


class _RecordingEngine:
    """A stand-in engine that records what it sees, to check the replay order."""

    def __init__(self, inner: Engine) -> None:
        self.inner = inner
        self.portfolio = inner.portfolio
        self.seen: list[object] = []

    def on_event(self, event):
        self.seen.append(event)
        return self.inner.on_event(event)


def test_engine_sees_order_events_and_timers_in_time_order_and_the_venue_sees_markets_first():
    engine = _RecordingEngine(make_engine())
    events = list(event_stream(INSTRUMENT, seed=5, step_ns=100 * MS))[:120]
    exchange = SimulatedExchange(INSTRUMENT, latency=ConstantLatency(3 * MS, 2 * MS))
    Backtest(engine, events, exchange, timer_interval_ns=50 * MS).run()
    stamps = [e.ts for e in engine.seen]
    assert stamps == sorted(stamps)
    assert any(isinstance(e, Timer) for e in engine.seen)
    assert any(isinstance(e, OrderFilled) for e in engine.seen)
    assert isinstance(engine.seen[0], BookSnapshot)


def test_bad_settings_are_rejected_naming_the_field():
    with pytest.raises(ValueError, match="timer_interval_ns"):
        Backtest(make_engine, [], SimulatedExchange(INSTRUMENT), timer_interval_ns=0)


def test_empty_stream_reports_zeros():
    result = Backtest(make_engine, [], SimulatedExchange(INSTRUMENT)).run()
    assert result.events == 0 and result.fill_count == 0 and result.pnl.total == 0 and result.sharpe is None


def test_sharing_one_book_between_venue_and_engine_changes_nothing_for_post_only_quotes():
    shared = make_backtest(seed=4).run()
    separate = make_backtest(seed=4, share_book=False).run()
    assert shared == separate


def test_backtest_runs_on_a_synthetic_venue_with_chained_deltas():
    from trading.synthetic.market import SyntheticMarket, VenueProfile

    instrument = Instrument.create(symbol="SYN/USD", tick_size="0.01", lot_size="1")
    market = SyntheticMarket(instrument, (VenueProfile("alpha", trade_rate=20.0),), seed=2, volatility_bps=5.0)
    events = [event for _, event in market.take(600)]
    strategy = build_strategy(
        "fixed_spread",
        {"order_amount": "1", "bid_spread": "0.0003", "ask_spread": "0.0003", "refresh_time": "0.1"},
        instrument,
    )
    engine = Engine(strategy, instrument, bot_id="mv", risk=RiskLimits(), initial_quote=instrument.cash_units("1000"))
    result = Backtest(engine, events, SimulatedExchange(instrument), timer_interval_ns=100 * MS).run()
    assert result.events == len(events)
    assert engine.book_ok and engine.book.is_synced
    assert result.fill_count > 0
    assert result.quoting.quote_uptime > 0.9


def test_records_are_json_ready_and_exact():
    import json
    from datetime import UTC
    from decimal import Decimal

    from trading.backtest import result_records

    result = make_backtest().run()
    records = result_records(result, INSTRUMENT)
    metrics = records["metrics"]
    assert Decimal(metrics["total_pnl"]) == INSTRUMENT.cash(result.pnl.total)
    pnl = records["pnl_decomposition"]
    assert Decimal(pnl["total"]) == Decimal(pnl["spread_capture"]) + Decimal(pnl["inventory_pnl"]) - Decimal(
        pnl["fees"]
    )
    assert len(records["fills"]) == result.fill_count
    first = records["fills"][0]
    assert first["side"] in ("buy", "sell") and first["liquidity"] == "maker"
    assert first["ts"].tzinfo is UTC
    assert Decimal(first["fee"]) < 0  # rebate
    assert records["equity_curve"][0][0] == result.equity_curve[0][0] // 1_000_000
    json.dumps({k: v for k, v in records.items() if k != "fills"})


def test_real_as_strategy_on_the_as_market_earns_what_the_paper_reports():
    # The paper's market (T = 1 s in 200 steps of 5 ms) through the real engine, the real
    # avellaneda_stoikov strategy (sigma and k given) and the fill simulation, no latency.
    import statistics

    profits = []
    for seed in range(8):
        strategy = build_strategy(
            "avellaneda_stoikov",
            {"order_amount": "1", "gamma": 0.1, "sigma": 2.0, "k": 1.5, "horizon": 1.0},
            INSTRUMENT_NO_FEES,
        )
        engine = Engine(
            strategy,
            INSTRUMENT_NO_FEES,
            bot_id="as",
            risk=RiskLimits(price_band=0.5, order_rate_limit=1000),
            initial_quote=INSTRUMENT_NO_FEES.cash_units("10000"),
        )
        events = list(event_stream(INSTRUMENT_NO_FEES, seed=seed, step_ns=5 * MS))
        result = Backtest(engine, events, SimulatedExchange(INSTRUMENT_NO_FEES), timer_interval_ns=5 * MS).run()
        profits.append(float(INSTRUMENT_NO_FEES.cash(result.pnl.total)))
    # Paper: 62.94 with std 5.89 per path; 8 paths give a standard error of about 2.1.
    assert abs(statistics.mean(profits) - 62.94) < 7
    assert 2 < statistics.stdev(profits) < 12


INSTRUMENT_NO_FEES = Instrument.create(symbol="AS/USD", tick_size="0.01", lot_size="1")


class _StubbornEngine:
    """Answers every answer with a new crossing post-only order: a venue loop that never settles."""

    def __init__(self) -> None:
        from trading.portfolio import Portfolio

        self.portfolio = Portfolio(INSTRUMENT)
        self.seen: list[object] = []
        self.n = 0

    def on_event(self, event):
        from trading.events import OrderRejected, PlaceOrder
        from trading.instruments import Side

        self.seen.append(event)
        if isinstance(event, BookSnapshot | OrderRejected):
            self.n += 1
            return [PlaceOrder(f"x{self.n}", Side.BUY, 10_000_000, 1)]
        return []


def test_an_engine_that_never_settles_cannot_hang_the_backtest_and_loses_no_answer():
    from trading.events import OrderRejected

    engine = _StubbornEngine()
    events = list(event_stream(INSTRUMENT, seed=1, step_ns=100 * MS))[:6]
    exchange = SimulatedExchange(INSTRUMENT)  # no latency: every reply comes back at once
    Backtest(engine, events, exchange, share_book=False).run()
    rejects = [e for e in engine.seen if isinstance(e, OrderRejected)]
    assert len(rejects) >= 20
    assert len(rejects) == exchange.stats.rejects  # every reject the venue sent reached the engine
