"""A hedge-mode backtest on the shipped USD-M recording: the engine's PerpRisk names each order's
leg, the backtester's ledger books every fill on that leg, and the two agree leg for leg; the
report lists both legs."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

from tests.trading.test_backtest_perp import INSTRUMENT, LINEAR, MS, events  # noqa: F401 - fixture
from trading.backtest import Backtest, result_records
from trading.contracts import MarginMode, PositionMode
from trading.engine import Engine
from trading.fillsim import SimulatedExchange
from trading.latency import ConstantLatency
from trading.margin import BINANCE_USDM_BTCUSDT as TIERS
from trading.perp_ledger import FundingSchedule, PerpLedger
from trading.perp_risk import PerpRisk
from trading.risk import RiskLimits
from trading.strategies import build_strategy


def test_hedge_backtest_books_each_fill_on_its_orders_leg(events):  # noqa: F811
    funding_at = events[0].ts + 20 * 1_000 * MS
    ledger = PerpLedger(
        INSTRUMENT, LINEAR, TIERS, wallet=Decimal(5000), leverage=10, margin_mode=MarginMode.CROSS,
        mode=PositionMode.HEDGE, funding=FundingSchedule.create(series=[(funding_at, "0.0001")]),
    )  # fmt: skip
    perp = PerpRisk.from_ledger(ledger)
    strategy = build_strategy(
        "fixed_spread",
        {"order_amount": "0.002", "bid_spread": "0.00005", "ask_spread": "0.00005", "refresh_time": "0.1"},
        INSTRUMENT,
    )
    engine = Engine(
        strategy, INSTRUMENT, bot_id="hedge", risk=RiskLimits(), initial_quote=INSTRUMENT.cash_units("100000"),
        perp=perp,
    )  # fmt: skip
    exchange = SimulatedExchange(INSTRUMENT, latency=ConstantLatency(MS, MS))
    result = Backtest(engine, events, exchange, timer_interval_ns=100 * MS, perp=ledger).run()
    assert result.fill_count > 20
    legs = {perp.hedge.leg_of(f.client_order_id) for f in result.fills}
    assert legs == {"long", "short"}  # both legs were traded
    # the ledger and the engine's risk booked the same fills on the same legs
    pos = ledger.position
    assert {n: (leg.lots, leg.basis) for n, leg in pos.legs.items()} == {
        n: (leg.lots, leg.basis) for n, leg in perp.position.legs.items()
    }
    assert pos.realized == perp.position.realized
    assert pos.net_lots == engine.portfolio.position == result.final_position
    # funding: one time, on the account; the funding kept per leg leaves with a closed leg
    (payment,) = ledger.fundings
    assert payment.amount == pos.funding != 0
    for name, leg in pos.legs.items():
        kept = ledger.leg_funding.get(name, Fraction(0))
        assert kept == 0 if leg.lots == 0 else kept == 0 or (kept < 0) == (name == "long")
    records = result_records(result, INSTRUMENT)["perp"]
    assert records["position_mode"] == "hedge" and set(records["legs"]) == {"long", "short"}
    assert records["position_contracts"] == str(INSTRUMENT.quantity(pos.net_lots))
