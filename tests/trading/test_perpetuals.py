"""Perpetual futures arithmetic against worked numbers: inverse PnL, funding signs, maintenance
tiers, liquidation prices (isolated, cross, hedge, bracket change) and position accounting."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest

from trading.contracts import ContractKind, ContractSpec, MarginMode, PositionMode, frac, to_decimal
from trading.instruments import Instrument, InstrumentError, Side
from trading.margin import (
    BINANCE_COINM_BTCUSD,
    BINANCE_USDM_BTCUSDT,
    BracketTable,
    bankruptcy_price,
    liquidation_price,
)
from trading.positions import PerpPosition

LINEAR = ContractSpec.create(kind="linear", contract_size=1, settle="USDT", max_leverage=125)
INVERSE = ContractSpec.create(kind="inverse", contract_size=100, settle="BTC", max_leverage=125)
USDM = Instrument.create(symbol="BTC/USDT:USDT", tick_size="0.1", lot_size="0.001", maker_fee="0.0002")
COINM = Instrument.create(symbol="BTC/USD:BTC", tick_size="0.1", lot_size="1", base="BTC", quote="USD")


def test_inverse_pnl_is_contracts_times_size_times_reciprocal_difference() -> None:
    # 10 contracts of 100 USD long from 60,000 to 61,000: 1,000 x (1/60,000 - 1/61,000) BTC
    assert INVERSE.pnl(10, 60000, 61000) == Fraction(1000, 60000) - Fraction(1000, 61000)
    assert to_decimal(INVERSE.pnl(10, 60000, 61000)) == Decimal("0.000273224043715847")
    assert INVERSE.pnl(-10, 60000, 61000) == -INVERSE.pnl(10, 60000, 61000)
    assert LINEAR.pnl(Decimal("0.009"), Decimal("67445.9"), Decimal("67502.7")) == Fraction("0.009") * Fraction("56.8")


def test_funding_sign_longs_pay_shorts_when_the_rate_is_positive() -> None:
    assert LINEAR.funding_payment(2, 60000, Decimal("0.0001")) == -12
    assert LINEAR.funding_payment(-2, 60000, Decimal("0.0001")) == 12
    assert LINEAR.funding_payment(2, 60000, Decimal("-0.0001")) == 12
    # inverse: 100 contracts x 100 USD at mark 50,000 = 0.2 BTC; x 0.01 % = 0.00002 BTC
    assert INVERSE.funding_payment(100, 50000, Decimal("0.0001")) == Fraction("-0.00002")
    assert INVERSE.funding_payment(-100, 50000, Decimal("0.0001")) == Fraction("0.00002")


def test_maintenance_amounts_follow_the_documented_tiers() -> None:
    usdm = [b.cum for b in BINANCE_USDM_BTCUSDT.brackets]
    assert usdm[:4] == [0, 50, 1300, 16300]  # 50,000 x 0.1 %; + 250,000 x 0.5 %; + 1,000,000 x 1.5 %
    # COIN-M FAQ: level 5 = 50 BTC x (5 % - 2.5 %) + 0.56 BTC = 1.81 BTC; 300 BTC -> 12.5 %, 11.81 BTC
    assert BINANCE_COINM_BTCUSD.brackets[3].cum == Fraction("0.56")
    assert BINANCE_COINM_BTCUSD.brackets[4].cum == Fraction("1.81")
    b300 = BINANCE_COINM_BTCUSD.bracket(Fraction(300))
    assert (b300.mmr, b300.cum) == (Fraction("0.125"), Fraction("11.81"))
    # COIN-M FAQ: 100 BTCUSD contracts at 25,000 = 0.4 BTC, level 1: 0.4 x 0.4 % - 0 = 0.0016 BTC
    notional = INVERSE.notional(100, 25000)
    assert notional == Fraction("0.4")
    assert BINANCE_COINM_BTCUSD.maintenance_margin(notional) == Fraction("0.0016")


def test_bracket_tables_refuse_disordered_rows() -> None:
    with pytest.raises(InstrumentError, match="bracket 2 cap"):
        BracketTable.create("X", [(100, 10, "0.01"), (50, 5, "0.02")])
    with pytest.raises(InstrumentError, match="bracket 2 mmr"):
        BracketTable.create("X", [(100, 10, "0.02"), (200, 5, "0.01")])
    with pytest.raises(InstrumentError, match="only the last"):
        BracketTable.create("X", [(None, 10, "0.02"), (200, 5, "0.03")])


def test_cross_liquidation_price_matches_binance_for_a_real_position() -> None:
    """ccxt's recorded Binance USD-M position (tests/connectors/fixtures/ccxt/response/binance.json,
    fetchPositions): long 0.009 BTC at 67,445.9, tier 1 (0.4 %), liquidation price 64,846.98753790
    with ccxt's collateral 25.72470371 USDT as the cross wallet."""
    lp = liquidation_price(
        LINEAR, BINANCE_USDM_BTCUSDT, Decimal("25.72470371"), [(Decimal("0.009"), Decimal("67445.9"))]
    )
    assert abs(to_decimal(lp, 8) - Decimal("64846.98753790")) <= Decimal("0.00000005")


