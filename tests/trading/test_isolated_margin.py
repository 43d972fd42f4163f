"""A bot's liquidation price in isolated margin mode (live, paper and backtests alike), from the
position's isolated margin (trading.isolated_margin, trading.isolated_wallet), against worked numbers on Binance USD-M BTCUSDT (bracket 1: MMR 0.4 %,
cum 0; at 10x a long liquidates at entry x 0.9 / 0.996, a short at entry x 1.1 / 1.004)."""

from __future__ import annotations

from fractions import Fraction

from trading.contracts import ContractSpec, MarginMode
from trading.events import Liquidity, OrderFilled
from trading.instruments import Instrument, Side
from trading.isolated_margin import LivePerpRisk
from trading.margin import BINANCE_USDM_BTCUSDT as TIERS
from trading.perp_risk import PerpRisk, PerpRiskLimits

INST = Instrument.create(
    symbol="BTC/USDT:USDT", tick_size="0.1", lot_size="0.001", min_notional="5", maker_fee="0.0002", taker_fee="0.0005"
)
LINEAR = ContractSpec.create(kind="linear", contract_size=1, settle="USDT", max_leverage=125)


def make(cls=LivePerpRisk, mode=MarginMode.ISOLATED):
    return cls(PerpRiskLimits(), INST, LINEAR, TIERS, wallet="10000", leverage=10, margin_mode=mode)


def fill(side: Side, price: str, lots: int) -> OrderFilled:
    return OrderFilled(1, "c1", side, INST.ticks(price), lots, 0, 0, Liquidity.MAKER, "t1")


def test_the_isolated_liquidation_price_comes_from_the_positions_margin_not_the_account_wallet():
    live, plain, cross = make(), make(PerpRisk), make(PerpRisk, MarginMode.CROSS)
    for r in (live, plain, cross):
        r.on_fill(fill(Side.BUY, "59940", 4))  # long 0.004 at 59,940
    # The isolated wallet is the initial margin: 0.004 x 59,940 / 10 = 23.976 USDT, and
    # LP = (23.976 - 0.004 x 59,940) / (0.004 x 0.004 - 0.004) = 59,940 x 0.9 / 0.996.
    assert live.isolated.wallet == Fraction("23.976")
    assert live.liquidation == Fraction(59940) * Fraction("0.9") / Fraction("0.996")
    assert f"{float(live.liquidation):.4f}" == "54162.6506"
    # The paper venue's and the backtester's risk keep the same isolated wallet.
    assert plain.isolated.wallet == live.isolated.wallet and plain.liquidation == live.liquidation
    # Cross margin: the account's 10,000 USDT back the position, which could never be liquidated.
    assert cross.isolated is None and cross.liquidation is None
    assert live.position.fees > 0  # fees go to the cross wallet, not into the isolated margin

    # Adding 0.004 at 60,060: + 24.024 margin = 48, entry 60,000: LP = 60,000 x 0.9 / 0.996.
    live.on_fill(fill(Side.BUY, "60060", 4))
    assert live.isolated.wallet == 48
    assert live.liquidation == Fraction(60000) * Fraction("0.9") / Fraction("0.996")  # 54,216.8675
    # Selling 0.002 of 0.008 releases a quarter of the margin (36 left): the rest keeps its price.
    live.on_fill(fill(Side.SELL, "61000", 2))
    assert live.isolated.wallet == 36
    assert live.liquidation == Fraction(60000) * Fraction("0.9") / Fraction("0.996")
    # Paying 0.5 USDT of funding takes it from the isolated margin:
    # LP = (35.5 - 0.006 x 60,000) / (0.006 x 0.004 - 0.006) = 324.5 / 0.005976.
    assert live.book_payment("-0.5") == Fraction("-0.5")
    assert live.isolated.wallet == Fraction("35.5") and live.position.funding == Fraction("-0.5")
    assert live.liquidation == Fraction("324.5") / Fraction("0.005976")
    assert f"{float(live.liquidation):.4f}" == "54300.5355"


def test_a_fill_through_zero_and_a_short_and_the_exchanges_own_isolated_wallet():
    live = make()
    live.on_fill(fill(Side.BUY, "60000", 6))
    # Selling 0.010 closes the long 0.006 (its margin released) and opens a short 0.004 at 61,000:
    # margin 0.004 x 61,000 / 10 = 24.4; LP = (24.4 + 0.004 x 61,000) / (0.004 x 0.004 + 0.004)
    # = 61,000 x 1.1 / 1.004.
    live.on_fill(fill(Side.SELL, "61000", 10))
    assert live.position.net_lots == -4
    assert live.isolated.wallet == Fraction("24.4")
    assert live.liquidation == Fraction(61000) * Fraction("1.1") / Fraction("1.004")
    assert f"{float(live.liquidation):.4f}" == "66832.6693"
    # The exchange's isolatedWallet (e.g. after it charged a fee there) replaces ours at a read
    # of a position of the same size: (30 + 244) / 0.004016.
    live.set_isolated_wallet("30", -4)
    assert live.liquidation == Fraction(274) / Fraction("0.004016")
    live.set_isolated_wallet("99", -3)  # another size: a fill since; ours stays
    assert live.isolated.wallet == 30
    # Closed: no liquidation price, no margin.
    live.on_fill(fill(Side.BUY, "60000", 4))
    assert live.liquidation is None and live.isolated.wallet == 0


def test_cross_mode_keeps_the_account_wallet():
    live = make(mode=MarginMode.CROSS)
    live.on_fill(fill(Side.BUY, "59940", 4))
    assert live.isolated is None and live.liquidation is None  # 10,000 USDT behind 0.004 BTC
    live.book_payment("0.25")
    assert live.position.funding == Fraction("0.25")
