"""Backtests on the shipped Binance USD-M recording treat BTCUSDT as a linear perpetual:
position, margin, unrealized PnL, funding at a given rate and the liquidation watch."""

from __future__ import annotations

import itertools
from decimal import Decimal
from fractions import Fraction

import pytest

from connectors.binance_recording import BINANCE_USDM_BTCUSDT, RECORDINGS, RECORDINGS_DIR, ReaderStats, iter_recording
from trading.backtest import Backtest, result_records
from trading.contracts import ContractSpec, MarginMode
from trading.engine import Engine
from trading.fillsim import SimulatedExchange
from trading.instruments import Instrument, InstrumentError
from trading.latency import ConstantLatency
from trading.margin import BINANCE_COINM_BTCUSD as COINM_TIERS
from trading.margin import BINANCE_USDM_BTCUSDT as TIERS
from trading.perp_ledger import FundingSchedule, PerpLedger
from trading.risk import RiskLimits
from trading.strategies import build_strategy

MS = 1_000_000
PATH = RECORDINGS_DIR / "binance-usdm" / "btcusdt_20240808.gz"
INSTRUMENT = Instrument.create(
    symbol="BTC/USDT:USDT",
    base="BTC",
    quote="USDT",
    tick_size=BINANCE_USDM_BTCUSDT.tick_size,
    lot_size=BINANCE_USDM_BTCUSDT.lot_size,
    min_notional=BINANCE_USDM_BTCUSDT.min_notional,
    maker_fee="0.0002",
    taker_fee="0.0005",
)
LINEAR = ContractSpec.create(kind="linear", contract_size=1, settle="USDT", max_leverage=125)


@pytest.fixture(scope="module")
def events():
    return list(itertools.islice(iter_recording([PATH], INSTRUMENT), 30_000))


def _run(events, ledger: PerpLedger, amount: str = "0.002"):
    strategy = build_strategy(
        "fixed_spread",
        {"order_amount": amount, "bid_spread": "0.00005", "ask_spread": "0.00005", "refresh_time": "0.1"},
        INSTRUMENT,
    )
    engine = Engine(
        strategy, INSTRUMENT, bot_id="perp", risk=RiskLimits(), initial_quote=INSTRUMENT.cash_units("100000")
    )
    exchange = SimulatedExchange(INSTRUMENT, latency=ConstantLatency(MS, MS))
    return Backtest(engine, events, exchange, timer_interval_ns=100 * MS, perp=ledger).run(), engine


def _funded_ledger(events) -> tuple[int, PerpLedger]:
    """5,000 USDT at 10x with one funding time 20 s into the data at 0.01 %."""
    funding_at = events[0].ts + 20 * 1_000 * MS
    schedule = FundingSchedule.create(series=[(funding_at, "0.0001")])
    return funding_at, PerpLedger(INSTRUMENT, LINEAR, TIERS, wallet=Decimal(5000), leverage=10, funding=schedule)


def test_linear_perp_backtest_reports_position_margin_pnl_and_funding(events):
    funding_at, ledger = _funded_ledger(events)
    result, engine = _run(events, ledger)
    perp = result.perp
    assert result.fill_count > 20
    # contract size 1: the perpetual position is the engine's inventory, lot for lot
    assert perp["position_lots"] == engine.portfolio.position == result.final_position
    # one funding payment, at the given time, signed against the position held then
    (payment,) = perp["fundings"]
    assert payment.ts == funding_at and payment.rate == Fraction(1, 10_000)
    assert payment.amount != 0
    assert perp["funding"] == payment.amount
    # linear PnL equals the spot arithmetic the engine keeps (both in USDT); the engine keeps
    # integer cash units (1e-12 USDT here) and rounds the average cost per fill, the ledger is exact
    cash = INSTRUMENT.cash
    assert abs(perp["realized"] - Fraction(cash(engine.portfolio.realized))) <= Fraction(result.fill_count, 10**12)
    assert perp["fees"] == Fraction(cash(result.pnl.fees))
    # equity identity and margin at the final mark
    assert perp["equity"] == perp["wallet"] + perp["realized"] + perp["unrealized"] + perp["funding"] - perp["fees"]
    notional = abs(Fraction(INSTRUMENT.quantity(perp["position_lots"]))) * perp["mark_price"]
    assert perp["margin_used"] == Fraction(notional) / 10
    assert perp["liquidated_at"] is None and perp["min_liquidation_distance"] > 0
    records = result_records(result, INSTRUMENT)
    assert records["perp"]["settle"] == "USDT" and records["pnl_decomposition"]["funding"] == records["perp"]["funding"]
    assert "E" not in records["perp"]["funding"]  # plain decimals, never '0E-8'


def test_funding_payment_sign_follows_the_position(events):
    _, ledger = _funded_ledger(events)
    _run(events, ledger)
    (payment,) = ledger.fundings
    # the position at the funding time is what the amount implies: -position x mark x rate
    position = -payment.amount / (payment.mark * payment.rate)
    assert position != 0 and (position > 0) == (payment.amount < 0)


def test_thin_margin_position_is_liquidated_at_the_bankruptcy_price_and_the_run_stops(events):
    """Cross margin: the whole (thin) wallet backs the position and is what the liquidation takes."""
    ledger = PerpLedger(INSTRUMENT, LINEAR, TIERS, wallet=Decimal(3), leverage=125, margin_mode=MarginMode.CROSS)
    result, _ = _run(events, ledger, amount="0.01")
    perp = result.perp
    assert perp["liquidated_at"] is not None and perp["position_lots"] == 0
    assert result.last_ts <= perp["liquidated_at"] + 100 * MS  # nothing traded after the liquidation
    # the margin is gone: equity at most what funding/rounding leave, never above the wallet
    assert perp["equity"] <= Fraction(3)