def test_isolated_linear_liquidation_long_and_short_with_a_bracket_change() -> None:
    # long 1 BTC at 50,000 with 1,000 USDT: (1,000 - 50,000) / (0.004 - 1)
    assert liquidation_price(LINEAR, BINANCE_USDM_BTCUSDT, 1000, [(1, 50000)]) == Fraction(-49000) / Fraction("-0.996")
    # short: the first pass (bracket 1) gives 50,796.8: its notional is in bracket 2 (0.5 %, cum 50),
    # so the price is (1,000 + 50 + 50,000) / (0.005 + 1)
    lp = liquidation_price(LINEAR, BINANCE_USDM_BTCUSDT, 1000, [(-1, 50000)])
    assert lp == Fraction(51050) / Fraction("1.005")
    # at that price the margin balance equals the maintenance margin
    assert 1000 + LINEAR.pnl(-1, 50000, lp) == BINANCE_USDM_BTCUSDT.maintenance_margin(LINEAR.notional(1, lp))


def test_isolated_inverse_liquidation_balances_margin_and_maintenance() -> None:
    # 100 contracts (10,000 USD) long at 50,000 with 0.02 BTC: (10,000 x 0.004 + 10,000) / (0.02 + 10,000/50,000)
    lp = liquidation_price(INVERSE, BINANCE_COINM_BTCUSD, Decimal("0.02"), [(100, 50000)])
    assert lp == Fraction(10040) / Fraction("0.22")
    assert frac("0.02") + INVERSE.pnl(100, 50000, lp) == BINANCE_COINM_BTCUSD.maintenance_margin(
        INVERSE.notional(100, lp)
    )


def test_hedge_mode_liquidation_uses_both_legs() -> None:
    # long 0.5 at 50,000 and short 0.2 at 52,000, cross wallet 1,000 USDT: both legs in tier 1
    lp = liquidation_price(LINEAR, BINANCE_USDM_BTCUSDT, 1000, [(Decimal("0.5"), 50000), (Decimal("-0.2"), 52000)])
    num = 1000 - Fraction("0.5") * 50000 + Fraction("0.2") * 52000
    den = Fraction("0.5") * Fraction("0.004") + Fraction("0.2") * Fraction("0.004") - Fraction("0.5") + Fraction("0.2")
    assert lp == num / den
    # long 2 at 50,000 and short 1 at 52,000 with 3,000: at the first result the long leg's notional
    # (2 x 45,546) is in tier 2 (0.5 %, cum 50), so the price is recomputed with it
    lp2 = liquidation_price(LINEAR, BINANCE_USDM_BTCUSDT, 3000, [(2, 50000), (-1, 52000)])
    assert lp2 == (Fraction(3000) + 50 - 2 * 50000 + 52000) / (2 * Fraction("0.005") + Fraction("0.004") - 2 + 1)


def test_fully_collateralised_position_has_no_liquidation_price() -> None:
    assert liquidation_price(LINEAR, BINANCE_USDM_BTCUSDT, 60000, [(1, 50000)]) is None


def test_bankruptcy_price_zeroes_the_margin_balance() -> None:
    assert bankruptcy_price(LINEAR, 1000, 1, 50000) == 49000
    assert bankruptcy_price(LINEAR, 1000, -1, 50000) == 51000
    bp = bankruptcy_price(INVERSE, Decimal("0.02"), 100, 50000)
    assert frac("0.02") + INVERSE.pnl(100, 50000, bp) == 0


