"""A perpetual backtest on the shipped Binance USD-M recording (2024-08-08 23:54:15 to 23:59:59
UTC) with a funding time at 23:56:30 (the recording ends before Binance's real 00:00 one, so the
series puts one inside it): the engine's perpetual risk puts the funding rate and the time to
funding on the strategy context, and ``funding_skew`` moves the quotes down (a positive rate:
longs pay) in the window before funding only."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from connectors.binance_recording import RECORDINGS, iter_recording
from trading.backtest import Backtest
from trading.contracts import MarginMode
from trading.engine import Engine
from trading.fillsim import SimulatedExchange
from trading.latency import ConstantLatency
from trading.perp_ledger import FundingSchedule, PerpLedger
from trading.perp_risk import PerpRisk, PerpRiskLimits
from trading.risk import RiskLimits
from trading.strategies import build_strategy

MS = 1_000_000
REC = RECORDINGS["binance-usdm-btcusdt"]
INST = REC.instrument
FUNDING_AT = int(datetime(2024, 8, 8, 23, 56, 30, tzinfo=UTC).timestamp()) * 1_000_000_000
WINDOW_NS = 60 * 1_000_000_000
RATE = Decimal("0.0001")
PARAMS = {
    "order_amount": "0.004",
    "spread": "0.0001",
    "position_range": "0.04",
    "size_skew": "0.5",
    "funding_skew_minutes": 1.0,
}


@pytest.fixture(scope="module")
def events():
    out = []
    for e in iter_recording(REC.paths, INST):
        if e.ts > FUNDING_AT + 30_000 * MS:
            break
        out.append(e)
    assert out[0].ts < FUNDING_AT - WINDOW_NS  # the data starts before the window
    return out


class Recorder:
    """Wraps a strategy and keeps every quote set it asks for, with the mid it saw."""

    def __init__(self, inner) -> None:
        self.inner, self.config, self.seen = inner, inner.config, []

    def on_event(self, event, ctx):
        out = self.inner.on_event(event, ctx)
        if out is not None and (out.bids or out.asks):
            mid2 = ctx.book.best_bid() + ctx.book.best_ask()
            self.seen.append(
                (ctx.ts, mid2, tuple(q.price for q in out.bids), tuple(q.price for q in out.asks), out.reason)
            )
        return out


def run(events, skew: float):
    schedule = FundingSchedule.create(series=[(FUNDING_AT, RATE)])
    strategy = Recorder(build_strategy("inventory_based", {**PARAMS, "funding_skew": skew}, INST))
    perp = PerpRisk(PerpRiskLimits(), INST, REC.contract, REC.tiers, wallet="10000", leverage=10, funding=schedule)
    engine = Engine(strategy, INST, bot_id="f", risk=RiskLimits(), perp=perp)
    ledger = PerpLedger(
        INST,
        REC.contract,
        REC.tiers,
        wallet=Decimal(10000),
        leverage=10,
        margin_mode=MarginMode.ISOLATED,
        funding=schedule,
    )
    exchange = SimulatedExchange(INST, latency=ConstantLatency(MS, MS))
    result = Backtest(engine, events, exchange, timer_interval_ns=100 * MS, perp=ledger).run()
    return strategy.seen, result, engine


def test_funding_skew_moves_quotes_down_before_the_funding_time_only(events):
    plain, plain_result, _ = run(events, 0.0)
    skewed, skewed_result, engine = run(events, 1.0)
    start = FUNDING_AT - WINDOW_NS
    before = [q for q in skewed if q[0] <= start]
    assert len(before) > 100 and before == [q for q in plain if q[0] <= start]  # identical until the window
    assert all("funding skew" not in q[4] for q in before)
    inside = [q for q in skewed if start < q[0] < FUNDING_AT]
    after = [q for q in skewed if q[0] >= FUNDING_AT]
    assert len(inside) > 100 and after
    assert all("funding skew -" in q[4] and "rate 0.0100%" in q[4] for q in inside)
    assert all("funding skew" not in q[4] for q in after)
    # the first quotes in the window, from the same state as the plain run: down by rate x mid
    ts, mid2, bids, asks, _ = inside[0]
    twin = next(q for q in plain if q[0] == ts)
    shift = float(RATE) * mid2 / 2  # ticks: 0.0001 x ~61,000 USDT / 0.1 = ~61 ticks
    assert 55 < shift < 70
    assert twin[1] == mid2
    for ours, theirs in zip(bids + asks, twin[2] + twin[3], strict=True):
        assert abs((theirs - ours) - shift) <= 1
    # the context carried the schedule's rate and time; funding was booked at 00:00 by the ledger
    assert engine.ctx.funding_rate is None and engine.ctx.next_funding_ts is None  # the series has ended
    for result in (plain_result, skewed_result):
        (payment,) = result.perp["fundings"]
        assert payment.ts == FUNDING_AT
    # the strategy's own funding figure agrees with the ledger's
    assert engine.perp.position.funding == skewed_result.perp["funding"]
