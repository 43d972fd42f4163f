"""The runner (``trading.runner.Runner``): the backtester's per-event algorithm, also driven the
way a hosted bot drives it (commands deferred to the end of each step and sent by the caller,
reports whose venue writes are unconfirmed held from ``record``)."""

from __future__ import annotations

import pytest

from trading.backtest import Backtest
from trading.engine import Engine
from trading.events import OrderFilled, PlaceOrder
from trading.fillsim import SimulatedExchange
from trading.instruments import Instrument
from trading.latency import ConstantLatency
from trading.risk import RiskLimits
from trading.runner import NoMatching, Runner
from trading.strategies import build_strategy
from trading.synthetic.avellaneda_stoikov import event_stream

MS = 1_000_000
INST = Instrument.create(symbol="AS/USD", tick_size="0.01", lot_size="1", maker_fee="-0.0001", taker_fee="0.0005")
TIMER_NS = 100 * MS


def engine() -> Engine:
    params = {"order_amount": "1", "bid_spread": "0.002", "ask_spread": "0.002", "order_levels": 2}
    strategy = build_strategy("fixed_spread", params, INST)
    return Engine(strategy, INST, bot_id="7", risk=RiskLimits(), initial_quote=INST.cash_units("100000"))


class Logged(SimulatedExchange):
    """The simulated exchange, noting every place that reaches it."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.placed: list = []

    def submit(self, command, ts: int) -> None:
        if type(command) is PlaceOrder:
            self.placed.append(command)
        super().submit(command, ts)


def hosted_like(events: list, latency_ns: int) -> tuple[list, list, list]:
    """Drive a deferring runner as ``workers.botloop.BotRunner`` does: one step per event or
    timer, then the deferred commands to the venue at the step's time and the answers back (the
    caller's flush), and a step at every time the venue has an answer due."""
    venue = Logged(INST, latency=ConstantLatency(latency_ns, latency_ns), seed=3)
    recorded: list = []
    runner = Runner(engine(), venue, defer=True, record=recorded.append)

    def flush(now: int) -> None:
        while commands := runner.take():
            for command in commands:
                venue.submit(command, now)
            runner.reports(venue.advance(now))

    def due_until(ts: int) -> None:
        while (due := venue.next_due()) is not None and due < ts:
            runner.answers(due)
            flush(due)

    next_timer = events[0].ts + TIMER_NS
    for ev in events:
        while ev.ts >= next_timer:
            due_until(next_timer)
            runner.timer(next_timer)
            flush(next_timer)
            next_timer += TIMER_NS
        due_until(ev.ts)
        runner.market(ev, ev.ts)
        flush(ev.ts)
    runner.answers(events[-1].ts)
    flush(events[-1].ts)
    fills = [r for r in recorded if type(r) is OrderFilled]
    return venue.placed, fills, recorded


@pytest.mark.parametrize("latency_ms", [0, 1])
def test_deferred_runner_sends_the_same_orders_and_gets_the_same_fills_as_the_backtest(latency_ms):
    events = list(event_stream(INST, seed=21, step_ns=50 * MS))[:4000]
    venue = Logged(INST, latency=ConstantLatency(latency_ms * MS, latency_ms * MS), seed=3)
    result = Backtest(engine(), events, venue, timer_interval_ns=TIMER_NS).run()
    placed, fills, recorded = hosted_like(events, latency_ms * MS)
    assert len(venue.placed) > 100 and result.fill_count > 10  # it really traded
    assert [_order(c) for c in placed] == [_order(c) for c in venue.placed]
    assert [_fill(f) for f in fills] == [_fill(f) for f in result.fills]
    assert len(recorded) > len(fills)  # acceptances and cancels reach ``record`` too
    # What differs: when the fills a market event makes get a reply from the engine, the
    # backtest's venue takes the reply (and, without latency, acknowledges it) before the engine
    # sees the event itself; a deferring runner sends the reply at the end of the step, so the
    # engine sees the event first and the answer after. The orders sent and the fills are the
    # same, but the engine's bookkeeping is not: some of its cancels meet an order that already
    # left the venue (noted ``reject_unknown``), and it draws client ids for quotes that its
    # order-rate limit then holds back at other moments, so the same orders carry client ids
    # offset by those draws: never decreasing, and bounded here by a tenth of the orders.
    drift = [_seq(a) - _seq(b) for a, b in zip(placed, venue.placed, strict=True)]
    assert drift == sorted(drift) and drift[0] == 0, drift
    assert drift[-1] <= len(placed) // 10, drift[-1]


def _order(c: PlaceOrder) -> tuple:
    return (c.side, c.price, c.qty, c.time_in_force)


def _fill(f: OrderFilled) -> tuple:
    return (f.ts, f.side, f.price, f.qty, f.leaves_qty, f.fee, f.liquidity)


def _seq(c: PlaceOrder) -> int:
    return int(c.client_order_id.rsplit("-", 1)[1], 36)


def test_reports_are_held_from_record_while_the_venue_has_not_confirmed_them():
    class Unconfirmed(SimulatedExchange):
        unconfirmed = True

    venue = Unconfirmed(INST)
    recorded: list = []
    runner = Runner(engine(), venue, defer=True, hold=True, record=recorded.append)
    events = list(event_stream(INST, seed=4, step_ns=50 * MS))[:2000]
    held_seen = 0
    for ev in events:
        runner.market(ev, ev.ts)
        for command in runner.take():
            venue.submit(command, ev.ts)
        if runner.held:
            held_seen += len(runner.held)
            before = len(recorded)
            for report in runner.release():  # the venue confirmed: now they may be recorded
                recorded.append(report)
            assert len(recorded) > before
        runner.reports(venue.advance(ev.ts))  # answers to sent commands are never held
    assert held_seen > 0, "no fill was ever held"
    assert runner.held is None
    assert any(type(r) is OrderFilled for r in recorded)


def test_a_venue_without_matching_checks_its_health_at_every_timer():
    failures = []

    def check() -> None:
        if failures:
            raise failures[0]

    runner = Runner(engine(), NoMatching(check), defer=True)
    runner.timer(1)
    failures.append(RuntimeError("authentication failed"))
    with pytest.raises(RuntimeError, match="authentication failed"):
        runner.timer(2)
    with pytest.raises(TypeError, match="defers"):
        NoMatching().submit(None, 0)
