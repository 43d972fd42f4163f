"""Hedge position mode through the engine (each order names its leg, fills book on it), the
bot's PerpRisk (funding per leg, figures for the page) and the backtester's PerpLedger (a leg
liquidated on its own), on Binance USD-M BTCUSDT at 10x."""

from __future__ import annotations

from fractions import Fraction

from trading.contracts import ContractSpec, MarginMode, PositionMode
from trading.engine import Engine
from trading.events import BookSnapshot, Liquidity, OrderAccepted, OrderFilled, PlaceOrder
from trading.instruments import Instrument, Side
from trading.margin import BINANCE_USDM_BTCUSDT as TIERS
from trading.perp_ledger import FundingSchedule, PerpLedger, perp_records
from trading.perp_risk import PerpRisk, PerpRiskLimits
from trading.risk import NORMAL, RiskLimits
from trading.strategy import Quote, QuoteSet

INST = Instrument.create(symbol="BTC/USDT:USDT", tick_size="0.1", lot_size="0.001", min_notional="5")
LINEAR = ContractSpec.create(kind="linear", contract_size=1, settle="USDT", max_leverage=125)
P60K = 600_000  # 60,000.0 USDT in ticks
HOUR = 3600 * 10**9


def hedge_risk(margin_mode=MarginMode.CROSS, funding=None) -> PerpRisk:
    return PerpRisk(
        PerpRiskLimits(),
        INST,
        LINEAR,
        TIERS,
        wallet="1000",
        leverage=10,
        margin_mode=margin_mode,
        funding=funding,
        position_mode=PositionMode.HEDGE,
    )


class Quoter:
    name = "quoter"

    def on_event(self, event, ctx):
        bid, ask = ctx.book.best_bid(), ctx.book.best_ask()
        if bid is None or ask is None:
            return None
        return QuoteSet((Quote(Side.BUY, bid - 1, 2),), (Quote(Side.SELL, ask + 1, 2),), "q")


def snap(ts: int, bid: int) -> BookSnapshot:
    return BookSnapshot(ts, ((bid, 10_000),), ((bid + 1, 10_000),))


def places(cmds) -> dict[Side, PlaceOrder]:
    return {c.side: c for c in cmds if isinstance(c, PlaceOrder)}


def fill_all(e: Engine, ts: int, orders: dict[Side, PlaceOrder]) -> None:
    for n, c in enumerate(orders.values()):
        e.on_event(OrderAccepted(ts, c.client_order_id, "v" + c.client_order_id))
        e.on_event(OrderFilled(ts, c.client_order_id, c.side, c.price, c.qty, 0, 0, Liquidity.MAKER, f"t{ts}{n}"))


def test_a_flat_bot_opens_both_legs_then_its_quotes_close_them():
    perp = hedge_risk()
    e = Engine(Quoter(), INST, bot_id="h", risk=RiskLimits(price_band=None), perp=perp)
    first = places(e.on_event(snap(1, P60K)))
    # Flat: the bid opens the long leg, the ask the short leg.
    assert first[Side.BUY].position_side == "long" and first[Side.SELL].position_side == "short"
    fill_all(e, 2, first)
    # Both filled: long 0.002 at 59,999.9 and short 0.002 at 60,000.2, open at once; the
    # strategy's inventory (long - short) is flat.
    pos = perp.position
    assert pos.legs["long"].lots == 2 and pos.legs["short"].lots == -2
    assert pos.entry_price("long") == Fraction("59999.9") and pos.entry_price("short") == Fraction("60000.2")
    assert e.portfolio.position == 0 == pos.net_lots
    # The book moves: the new bid closes the short leg and the new ask the long leg.
    second = places(e.on_event(snap(3, P60K + 10)))
    assert second[Side.BUY].position_side == "short" and second[Side.SELL].position_side == "long"
    fill_all(e, 4, second)  # bid 60,000.9 closes short: -0.0014; ask 60,001.2 closes long: +0.0026
    assert pos.legs["long"].lots == 0 and pos.legs["short"].lots == 0
    assert pos.realized == Fraction("0.002") * Fraction("-0.7") + Fraction("0.002") * Fraction("1.3")