def test_an_isolated_position_is_liquidated_on_its_own_margin_however_large_the_wallet():
    """Isolated margin: the position's wallet is its initial margin (notional / leverage, as the
    exchange allocates it; trading.isolated_margin's worked example), not the account's 10,000
    USDT: long 0.004 BTC at 59,940 at 10x, bracket 1 (MMR 0.4 %): isolated wallet 23.976 USDT,
    liquidation 59,940 x 0.9 / 0.996 = 54,162.65... The same position on cross margin is backed
    by the whole wallet and has no liquidation price above zero. At the isolated liquidation the
    position's own margin is lost, nothing more."""
    from trading.events import Liquidity, OrderFilled
    from trading.instruments import Side

    ledgers = {}
    for mode in (MarginMode.ISOLATED, MarginMode.CROSS):
        ledger = PerpLedger(INSTRUMENT, LINEAR, TIERS, wallet=Decimal(10_000), leverage=10, margin_mode=mode)
        fill = OrderFilled(1, "b1", Side.BUY, INSTRUMENT.ticks("59940"), INSTRUMENT.lots("0.004"), 0, 0,
                           Liquidity.TAKER, "t1")  # fmt: skip
        ledger.on_fill(fill)
        ledger.on_mark(2, Fraction(59_940))
        ledgers[mode] = ledger
    isolated, cross = ledgers[MarginMode.ISOLATED], ledgers[MarginMode.CROSS]
    assert isolated.isolated.wallet == Fraction(23976, 1000)
    assert isolated.liquidation_price() == Fraction(59_940 * 9, 10) / Fraction(996, 1000)
    assert cross.liquidation_price() is None
    realized_before = isolated.position.realized
    isolated.on_mark(3, Fraction(54_000))
    cross.on_mark(3, Fraction(54_000))
    assert isolated.liquidated_at == 3 and isolated.position.net_lots == 0
    assert cross.liquidated_at is None
    # closed at the bankruptcy price, where the isolated wallet (23.976) is used up: 59,940 x 0.9
    loss = isolated.position.realized - realized_before
    assert loss == -Fraction(23976, 1000)


def test_bad_funding_and_wallet_inputs_are_refused_by_name():
    with pytest.raises(InstrumentError, match="funding_rate"):
        FundingSchedule.create(constant="0.5")
    with pytest.raises(InstrumentError, match="wallet"):
        PerpLedger(INSTRUMENT, LINEAR, TIERS, wallet=Decimal(0))
    with pytest.raises(InstrumentError, match="leverage"):
        PerpLedger(INSTRUMENT, LINEAR, TIERS, wallet=Decimal(10), leverage=200)


def test_coinm_recording_backtests_with_inverse_pnl_in_the_settle_coin():
    recording = RECORDINGS["binance-coinm-btcusd"]
    instrument = Instrument.create(
        symbol=recording.instrument.symbol,
        base="BTC",
        quote="USD",
        tick_size=recording.instrument.tick_size,
        lot_size=recording.instrument.lot_size,
        maker_fee="0.0001",
        taker_fee="0.0005",
    )
    spec = ContractSpec.create(kind="inverse", contract_size=100, settle="BTC")
    stats = ReaderStats()
    events = list(iter_recording(recording.paths, instrument, stats=stats))
    assert not stats.bad_lines and stats.deltas > 1500
    ledger = PerpLedger(instrument, spec, COINM_TIERS, wallet=Decimal("0.5"), leverage=20)
    strategy = build_strategy(
        "fixed_spread",
        {"order_amount": "2", "bid_spread": "0.00005", "ask_spread": "0.00005", "refresh_time": "0.1"},
        instrument,
    )
    engine = Engine(
        strategy, instrument, bot_id="coinm", risk=RiskLimits(), initial_quote=instrument.cash_units("100000")
    )
    exchange = SimulatedExchange(instrument, latency=ConstantLatency(MS, MS))
    result = Backtest(engine, events, exchange, timer_interval_ns=100 * MS, perp=ledger).run()
    perp = result.perp
    assert result.fill_count > 5 and perp["settle"] == "BTC"
    # realized + unrealized is path independent for inverse contracts:
    # sum(q_i x 100 / p_i) - (sum q_i) x 100 / mark, in BTC, whatever the order of the fills
    mark = perp["mark_price"]
    signed = [(f.qty if f.side.name == "BUY" else -f.qty, Fraction(instrument.price(f.price))) for f in result.fills]
    expected = sum(q * 100 / p for q, p in signed) - sum(q for q, _ in signed) * 100 / mark
    assert perp["realized"] + perp["unrealized"] == expected
    # fees in BTC: contracts x 100 / price x the maker or taker rate
    fees = sum(
        f.qty
        * Fraction(100)
        / Fraction(instrument.price(f.price))
        * (Fraction(1, 10_000) if f.liquidity.value == "maker" else Fraction(5, 10_000))
        for f in result.fills
    )
    assert perp["fees"] == fees
    records = result_records(result, instrument)
    assert records["pnl_decomposition"]["currency"] == "BTC"
    assert records["metrics"]["total_pnl"] == records["perp"]["net_pnl"]
