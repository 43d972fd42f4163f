"""Avellaneda-Stoikov with its default parameters on the shipped replay market (Binance spot
BTC/USDT, the demo's ``replay:binance-spot``) quotes inside its spread cap and fills (issue 21:
the former default, gamma 0.1 per quote unit, asked for a ~20k USDT spread, was clamped to the
5% cap and never filled)."""

from __future__ import annotations

import itertools

from connectors.binance_recording import BINANCE_SPOT_BTCUSDT, RECORDINGS_DIR, iter_recording
from trading.backtest import Backtest
from trading.engine import Engine
from trading.fillsim import SimulatedExchange
from trading.latency import ConstantLatency
from trading.risk import RiskLimits
from trading.strategies import build_strategy

MS = 1_000_000
INSTRUMENT = BINANCE_SPOT_BTCUSDT
PATHS = sorted((RECORDINGS_DIR / "binance-spot").glob("*.gz"))


def _backtest(params: dict):
    events = itertools.islice(iter_recording(PATHS, INSTRUMENT), 40_000)  # about 5 minutes
    strategy = build_strategy("avellaneda_stoikov", params, INSTRUMENT)
    engine = Engine(
        strategy,
        INSTRUMENT,
        bot_id="as",
        risk=RiskLimits(),
        initial_base=INSTRUMENT.lots("1"),
        initial_quote=INSTRUMENT.cash_units("100000"),
    )
    exchange = SimulatedExchange(INSTRUMENT, latency=ConstantLatency(1 * MS, 1 * MS))
    result = Backtest(engine, events, exchange, timer_interval_ns=100 * MS).run()
    return result, strategy, engine.desired.reason


def test_default_parameters_quote_inside_the_cap_and_fill_on_the_replay_market():
    result, strategy, reason = _backtest({"order_amount": "0.001"})
    sigma, k = strategy.parameters()
    mid = strategy.reservation_price
    assert sigma is not None and k is not None and mid is not None
    cap = float(strategy.config.max_spread) * mid
    assert strategy.optimal_spread < cap, (strategy.optimal_spread, cap)
    assert "clamped" not in reason, reason
    print(f"\nAS defaults on replay BTC/USDT: spread {strategy.optimal_spread:.2f} USDT (cap {cap:.0f}), "
          f"sigma {sigma:.3g}, k {k:.3g}, fills {len(result.fills)}")  # fmt: skip
    assert len(result.fills) >= 10


def test_the_former_default_is_capped_and_never_fills_there():
    result, strategy, reason = _backtest({"order_amount": "0.001", "gamma": 0.1})
    assert strategy.optimal_spread > float(strategy.config.max_spread) * strategy.reservation_price
    assert "clamped" in reason
    assert len(result.fills) == 0
