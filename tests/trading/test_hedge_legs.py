"""Hedge position mode (trading.hedge_legs): a long and a short leg open at once on Binance USD-M
BTCUSDT (bracket 1: MMR 0.4 %, cum 0), with worked numbers for each leg's PnL, margin, funding
and liquidation, and the close-first policy that names the leg of each order."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import pytest

from trading import hedge_legs as hl
from trading.contracts import ContractSpec, MarginMode, PositionMode
from trading.events import PlaceOrder
from trading.instruments import Instrument, InstrumentError, Side
from trading.margin import BINANCE_USDM_BTCUSDT as TIERS
from trading.positions import PerpPosition

INST = Instrument.create(
    symbol="BTC/USDT:USDT", tick_size="0.1", lot_size="0.001", min_notional="5", maker_fee="0.0002", taker_fee="0.0005"
)
LINEAR = ContractSpec.create(kind="linear", contract_size=1, settle="USDT", max_leverage=125)


def position(margin_mode=MarginMode.ISOLATED) -> PerpPosition:
    pos = PerpPosition(INST, LINEAR, PositionMode.HEDGE, margin_mode, leverage=10)
    # long 0.004 at 60,000 and short 0.002 at 61,000, open at once
    hl.apply_fill(pos, Side.BUY, INST.ticks("60000"), 4, 0, hl.LONG)
    hl.apply_fill(pos, Side.SELL, INST.ticks("61000"), 2, 0, hl.SHORT)
    return pos


def test_both_legs_open_at_once_each_with_its_entry_pnl_and_margin():
    pos = position()
    assert pos.legs["long"].lots == 4 and pos.legs["short"].lots == -2
    assert pos.net_lots == 2  # the engine's inventory: long - short
    assert pos.entry_price("long") == 60000 and pos.entry_price("short") == 61000
    # At a mark of 60,500: long 0.004 x (60,500 - 60,000) = +2; short 0.002 x (61,000 - 60,500) = +1.
    assert hl.leg_unrealized(pos, "long", 60500) == 2
    assert hl.leg_unrealized(pos, "short", 60500) == 1
    assert pos.unrealized(60500) == 3
    # Initial margin at 10x: 0.004 x 60,500 / 10 = 24.2 and 0.002 x 60,500 / 10 = 12.1, both held.
    assert hl.leg_margin(pos, "long", 60500) == Fraction("24.2")
    assert hl.leg_margin(pos, "short", 60500) == Fraction("12.1")
    assert pos.margin_used(60500) == Fraction("36.3")
    # Isolated wallets: what each leg opened, at entry: 24 and 12.2 USDT.
    assert hl.leg_wallet(pos, "long") == 24 and hl.leg_wallet(pos, "short") == Fraction("12.2")


def test_funding_is_paid_by_the_long_leg_and_received_by_the_short_leg_at_a_positive_rate():
    pos = position()
    legs: dict = {}
    paid = hl.book_funding(pos, 60500, "0.0001", legs)
    # long pays 0.004 x 60,500 x 0.0001 = 0.0242; short receives 0.002 x 60,500 x 0.0001 = 0.0121
    assert paid == {"long": Fraction("-0.0242"), "short": Fraction("0.0121")}
    assert pos.funding == Fraction("-0.0121") and legs == paid
    # A negative rate turns both signs.
    assert hl.funding_by_leg(pos, 60500, "-0.0001") == {"long": Fraction("0.0242"), "short": Fraction("-0.0121")}
    # Closing half the long leg takes half its funding with it (isolated: the rest keeps its wallet).
    hl.apply_fill(pos, Side.SELL, INST.ticks("60500"), 2, 0, hl.LONG, legs)
    assert legs["long"] == Fraction("-0.0121") and pos.realized == 1  # 0.002 x 500


def test_isolated_legs_liquidate_on_their_own_wallets_each_on_its_side():
    pos = position()
    liq = hl.leg_liquidations(pos, TIERS, Fraction(10000))
    # long: (24 - 0.004 x 60,000) / (0.004 x 0.004 - 0.004) = 60,000 x 0.9 / 0.996
    # short: (12.2 + 0.002 x 61,000) / (0.002 x 0.004 + 0.002) = 61,000 x 1.1 / 1.004
    assert liq == {
        "long": (1, Fraction(60000) * Fraction("0.9") / Fraction("0.996")),
        "short": (-1, Fraction(61000) * Fraction("1.1") / Fraction("1.004")),
    }
    assert f"{float(liq['long'][1]):.4f}" == "54216.8675" and f"{float(liq['short'][1]):.4f}" == "66832.6693"
    # Funding on a leg moves its own price only: the long paid 0.0242 -> (23.9758 - 240) / -0.003984.
    with_funding = hl.leg_liquidations(pos, TIERS, Fraction(10000), {"long": Fraction("-0.0242")})
    assert with_funding["long"][1] == Fraction("216.0242") / Fraction("0.003984")
    assert with_funding["short"] == liq["short"]
    # The mark at 54,200 crossed the long leg's price: the long leg alone is closed at its
    # bankruptcy price 24 + 0.004 (p - 60,000) = 0 -> 54,000, losing its 24 USDT.
    done = hl.liquidate_crossed(pos, TIERS, Fraction(10000), Fraction(54200))
    assert done == [("long", liq["long"][1], Fraction(54000), Fraction(-24), {"long": 4})]
    assert pos.legs["long"].lots == 0 and pos.legs["short"].lots == -2 and pos.realized == -24
    assert hl.leg_liquidations(pos, TIERS, Fraction(10000)) == {"short": liq["short"]}


def test_cross_margin_liquidates_the_account_once_closing_both_legs():
    pos = position(MarginMode.CROSS)
    # WB 10: LP = (10 - 240 + 122) / (0.006 x 0.004 - 0.004 + 0.002) = -108 / -0.001976
    ((name, (side, price)),) = hl.leg_liquidations(pos, TIERS, Fraction(10)).items()
    assert name == "account" and side == 1 and price == Fraction(-108) / Fraction("-0.001976")
    assert f"{float(price):.2f}" == "54655.87"
    assert hl.liquidate_crossed(pos, TIERS, Fraction(10), Fraction(54700)) == []
    # Bankruptcy: 10 + 0.004 (p - 60,000) + 0.002 (61,000 - p) = 0 -> 54,000; the legs lose 24
    # and gain 14: the 10 USDT wallet is gone.
    done = hl.liquidate_crossed(pos, TIERS, Fraction(10), Fraction(54600))
    assert done == [("account", price, Fraction(54000), Fraction(-10), {"long": 4, "short": -2})]
    assert pos.net_lots == 0 and pos.legs["long"].lots == 0 and pos.legs["short"].lots == 0


def test_equal_legs_on_cross_liquidate_on_a_rising_linear_mark():
    pos = PerpPosition(INST, LINEAR, PositionMode.HEDGE, MarginMode.CROSS, leverage=10)
    hl.apply_fill(pos, Side.BUY, INST.ticks("60000"), 2, 0, hl.LONG)
    hl.apply_fill(pos, Side.SELL, INST.ticks("60000"), 2, 0, hl.SHORT)
    # Equity stays 1 USDT whatever the price; maintenance 0.004 x p x 0.004 reaches it at 62,500.
    assert hl.leg_liquidations(pos, TIERS, Fraction(1)) == {"account": (-1, Fraction(62500))}


@dataclass
class Working:
    client_order_id: str
    side: Side
    qty: int
    filled: int = 0


def order(cid: str, side: Side, qty: int, **kw) -> PlaceOrder:
    return PlaceOrder(cid, side, INST.ticks("60000"), qty, **kw)


def test_close_first_policy_names_the_leg_of_each_order():
    legs = hl.HedgeLegs()
    pos = PerpPosition(INST, LINEAR, PositionMode.HEDGE, MarginMode.CROSS, leverage=10)
    # Flat: the bid opens the long leg, the ask the short leg.
    assert legs.assign(pos, order("b1", Side.BUY, 3)).position_side == "long"
    assert legs.assign(pos, order("a1", Side.SELL, 3)).position_side == "short"
    hl.apply_fill(pos, Side.BUY, INST.ticks("60000"), 4, 0, legs.leg_of("b1"))
    # Long 4 lots: an ask of 3 closes the long leg ...
    assert legs.assign(pos, order("a2", Side.SELL, 3)).position_side == "long"
    # ... and a second ask of 3 while that one works would close more than the leg: it opens short.
    working = [Working("a2", Side.SELL, 3)]
    assert legs.assign(pos, order("a3", Side.SELL, 3), working).position_side == "short"
    assert legs.assign(pos, order("a4", Side.SELL, 1), working).position_side == "long"
    # A reduce-only order always names the leg it closes; a named leg is kept.
    assert legs.assign(pos, order("f1", Side.BUY, 5, reduce_only=True)).position_side == "short"
    assert legs.assign(pos, order("m1", Side.BUY, 1, position_side="short")).position_side == "short"
    with pytest.raises(InstrumentError, match="position_side: 'both' is not accepted; accepted: long, short"):
        legs.assign(pos, order("m2", Side.BUY, 1, position_side="both"))
    assert legs.leg_of("a3") == "short" and legs.leg_of("nope") is None


def test_a_fill_of_an_unknown_order_books_close_first_and_a_close_past_its_leg_opens_the_rest():
    pos = PerpPosition(INST, LINEAR, PositionMode.HEDGE, MarginMode.CROSS, leverage=10)
    hl.apply_fill(pos, Side.BUY, INST.ticks("60000"), 2, 0, None)  # nothing to close: opens long
    hl.apply_fill(pos, Side.SELL, INST.ticks("60100"), 1, 0, None)  # closes 1 of the long 2
    assert pos.legs["long"].lots == 1 and pos.realized == Fraction("0.1")
    # A close of 3 on a long leg of 1: closes it and opens 2 short at the same price.
    hl.apply_fill(pos, Side.SELL, INST.ticks("60200"), 3, 0, hl.LONG)
    assert pos.legs["long"].lots == 0 and pos.legs["short"].lots == -2
    assert pos.entry_price("short") == Fraction(60200) and pos.realized == Fraction("0.3")


def test_past_the_tracked_maximum_the_oldest_done_orders_are_forgotten_not_the_working_ones():
    legs = hl.HedgeLegs()
    pos = PerpPosition(INST, LINEAR, PositionMode.HEDGE, MarginMode.CROSS, leverage=10)
    legs.assign(pos, order("rest", Side.BUY, 1))  # the oldest, still working
    for n in range(hl.MAX_TRACKED - 1):
        legs.remember(f"done{n}", "long")
    legs.assign(pos, order("new", Side.SELL, 1), [Working("rest", Side.BUY, 1)])
    known = legs.known()
    assert known["rest"] == "long" and known["new"] == "short" and "done0" not in known
    assert len(known) == hl.MAX_TRACKED // 2 + 2