def test_funding_is_booked_per_leg_and_the_page_shows_both_legs():
    perp = hedge_risk(MarginMode.ISOLATED, FundingSchedule.create(constant="0.0001"))
    perp.hedge.remember("b", "long")
    perp.hedge.remember("a", "short")
    perp.on_fill(OrderFilled(1, "b", Side.BUY, P60K, 4, 0, 0, Liquidity.MAKER, "t1"))
    perp.on_fill(OrderFilled(1, "a", Side.SELL, 610_000, 2, 0, 0, Liquidity.MAKER, "t2"))
    perp.evaluate(7 * HOUR, NORMAL, 2 * 605_000)  # mark 60,500; next funding at 08:00
    perp.evaluate(8 * HOUR, NORMAL, 2 * 605_000)
    # long pays 0.004 x 60,500 x 0.0001 = 0.0242, short receives 0.0121
    assert perp.leg_funding == {"long": Fraction("-0.0242"), "short": Fraction("0.0121")}
    assert perp.position.funding == Fraction("-0.0121")
    assert perp.funding_log == [(8 * HOUR, Fraction(1, 10000), Fraction(60500), Fraction("-0.0121"), 2)]
    snap_ = perp.snapshot()
    assert snap_["position_mode"] == "hedge" and snap_["position_contracts"] == "0.002"
    assert snap_["entry_price"] is None
    long, short = snap_["legs"]["long"], snap_["legs"]["short"]
    assert long["contracts"] == "0.004" and long["entry_price"] == "60000.00000000"
    assert long["unrealized"] == "2.00000000" and long["margin_used"] == "24.20000000"
    assert long["funding"] == "-0.02420000"
    # each isolated leg's own price: (23.9758 - 240) / -0.003984 and 61,000 x 1.1 / 1.004 + funding
    assert long["liquidation_price"] == "54222.94176707"
    assert short["contracts"] == "-0.002" and short["unrealized"] == "1.00000000" and short["funding"] == "0.01210000"
    assert short["liquidation_price"] == f"{float((Fraction('12.2121') + 122) / Fraction('0.002008')):.8f}"
    # the pause watches the larger leg
    assert snap_["liquidation_price"] == long["liquidation_price"]


def test_the_ledger_liquidates_one_isolated_leg_and_reports_both():
    ledger = PerpLedger(
        INST,
        LINEAR,
        TIERS,
        wallet=Fraction(10000),
        leverage=10,
        margin_mode=MarginMode.ISOLATED,
        mode=PositionMode.HEDGE,
    )
    ledger.on_fill(OrderFilled(1, "b", Side.BUY, P60K, 4, 0, 0, Liquidity.MAKER, "t1"), "long")
    ledger.on_fill(OrderFilled(1, "a", Side.SELL, 610_000, 2, 0, 0, Liquidity.MAKER, "t2"), "short")
    ledger.on_mark(HOUR, Fraction(60500))
    assert ledger.liquidated_at is None
    (done,) = ledger.on_mark(2 * HOUR, Fraction(54200))  # below the long leg's 54,216.87
    # the long leg alone is liquidated; the account goes on with the short leg
    assert ledger.liquidated_at is None and done.leg == "long" and done.ts == 2 * HOUR
    assert done.liquidation_price == Fraction(60000) * Fraction("0.9") / Fraction("0.996")
    report = ledger.report()
    assert report["legs"]["long"]["lots"] == 0 and report["legs"]["short"]["lots"] == -2
    assert report["realized"] == -24  # the long leg's 24 USDT margin, closed at 54,000
    records = perp_records(report, INST)
    assert records["position_mode"] == "hedge" and records["legs"]["short"]["contracts"] == "-0.002"
    assert records["legs"]["short"]["entry_price"] == "61000.00000000"


def test_a_risk_flatten_closes_both_legs_even_when_they_net_to_zero():
    """Legs +0.002 / -0.002 (net 0) and a daily loss (the fees) whose action is flatten: the
    engine sends one reduce-only IOC order per leg naming it, each as large as its leg and
    ``flatten_cross_ticks`` through the touch; both pass pre-trade risk (the reduce-only check
    sees the leg, not the flat net), and once they fill nothing more is sent."""
    from trading.events import TimeInForce
    from trading.risk import RiskAction

    perp = hedge_risk()
    limits = RiskLimits.from_dict({"daily_loss_limit": "1", "on_daily_loss": "flatten", "price_band": None})
    e = Engine(Quoter(), INST, bot_id="h", risk=limits, perp=perp)
    first = places(e.on_event(snap(1, P60K)))
    out = []
    for n, c in enumerate(first.values()):  # the second fill's fee makes the day's loss
        e.on_event(OrderAccepted(2, c.client_order_id, "v" + c.client_order_id))
        fee = INST.cash_units("2") if n else 0
        out = e.on_event(OrderFilled(2, c.client_order_id, c.side, c.price, c.qty, 0, fee, Liquidity.MAKER, f"t{n}"))
    pos = perp.position
    assert (pos.legs["long"].lots, pos.legs["short"].lots) == (2, -2) and e.portfolio.position == 0
    out = [c for c in out if isinstance(c, PlaceOrder)]
    assert e.status.action == RiskAction.FLATTEN
    flat = {c.position_side: c for c in out}
    assert set(flat) == {"long", "short"} and all(c.reason == "flatten" for c in out), out
    assert all(c.reduce_only and c.time_in_force is TimeInForce.IOC and c.qty == 2 for c in out)
    assert flat["long"].side is Side.SELL and flat["long"].price == P60K - e.flatten_cross_ticks
    assert flat["short"].side is Side.BUY and flat["short"].price == P60K + 1 + e.flatten_cross_ticks
    for n, c in enumerate(out):
        e.on_event(OrderAccepted(4, c.client_order_id, "v" + c.client_order_id))
        e.on_event(OrderFilled(4 * 10**9, c.client_order_id, c.side, c.price, c.qty, 0, 0, Liquidity.TAKER, f"f{n}"))
    assert (pos.legs["long"].lots, pos.legs["short"].lots) == (0, 0)
    later = e.on_event(snap(6 * 10**9, P60K))
    assert [c for c in later if isinstance(c, PlaceOrder)] == []
