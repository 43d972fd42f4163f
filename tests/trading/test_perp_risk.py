"""Pre-trade and running perpetual risk (trading.perp_risk) with worked numbers, alone and in
the engine: contract and notional limits, the leverage bracket, the margin check, reduce-only
orders past the limits, and the liquidation-distance pause with hysteresis."""

from __future__ import annotations

from fractions import Fraction

import pytest

from trading.config import ConfigError
from trading.contracts import ContractSpec, MarginMode
from trading.engine import Engine
from trading.events import BookSnapshot, Liquidity, OrderAccepted, OrderFilled, PlaceOrder
from trading.instruments import Instrument, Side
from trading.margin import BINANCE_USDM_BTCUSDT as TIERS
from trading.perp_ledger import FundingSchedule
from trading.perp_risk import PerpRisk, PerpRiskLimits
from trading.risk import NORMAL, RiskAction, RiskLimits, RiskState
from trading.strategy import Quote, QuoteSet

# Binance USD-M BTCUSDT: tick 0.1 USDT, lot 0.001 BTC (one contract = 1 BTC).
FEES = Instrument.create(
    symbol="BTC/USDT:USDT", tick_size="0.1", lot_size="0.001", min_notional="5", maker_fee="0.0002", taker_fee="0.0005"
)
NOFEE = Instrument.create(symbol="BTC/USDT:USDT", tick_size="0.1", lot_size="0.001", min_notional="5")
LINEAR = ContractSpec.create(kind="linear", contract_size=1, settle="USDT", max_leverage=125)
P60K = 600_000  # 60,000.0 USDT in ticks


def risk(limits: dict, *, inst=FEES, wallet="5000", leverage=10, funding=None, mode=MarginMode.CROSS) -> PerpRisk:
    """Cross margin: the wallet backs the position, so the liquidation prices below are the
    wallet's (an isolated position's own margin: tests/trading/test_isolated_margin.py)."""
    return PerpRisk(
        PerpRiskLimits.from_dict(limits),
        inst,
        LINEAR,
        TIERS,
        wallet=wallet,
        leverage=leverage,
        margin_mode=mode,
        funding=funding,
    )


def fill(side: Side, price: int, lots: int, ts: int = 1) -> OrderFilled:
    return OrderFilled(ts, "c1", side, price, lots, 0, 0, Liquidity.MAKER, "t1")


def state(position=0, working_buy=0, working_sell=0) -> RiskState:
    s = RiskState()
    s.position, s.working_buy, s.working_sell = position, working_buy, working_sell
    return s


def order(side: Side, lots: int, price: int = P60K, reduce_only: bool = False) -> PlaceOrder:
    return PlaceOrder("o1", side, price, lots, reduce_only=reduce_only)


def test_contract_limit_counts_working_orders_and_lets_reducing_orders_through():
    r = risk({"max_position_contracts": "0.5"})
    # long 0.4 BTC with 0.05 working on the bid: a 0.1 bid could take it to 0.55 > 0.5
    d = r.check(order(Side.BUY, 100), state(position=400, working_buy=50))
    assert not d.allowed and d.code == "max_position_contracts"
    assert "0.55 contracts" in d.message and "0.05 contracts already working" in d.message
    assert "limit 0.5 contracts" in d.message
    assert r.check(order(Side.BUY, 50), state(position=400, working_buy=50)).allowed  # exactly 0.5
    # over the limit (long 0.7): selling reduces and passes, reduce-only too
    assert r.check(order(Side.SELL, 200), state(position=700)).allowed
    assert r.check(order(Side.SELL, 200, reduce_only=True), state(position=700)).allowed
    assert not r.check(order(Side.BUY, 1), state(position=700)).allowed


def test_notional_limit_at_the_orders_price():
    r = risk({"max_position_notional": "30000"})
    # long 0.4 + 0.1 at 60,000 = 30,000 USDT: at the limit, allowed; 0.2 more = 36,000: refused
    assert r.check(order(Side.BUY, 100), state(position=400)).allowed
    d = r.check(order(Side.BUY, 200), state(position=400))
    assert not d.allowed and d.code == "max_position_notional"
    assert "36000.00 USDT" in d.message and "limit 30000.00 USDT" in d.message
    # the short side is measured the same way: short 0.4, selling 0.2 more at 60,000
    assert r.check(order(Side.SELL, 200), state(position=-400)).code == "max_position_notional"