def test_linear_position_averages_entry_realizes_on_reduce_and_flips() -> None:
    pos = PerpPosition(USDM, LINEAR, leverage=10)
    pos.apply_fill(Side.BUY, USDM.ticks("50000"), USDM.lots("0.002"))
    pos.apply_fill(Side.BUY, USDM.ticks("51000"), USDM.lots("0.002"))
    assert pos.entry_price() == 50500
    realized = pos.apply_fill(Side.SELL, USDM.ticks("52000"), USDM.lots("0.003"))
    assert realized == Fraction("0.003") * 1500
    assert pos.net_lots == USDM.lots("0.001") and pos.entry_price() == 50500
    pos.apply_fill(Side.SELL, USDM.ticks("49000"), USDM.lots("0.003"))  # closes 0.001, opens 0.002 short
    assert pos.net_lots == -USDM.lots("0.002") and pos.entry_price() == 49000
    assert pos.realized == Fraction("0.003") * 1500 + Fraction("0.001") * (49000 - 50500)
    assert pos.unrealized(Decimal("48000")) == Fraction("0.002") * 1000
    assert pos.margin_used(Decimal("48000")) == Fraction("0.002") * 48000 / 10


def test_inverse_entry_is_the_harmonic_mean_and_partial_closes_add_up() -> None:
    pos = PerpPosition(COINM, INVERSE, leverage=20)
    pos.apply_fill(Side.BUY, COINM.ticks("50000"), 100)
    pos.apply_fill(Side.BUY, COINM.ticks("60000"), 100)
    assert pos.entry_price() == Fraction(200, Fraction(100, 50000) + Fraction(100, 60000))
    a = pos.apply_fill(Side.SELL, COINM.ticks("55000"), 50)
    b = pos.apply_fill(Side.SELL, COINM.ticks("55000"), 150)
    # closing in two parts realizes exactly what the two opening fills make against 55,000
    assert a + b == INVERSE.pnl(100, 50000, 55000) + INVERSE.pnl(100, 60000, 55000)
    assert pos.net_lots == 0 and pos.entry_price() is None


def test_funding_is_booked_on_the_position_and_in_equity() -> None:
    pos = PerpPosition(USDM, LINEAR, leverage=5)
    pos.apply_fill(Side.SELL, USDM.ticks("60000"), USDM.lots("0.5"), fee=Decimal("6"))
    assert pos.book_funding(Decimal("60000"), Decimal("0.0001")) == 3  # a short receives
    assert pos.equity(1000, Decimal("60000")) == 1000 + 3 - 6


def test_reduce_only_and_hedge_mode_refusals_name_the_position() -> None:
    pos = PerpPosition(USDM, LINEAR, leverage=5)
    pos.apply_fill(Side.BUY, USDM.ticks("50000"), 2)
    with pytest.raises(InstrumentError, match="would increase"):
        pos.apply_fill(Side.BUY, USDM.ticks("50000"), 1, reduce_only=True)
    with pytest.raises(InstrumentError, match="at most 2 lots"):
        pos.apply_fill(Side.SELL, USDM.ticks("50000"), 3, reduce_only=True)
    hedge = PerpPosition(USDM, LINEAR, mode=PositionMode.HEDGE, margin_mode=MarginMode.ISOLATED, leverage=3)
    hedge.apply_fill(Side.BUY, USDM.ticks("50000"), 2, position_side="long")
    hedge.apply_fill(Side.SELL, USDM.ticks("50100"), 1, position_side="short")
    assert (hedge.legs["long"].lots, hedge.legs["short"].lots, hedge.net_lots) == (2, -1, 1)
    with pytest.raises(InstrumentError, match="do not cross zero"):
        hedge.apply_fill(Side.SELL, USDM.ticks("50000"), 3, position_side="long")


def test_leverage_and_contract_spec_bounds() -> None:
    with pytest.raises(InstrumentError, match="accepted: 1 to 125"):
        PerpPosition(USDM, LINEAR, leverage=126)
    with pytest.raises(InstrumentError, match="contract kind"):
        ContractSpec.create(kind="future", settle="USDT")
    with pytest.raises(InstrumentError, match="settle"):
        ContractSpec.create(kind=ContractKind.LINEAR)
    with pytest.raises(InstrumentError, match="contract_size"):
        ContractSpec.create(kind="linear", contract_size="1e400", settle="USDT")
