"""One engine for backtest and paper: the same strategy object, fed the same market events,
sends identical commands whether the backtester drives it or a paper gateway does."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from connectors.paper import PaperGateway
from trading.backtest import Backtest
from trading.clock import ManualClock
from trading.engine import Engine
from trading.events import CancelOrder, PlaceOrder, Timer
from trading.fillsim import SimulatedExchange
from trading.instruments import Instrument
from trading.latency import ConstantLatency
from trading.risk import RiskLimits
from trading.strategies import build_strategy
from trading.synthetic.avellaneda_stoikov import event_stream

MS = 1_000_000
INST = Instrument.create(symbol="AS/USD", tick_size="0.01", lot_size="1", maker_fee="-0.0001", taker_fee="0.0005")
TIMER_NS = 100 * MS


def make_engine(strategy_name: str) -> Engine:
    params = {
        "fixed_spread": {"order_amount": "1", "bid_spread": "0.005", "ask_spread": "0.005", "order_levels": 2},
        "avellaneda_stoikov": {"order_amount": "1", "gamma": "0.1", "sigma": "2", "k": "1.5", "horizon": "1000"},
    }[strategy_name]
    strategy = build_strategy(strategy_name, params, INST)
    return Engine(strategy, INST, bot_id="7", risk=RiskLimits(), initial_quote=INST.cash_units("100000"))


def exchange() -> SimulatedExchange:
    return SimulatedExchange(INST, latency=ConstantLatency(1 * MS, 1 * MS), seed=5)


def recorded(engine: Engine, log: list) -> Engine:
    """Log every command the engine returns (without changing what it does)."""
    on_event = engine.on_event

    def logged(event):
        commands = on_event(event)
        log.extend(commands)
        return commands

    engine.on_event = logged
    return engine


def backtest_commands(strategy_name: str, events: list) -> list:
    log: list = []
    engine = recorded(make_engine(strategy_name), log)
    Backtest(engine, events, exchange(), timer_interval_ns=TIMER_NS, share_book=False).run()
    return log


async def paper_commands(strategy_name: str, events: list) -> list:
    """Drive the engine the way a paper bot loop does: market events go to the engine and to the
    paper gateway; the gateway's order events go back to the engine; commands go to the gateway."""
    log: list = []
    engine = recorded(make_engine(strategy_name), log)
    clock = ManualClock(events[0].ts)
    gateway = PaperGateway(
        INST, None, {"USD": Decimal("1e12"), "AS": Decimal("1e12")}, exchange=exchange(), clock=clock
    )

    async def send(commands) -> None:
        for command in commands:
            if isinstance(command, PlaceOrder):
                await gateway.place(INST.symbol, command)
            elif isinstance(command, CancelOrder):
                await gateway.cancel(INST.symbol, command)

    async def answer() -> None:
        gateway.advance()
        while pending := gateway.drain():
            sent = False
            for event in pending:
                commands = engine.on_event(event)
                if commands:
                    await send(commands)
                    sent = True
            if not sent:
                return
            gateway.advance()

    async def run_until(ts: int) -> None:
        # Time passes continuously for a paper bot: answers are handled the moment they arrive.
        # Latencies here are whole milliseconds, so stepping the clock by 1 ms is exact.
        while clock.now_ns() + MS <= ts:
            clock.set(clock.now_ns() + MS)
            await answer()
        clock.set(max(ts, clock.now_ns()))
        await answer()

    next_timer = events[0].ts + TIMER_NS
    for event in events:
        while event.ts >= next_timer:
            await run_until(next_timer)
            await send(engine.on_event(Timer(next_timer)))
            next_timer += TIMER_NS
        await run_until(event.ts)
        gateway.on_market(event)
        await answer()
        await send(engine.on_event(event))
    await answer()
    await gateway.close()
    return log


def test_fixed_spread_sends_identical_commands_in_backtest_and_paper():
    events = list(event_stream(INST, seed=11, step_ns=50 * MS))[:3000]
    in_backtest = backtest_commands("fixed_spread", events)
    on_paper = asyncio.run(paper_commands("fixed_spread", events))
    assert len(in_backtest) > 100  # it really traded: places and cancels
    assert any(isinstance(c, CancelOrder) for c in in_backtest)
    assert on_paper == in_backtest


def test_avellaneda_stoikov_sends_identical_commands_in_backtest_and_paper():
    events = list(event_stream(INST, seed=12, step_ns=50 * MS))[:3000]
    in_backtest = backtest_commands("avellaneda_stoikov", events)
    on_paper = asyncio.run(paper_commands("avellaneda_stoikov", events))
    assert len(in_backtest) > 100
    assert on_paper == in_backtest