def test_leverage_above_the_brackets_maximum_is_refused():
    # 100x is allowed up to 250,000 USDT of notional (bracket 2); 5 BTC at 60,000 = 300,000 is
    # in bracket 3 (50x)
    r = risk({}, wallet="1000000", leverage=100)
    assert r.check(order(Side.BUY, 4_000), state()).allowed  # 240,000
    d = r.check(order(Side.BUY, 5_000), state())
    assert not d.allowed and d.code == "max_leverage"
    assert "300000.00 USDT" in d.message and "allows 50x" in d.message and "at 100x" in d.message


def test_order_initial_margin_above_free_margin_is_refused_with_the_figures():
    r = risk({})  # 5,000 USDT at 10x
    r.on_fill(fill(Side.BUY, P60K, 500))  # long 0.5 at 60,000; maker fee 0.5 x 60,000 x 0.0002 = 6
    r.evaluate(1, NORMAL, 2 * P60K)  # mark 60,000: no unrealized PnL
    assert r.position.fees == 6 and r.margin_balance() == 4994
    # held: (0.5 + 0.2 working) x 60,000 / 10 = 4,200; free 4,994 - 4,200 = 794
    d = r.check(order(Side.BUY, 200), state(position=500, working_buy=200))  # needs 1,200
    assert not d.allowed and d.code == "insufficient_margin"
    assert "needs 1200.00 USDT initial margin at 10x" in d.message
    assert "free margin is 794.00 USDT" in d.message and "margin balance 4994.00 USDT" in d.message
    assert "4200.00 USDT held" in d.message
    assert r.check(order(Side.BUY, 130), state(position=500, working_buy=200)).allowed  # 780 <= 794
    # unrealized PnL counts: mark 59,000 costs 0.5 x 1,000 = 500, free 294
    r.evaluate(2, NORMAL, 2 * 590_000)
    assert r.margin_balance() == 4494
    assert r.check(order(Side.BUY, 130), state(position=500, working_buy=200)).code == "insufficient_margin"
    # a reducing sell needs no margin
    assert r.check(order(Side.SELL, 500), state(position=500, working_buy=200)).allowed
    # the check can be switched off
    off = risk({"margin_check": False})
    off.on_fill(fill(Side.BUY, P60K, 500))
    assert off.check(order(Side.BUY, 200), state(position=500, working_buy=200)).allowed


def _liq_of_long_one_btc() -> Fraction:
    # long 1 BTC at 60,000 on 1,000 USDT isolated, no fees: at the liquidation price the notional
    # (~59,000) is in bracket 2 (MMR 0.5 %, cum = 50,000 x (0.005 - 0.004) = 50):
    # LP = (WB + cum - L x EP) / (L x MMR - L) = (1,000 + 50 - 60,000) / (0.005 - 1)
    return Fraction(1000 + 50 - 60000) / (Fraction(5, 1000) - 1)


def test_liquidation_distance_pauses_and_resumes_with_hysteresis():
    r = risk({"min_liquidation_distance": "0.01"}, inst=NOFEE, wallet="1000", leverage=100)
    r.on_fill(fill(Side.BUY, P60K, 1000))
    liq = _liq_of_long_one_btc()
    assert r.liquidation == liq and float(liq) == pytest.approx(59246.2311557789)
    # pause below liq / (1 - 1 %) = 59,844.67; resume above liq / (1 - 1.5 %) = 60,148.46
    seen = []
    for ts, mark in enumerate((60_000, 59_850, 59_800, 60_000, 60_140, 60_150, 59_900), 1):
        status = r.evaluate(ts, NORMAL, 2 * mark * 10)
        seen.append(status.action)
    assert seen == [
        RiskAction.NONE,  # 1.256 % away
        RiskAction.NONE,  # 1.0088 %
        RiskAction.PAUSE,  # 0.926 %: paused
        RiskAction.PAUSE,  # 1.256 %, but below the 1.5 % resume distance
        RiskAction.PAUSE,  # 1.4862 %
        RiskAction.NONE,  # 1.5004 %: resumed
        RiskAction.NONE,  # 1.0897 %: above 1 %, stays on
    ]
    paused = r.evaluate(10, NORMAL, 2 * 598_000)
    (breach,) = paused.breaches
    assert breach.code == "liquidation_distance"
    assert "59800" in breach.message and "0.93%" in breach.message and "59246.23115578" in breach.message
    assert "resumes beyond 1.50%" in breach.message
    # the same object while nothing changes (the engine notes a change only once)
    assert r.evaluate(11, NORMAL, 2 * 597_990) is paused


