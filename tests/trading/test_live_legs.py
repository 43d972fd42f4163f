"""A live hedge-mode position: the exchange's liquidation price and isolated wallet per leg used
by the liquidation-distance guard (ours when it has none for a leg of that size), and the
exchange's funding payments split over the legs exactly (trading.live_legs)."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest

from trading import hedge_legs
from trading.contracts import ContractSpec, MarginMode, PositionMode
from trading.events import Liquidity, OrderFilled
from trading.instruments import Instrument, Side
from trading.isolated_margin import LivePerpRisk
from trading.live_legs import VenueLeg, disagreements, split_funding
from trading.margin import BINANCE_USDM_BTCUSDT as TIERS
from trading.perp_risk import PerpRiskLimits
from trading.risk import RiskStatus

INST = Instrument.create(symbol="BTC/USDT:USDT", tick_size="0.1", lot_size="0.001", min_notional="5")
LINEAR = ContractSpec.create(kind="linear", contract_size=1, settle="USDT", max_leverage=125)
D = Decimal


# --- funding split ----------------------------------------------------------------------------
def test_a_long_heavy_payment_splits_into_the_long_paying_and_the_short_receiving():
    # rate +0.01 % at 60,000: long 0.005 (300 USDT) pays 0.03, short 0.002 (120 USDT) receives
    # 0.012; the exchange's one row is the net, -0.018
    assert split_funding(D("-0.01800000"), 5, -2) == {"long": D("-0.03000000"), "short": D("0.01200000")}


def test_a_short_heavy_payment_splits_with_the_short_receiving_more():
    # the same rate, long 0.002 pays 0.012, short 0.005 receives 0.03: the row is +0.018
    assert split_funding(D("0.01800000"), 2, -5) == {"long": D("-0.01200000"), "short": D("0.03000000")}


def test_a_negative_rate_gives_the_long_leg_the_receipt():
    # rate -0.01 %: long 0.005 receives 0.03, short 0.002 pays 0.012: the row is +0.018
    assert split_funding(D("0.01800000"), 5, -2) == {"long": D("0.03000000"), "short": D("-0.01200000")}


def test_the_smaller_leg_is_rounded_and_the_larger_takes_the_rest_exactly():
    # -0.0000001 over long 4 / short 1 (net 3): short = 1/3 x 1e-7 -> 0.00000003 (half-even at the
    # payment's 8 places), long the rest: -0.00000013; the sum is the payment to the last digit
    shares = split_funding(D("-0.00000010"), 4, -1)
    assert shares == {"long": D("-0.00000013"), "short": D("0.00000003")}
    assert sum(shares.values()) == D("-0.00000010")
    for amount, long, short in [("-12.34567891", 7, -3), ("0.1", 1, -2), ("-5", 13, -11), ("0.00000001", 999, -1)]:
        got = split_funding(D(amount), long, short)
        assert sum(got.values()) == D(amount), (amount, got)


def test_one_leg_open_takes_it_all_none_open_is_the_accounts_and_a_named_leg_wins():
    assert split_funding(D("-0.5"), 3, 0) == {"long": D("-0.5")}
    assert split_funding(D("0.5"), 0, -3) == {"short": D("0.5")}
    assert split_funding(D("0.5"), 0, 0) == {}
    assert split_funding(D("0.5"), 3, -1, position_side="short") == {"short": D("0.5")}


def test_equal_legs_go_by_the_sign_under_the_rate_else_halves():
    # Binance posts one row per leg; with equal legs each row is one leg's
    assert split_funding(D("-0.012"), 2, -2, Fraction(1, 10_000)) == {"long": D("-0.012")}
    assert split_funding(D("0.012"), 2, -2, Fraction(1, 10_000)) == {"short": D("0.012")}
    assert split_funding(D("0.012"), 2, -2, Fraction(-1, 10_000)) == {"long": D("0.012")}
    assert split_funding(D("-0.00000003"), 2, -2) == {"long": D("-0.00000001"), "short": D("-0.00000002")}


def test_a_non_decimal_amount_is_refused_naming_it():
    with pytest.raises(ValueError, match=r"amount: 1\.5; accepted: a finite Decimal"):
        split_funding(1.5, 1, -1)


# --- the live risk ------------------------------------------------------------------------------
def risk(margin_mode=MarginMode.ISOLATED, limits=None, wallet="1000") -> LivePerpRisk:
    return LivePerpRisk(
        limits or PerpRiskLimits(min_liquidation_distance="0.05"),
        INST,
        LINEAR,
        TIERS,
        wallet=wallet,
        leverage=10,
        margin_mode=margin_mode,
        position_mode=PositionMode.HEDGE,
    )


def fill(r: LivePerpRisk, leg: str, side: Side, price: int, lots: int, ts: int) -> None:
    cid = f"c{ts}"
    r.hedge.remember(cid, leg)
    r.on_fill(OrderFilled(ts, cid, side, price, lots, 0, 0, Liquidity.MAKER, f"t{ts}"))


def test_the_exchanges_leg_liquidation_is_watched_while_the_leg_has_its_size():
    r = risk()
    fill(r, "long", Side.BUY, 600_000, 4, 1_000)  # long 0.004 at 60,000
    fill(r, "short", Side.SELL, 610_000, 2, 2_000)  # short 0.002 at 61,000
    own_long = r.leg_liquidations["long"][1]
    # ours for the long leg: wallet 24 (0.004 x 60,000 / 10), 60,000 x 0.9 / 0.996
    assert own_long == Fraction(60_000) * Fraction(9, 10) / Fraction(996, 1000)
    r.set_venue_legs({"long": VenueLeg(4, Fraction(50_000), Fraction("24.5")), "short": VenueLeg(-2, None, None)})
    assert r.leg_liquidations["long"] == (1, Fraction(50_000)) and r.leg_sources["long"] == "exchange"
    assert r.leg_sources["short"] == "own" and r.liquidation == 50_000  # the larger leg's

    # mark 54,500: 0.5 % above our 54,216.87 (would pause at 5 %), 9 % above the exchange's 50,000
    r.set_mark("54500")
    assert r.evaluate(10_000, RiskStatus(), None).breaches == ()
    assert disagreements(r, Fraction(1, 200)) == {"long": (Fraction(50_000), own_long)}

    snap = r.snapshot()["legs"]
    assert snap["long"]["liquidation_price"] == "50000.00000000"
    assert snap["long"]["exchange_liquidation_price"] == "50000.00000000"
    assert snap["long"]["exchange_isolated_wallet"] == "24.50000000"
    assert (snap["long"]["liquidation_source"], snap["short"]["liquidation_source"]) == ("exchange", "own")

    # a fill on the long leg: the exchange's figure is for another size; ours is watched -> pause
    fill(r, "long", Side.BUY, 600_000, 1, 3_000)
    assert r.leg_sources["long"] == "own" and r.leg_liquidations["long"][1] > 54_000
    status = r.evaluate(11_000, RiskStatus(), None)
    assert [b.code for b in status.breaches] == ["liquidation_distance"]
    assert r.snapshot()["legs"]["long"]["exchange_liquidation_price"] is None


def test_the_exchanges_isolated_wallet_gives_our_figure_when_it_has_no_price():
    r = risk()
    fill(r, "long", Side.BUY, 600_000, 4, 1_000)
    r.set_venue_legs({"long": VenueLeg(4, None, Fraction("20"))})
    # WB 20 instead of 24: (20 - 240) / (0.004 x 0.004 - 0.004)
    expected = (Fraction(20) - Fraction(240)) / (Fraction(4, 1000) * Fraction(4, 1000) - Fraction(4, 1000))
    assert r.leg_liquidations["long"] == (1, expected) and r.leg_sources["long"] == "own"


def test_cross_uses_the_exchanges_account_price_from_the_larger_leg():
    r = risk(MarginMode.CROSS, wallet="10")
    fill(r, "long", Side.BUY, 600_000, 4, 1_000)
    fill(r, "short", Side.SELL, 610_000, 2, 2_000)
    own = r.leg_liquidations["account"]
    r.set_venue_legs({"long": VenueLeg(4, Fraction(1234), None), "short": VenueLeg(-2, Fraction(1234), None)})
    assert r.leg_liquidations["account"] == (own[0], Fraction(1234)) and r.leg_sources["account"] == "exchange"
    r.set_venue_legs({"long": VenueLeg(4, Fraction(1234), None), "short": VenueLeg(-3, Fraction(1234), None)})
    assert r.leg_liquidations["account"] == own and r.leg_sources["account"] == "own"  # sizes differ


def test_a_payment_books_on_the_legs_held_at_its_funding_time():
    r = risk(MarginMode.CROSS)
    fill(r, "long", Side.BUY, 600_000, 5, 1_000_000_000)  # at 1 s
    fill(r, "short", Side.SELL, 600_000, 2, 2_000_000_000)  # at 2 s
    fill(r, "short", Side.SELL, 600_000, 3, 5_000_000_000)  # at 5 s: short 0.005, legs equal
    # the payment for the funding time at 3 s, read later: the legs were 5 / -2 then
    assert r.book_payment(D("-0.01800000"), ts_ms=3_000) == Fraction("-0.018")
    assert r.last_shares == {"long": D("-0.03000000"), "short": D("0.01200000")}
    assert r.leg_funding == {"long": Fraction("-0.03"), "short": Fraction("0.012")}
    assert r.position.funding == Fraction("-0.018")
    legs = r.snapshot()["legs"]
    assert (legs["long"]["funding"], legs["short"]["funding"]) == ("-0.03000000", "0.01200000")
    # one-way: booked on the account, no split
    one = LivePerpRisk(PerpRiskLimits(), INST, LINEAR, TIERS, wallet="1000", leverage=10)
    assert one.book_payment(D("-1"), ts_ms=3_000) == -1 and one.last_shares == {} and one.position.funding == -1


def test_hedge_legs_isolated_wallet_counts_the_legs_funding():
    r = risk()
    fill(r, "long", Side.BUY, 600_000, 4, 1_000_000_000)
    before = r.leg_liquidations["long"][1]
    r.book_payment(D("-2"), ts_ms=2_000)  # the long leg paid 2: its wallet 22, liquidation nearer
    assert r.leg_funding["long"] == -2
    assert r.leg_liquidations["long"][1] > before
    assert hedge_legs.leg_wallet(r.position, "long", r.leg_funding["long"]) == 22