def test_liquidation_distance_in_ticks_for_a_short_and_flatten_action():
    r = risk(
        {"min_liquidation_ticks": 500, "liquidation_resume_ticks": 1000, "on_liquidation_distance": "flatten"},
        inst=NOFEE,
        wallet="1000",
        leverage=100,
    )
    r.on_fill(fill(Side.SELL, P60K, 1000))  # short 1 BTC at 60,000
    liq = r.liquidation
    # short: LP = (WB + cum + S x EP) / (S x MMR + S) = (1,000 + 50 + 60,000) / 1.005 = 60,746.27
    assert liq == Fraction(61050) / Fraction(1005, 1000)
    below = (liq - 50) / Fraction(1, 10)  # 50 USDT = 500 ticks under the liquidation price
    assert r.evaluate(1, NORMAL, int(2 * below) - 2).action is RiskAction.NONE
    assert r.evaluate(2, NORMAL, int(2 * below) + 2).action is RiskAction.FLATTEN
    # back 60 USDT away: still inside the 100 USDT resume distance
    assert r.evaluate(3, NORMAL, int(2 * ((liq - 60) * 10))).action is RiskAction.FLATTEN
    assert r.evaluate(4, NORMAL, int(2 * ((liq - 101) * 10))).action is RiskAction.NONE
    # flat: nothing to liquidate
    r.on_fill(fill(Side.BUY, P60K, 1000))
    assert r.liquidation is None and r.evaluate(5, NORMAL, int(2 * liq * 10)).action is RiskAction.NONE


def test_the_venues_mark_wins_over_the_book():
    r = risk({"min_liquidation_distance": "0.01"}, inst=NOFEE, wallet="1000", leverage=100)
    r.on_fill(fill(Side.BUY, P60K, 1000))
    r.set_mark("59800")
    assert r.evaluate(1, NORMAL, 2 * P60K).action is RiskAction.PAUSE  # book says 60,000


def test_bad_limits_are_refused_by_name():
    with pytest.raises(ConfigError) as exc:
        PerpRiskLimits.from_dict({"max_position_contracts": "-1", "on_liquidation_distance": "panic"})
    errors = exc.value.errors
    assert set(errors) == {"max_position_contracts", "on_liquidation_distance"}
    assert "-1" in errors["max_position_contracts"] and "'flatten'" in errors["on_liquidation_distance"]
    with pytest.raises(ConfigError) as exc:
        PerpRiskLimits.from_dict({"min_liquidation_distance": "0.02", "liquidation_resume_distance": "0.01"})
    assert "0.01 is below min_liquidation_distance 0.02" in exc.value.errors["liquidation_resume_distance"]
    with pytest.raises(ConfigError, match="liquidation_resume_ticks"):
        PerpRiskLimits.from_dict({"liquidation_resume_ticks": 5})


def test_funding_schedule_reaches_the_strategy_context_and_is_booked():
    schedule = FundingSchedule.create(series=[(100, "0.0001"), (200, "-0.0002")])
    r = risk({}, inst=NOFEE, funding=schedule)
    r.on_fill(fill(Side.BUY, P60K, 1000))

    class Ctx:
        funding_rate = next_funding_ts = None

    ctx = Ctx()
    r.evaluate(50, NORMAL, 2 * P60K, ctx)
    assert (ctx.funding_rate, ctx.next_funding_ts) == (0.0001, 100)
    r.evaluate(150, NORMAL, 2 * P60K, ctx)  # funding at 100: long 1 BTC pays 60,000 x 0.01 % = 6
    assert r.position.funding == -6 and (ctx.funding_rate, ctx.next_funding_ts) == (-0.0002, 200)
    r.evaluate(250, NORMAL, 2 * P60K, ctx)  # receives 12; the series ends
    assert r.position.funding == 6 and (ctx.funding_rate, ctx.next_funding_ts) == (None, None)


class Quoter:
    """Test strategy: one bid and one ask of ``qty`` lots a tick off the touch."""

    name = "quoter"

    def __init__(self, qty: int) -> None:
        self.qty = qty
        self.ctx = None

    def on_event(self, event, ctx):
        self.ctx = ctx
        bid, ask = ctx.book.best_bid(), ctx.book.best_ask()
        if bid is None or ask is None:
            return None
        return QuoteSet((Quote(Side.BUY, bid - 1, self.qty),), (Quote(Side.SELL, ask + 1, self.qty),), "q")


def _snap(ts: int, bid: int) -> BookSnapshot:
    return BookSnapshot(ts, ((bid, 10_000),), ((bid + 1, 10_000),))


def test_engine_refuses_the_bid_past_the_contract_limit_and_pauses_near_liquidation():
    perp = risk(
        {"max_position_contracts": "1", "min_liquidation_distance": "0.01"}, inst=NOFEE, wallet="1000", leverage=100
    )
    e = Engine(Quoter(1000), NOFEE, bot_id="p", risk=RiskLimits(price_band=None), perp=perp)
    cmds = e.on_event(_snap(1, P60K))
    assert {(c.side, c.qty) for c in cmds if isinstance(c, PlaceOrder)} == {(Side.BUY, 1000), (Side.SELL, 1000)}
    bid = next(c for c in cmds if isinstance(c, PlaceOrder) and c.side is Side.BUY)
    for c in cmds:
        e.on_event(OrderAccepted(2, c.client_order_id, "v" + c.client_order_id))
    e.on_event(OrderFilled(3, bid.client_order_id, Side.BUY, bid.price, 1000, 0, 0, Liquidity.MAKER, "t1"))
    assert perp.position.net_lots == 1000 == e.portfolio.position
    # long 1 BTC: a new bid would take it to 2 > 1 contract; the ask reduces and is kept
    e.on_event(_snap(4, P60K + 5))
    rejects = [n for n in e.notes if n.kind == "risk_reject"]
    assert rejects and rejects[-1].code == "max_position_contracts"
    # the mark falls to 59,800 (0.93 % from 59,246.13): quotes pulled, a note says why
    cmds = e.on_event(_snap(5, 598_000))
    assert not any(isinstance(c, PlaceOrder) for c in cmds)
    assert [n for n in e.notes if n.code == "liquidation_distance"]
    assert e.status.action is RiskAction.PAUSE
    # back above the resume distance: quoting again, the clearing noted
    cmds = e.on_event(_snap(6, 602_000))
    assert any(isinstance(c, PlaceOrder) and c.side is Side.SELL for c in cmds)
    assert [n for n in e.notes if n.code == "liquidation_distance_cleared"]
    assert e.ctx.funding_rate is None  # no schedule, no venue figure


def test_snapshot_has_the_figures_of_a_perp_bots_page():
    r = risk({"min_liquidation_distance": "0.01"}, inst=NOFEE, wallet="1000", leverage=100)
    r.on_fill(fill(Side.BUY, P60K, 1000))
    r.set_funding("0.0001", 1_723_161_600 * 10**9)
    r.evaluate(1, NORMAL, 2 * 598_000)  # mark 59,800: paused
    snap = r.snapshot()
    assert snap["position_contracts"] == "1" and snap["entry_price"] == "60000.00000000"
    assert snap["mark_price"] == "59800.00000000" and snap["unrealized"] == "-200.00000000"
    assert snap["margin_balance"] == "800.00000000" and snap["margin_used"] == "598.00000000"  # 59,800 / 100
    assert snap["liquidation_price"] == "59246.23115578" and snap["liquidation_paused"] is True
    assert snap["liquidation_distance"] == pytest.approx(float((59800 - _liq_of_long_one_btc()) / 59800))
    assert snap["funding_rate"] == "0.00010000" and snap["next_funding_ts"] == 1_723_161_600 * 10**9
    assert snap["leverage"] == 100 and snap["settle"] == "USDT"
