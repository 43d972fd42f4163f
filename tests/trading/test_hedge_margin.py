"""The pre-trade margin check of a hedged backtest's perpetual legs (trading/hedge_margin.py, the
hosted loop's rule): perp-to-perp on X/USDT:USDT around 10,000 USDT, contracts of 1 X in lots of
0.001, 5x isolated, quotes of 0.005 X (50 USDT of notional, 10 USDT of initial margin).

The maker book is 9,900 / 10,100 (mark 10,000), the hedge book 10,000.00 / 10,000.10; the maker
bids 0.1 % under the hedge bid, 9,990.00, and sellers hit that bid at 1, 2, 3 and 4 s."""

from __future__ import annotations

from fractions import Fraction

from trading.contracts import ContractSpec
from trading.events import BookSnapshot, PlaceOrder, TimeInForce, TradeTick
from trading.fillsim import SimulatedExchange
from trading.hedge_backtest import HedgedBacktest
from trading.hedge_margin import leg_state, refusal
from trading.hedger import HEDGE, MAKER, HedgedMaker, _MakerOrder
from trading.hedging import HedgeLegs, Leg, validate_hedge_config
from trading.instruments import Instrument, Side
from trading.latency import ConstantLatency
from trading.margin import BINANCE_USDM_BTCUSDT as TIERS
from trading.perp_ledger import FundingSchedule, PerpLedger
from trading.perp_limits import PerpRiskLimits
from trading.perp_risk import PerpRisk
from trading.risk import NORMAL

MS = 1_000_000
PERP = Instrument.create(
    symbol="X/USDT:USDT", tick_size="0.01", lot_size="0.001", maker_fee="0.0002", taker_fee="0.0005"
)
LINEAR = ContractSpec.create(kind="linear", contract_size=1, settle="USDT")
LEGS = HedgeLegs(Leg(PERP, LINEAR), Leg(PERP, LINEAR))
CONFIG, _ = validate_hedge_config(
    LEGS,
    {"order_amount": "0.005", "min_profitability": "0.001", "max_unhedged": "0.01", "retry_budget": 2,
     "retry_backoff_ms": 100},
)  # fmt: skip


def ledger(wallet: int) -> PerpLedger:
    return PerpLedger(PERP, LINEAR, TIERS, wallet=wallet, leverage=5, funding=FundingSchedule.create(constant=0))


def run(maker_wallet: int, hedge_wallet: int, limits: dict | None = None):
    m = SimulatedExchange(PERP, latency=ConstantLatency(5 * MS, 5 * MS))
    h = SimulatedExchange(PERP, latency=ConstantLatency(3 * MS, 3 * MS), venue_prefix="simh")
    bot = HedgedMaker(LEGS, CONFIG, m.book, h.book)
    maker = [BookSnapshot(0, ((990_000, 100),), ((1_010_000, 100),))]
    maker += [TradeTick(t * 1_000 * MS, 995_000, 5, Side.SELL) for t in (1, 2, 3, 4)]  # through our bid
    maker.append(BookSnapshot(6_000 * MS, ((990_000, 100),), ((1_010_000, 100),)))
    hedge = [BookSnapshot(t * 100 * MS + 1, ((1_000_000, 100),), ((1_000_010, 100),)) for t in range(60)]
    perp = {MAKER: ledger(maker_wallet), HEDGE: ledger(hedge_wallet)}
    result = HedgedBacktest(bot, maker, hedge, m, h, perp=perp, perp_limits=limits).run()
    return bot, result


def test_a_maker_quote_the_maker_legs_margin_cannot_carry_is_refused_and_counted():
    bot, result = run(maker_wallet=25, hedge_wallet=100)
    # 1.005 s: bought 0.005 at 9,990.00 (fee 0.02 % of 49.95 = 0.00999); its hedge sold at 10,000.00.
    # 2.005 s: the requote was checked against 0.005 held: it needs 9.99 (IM of 0.010 at 9,990 / 5 =
    # 19.98, less 9.99 held); free = 25 + 0.05 unrealized - 0.00999 fees - 9.99 = 15.05: allowed.
    assert [(f.ts, f.price, f.qty) for f in result.maker_fills] == [(1_005 * MS, 999_000, 5), (2_005 * MS, 999_000, 5)]
    assert [(f.price, f.qty) for f in result.hedge_fills] == [(1_000_000, 5), (1_000_000, 5)]
    # From 2.005 s every bid is refused: margin balance 25 + 0.10 - 0.01998 = 25.08, 19.98 held by
    # 0.010, free 5.10 < 9.99. The sellers at 3 s and 4 s find no bid of ours.
    assert result.refused == {MAKER: {"insufficient_margin": 41}}  # the requote at 2.005 s + 40 timers to 6 s
    assert result.refused_first[MAKER] == (
        "buying 0.005 contracts at 9990 needs 9.99 USDT initial margin at 5x; free margin is 5.10 USDT (margin "
        "balance 25.08 USDT, 19.98 USDT held by the position and working buys) (not sent: the maker leg's "
        "pre-trade margin check)"
    )
    assert result.maker_stats.orders_placed == 3  # the two filled bids and the first ask: refused ones never left
    maker = result.perp[MAKER]
    # 0.010 X at the mark 10,000 / 5 = 20 USDT of margin, within the 25 USDT wallet
    assert maker["position_lots"] == 10 and maker["max_margin_used"] == 20 <= maker["wallet"] == 25
    assert maker["liquidated_at"] is None
    assert bot.halted is None and bot.exposure() == 0  # both fills hedged; quoting goes on (the ask rests)


def test_without_the_check_the_same_run_uses_more_margin_than_the_wallet():
    _bot, result = run(maker_wallet=25, hedge_wallet=100, limits={MAKER: PerpRiskLimits(margin_check=False)})
    assert len(result.maker_fills) == 4 and result.refused == {}
    # 0.020 X at 10,000 / 5 = 40 USDT of margin on a 25 USDT wallet
    assert result.perp[MAKER]["max_margin_used"] == 40 > result.perp[MAKER]["wallet"]


def test_a_hedge_the_hedge_legs_margin_cannot_carry_is_refused_and_stops_quoting():
    bot, result = run(maker_wallet=100, hedge_wallet=15)
    # The first hedge sold 0.005 at 10,000.00 (taker fee 0.025). The second, a sell of 0.005 at
    # 9,995.00 (the walked bid less the 0.05 % slack), needs 9.995 with 9.995 held; margin balance
    # 15 - 0.025 - 0.00025 unrealized (mark 10,000.05) = 14.97475, free 4.97975: refused.
    assert [f.qty for f in result.hedge_fills] == [5]
    assert result.refused == {HEDGE: {"insufficient_margin": 3}}  # the hedge and its 2 retries
    assert result.refused_first[HEDGE] == (
        "selling 0.005 contracts at 9995 needs 10.00 USDT initial margin at 5x; free margin is 4.98 USDT (margin "
        "balance 14.97 USDT, 10.00 USDT held by the position and working sells) (not sent: the hedge leg's "
        "pre-trade margin check)"
    )
    codes = [(n.ts // MS, n.code) for n in bot.notes]
    assert codes == [
        (2_005, "hedge_failed"),
        (2_005, "quoting_stopped"),
        (2_005, "hedge_retry"),
        (2_200, "hedge_failed"),  # the first timer after the 100 ms backoff
        (2_200, "hedge_retry"),
        (2_300, "hedge_failed"),
        (2_300, "hedge_budget_exhausted"),
    ]
    assert "(insufficient_margin)" in bot.notes[0].message and bot.notes[1].exposure == "0.005"
    assert bot.halted == "hedge_failed" and bot.exposure() == Fraction(5, 1000)
    hedge = result.perp[HEDGE]
    assert hedge["position_lots"] == -5 and hedge["max_margin_used"] == Fraction("10.00005") <= 15


def test_working_orders_of_the_side_are_held_and_a_reducing_order_passes():
    m, h = SimulatedExchange(PERP), SimulatedExchange(PERP, venue_prefix="simh")
    bot = HedgedMaker(LEGS, CONFIG, m.book, h.book)
    risk = PerpRisk.from_ledger(ledger(25))
    bid = PlaceOrder("q2", Side.BUY, 999_000, 5, TimeInForce.POST_ONLY)
    assert refusal(risk, bot, MAKER, bid) is None  # no mark yet: nothing is refused
    risk.evaluate(0, NORMAL, 2_000_000)  # mark 10,000.00
    assert refusal(None, bot, MAKER, bid) is None  # a spot leg has no check
    # flat, nothing working: 0.005 at 9,990 needs 9.99 of the 25 free
    assert refusal(risk, bot, MAKER, bid) is None
    # a bid of 0.010 being replaced (cancel sent, not yet answered) and its replacement (booked
    # working by the hedger as it is made): both can fill, so the old one is held, 19.98
    bot.maker_orders["q1"] = _MakerOrder(Side.BUY, 999_000, 10, None, cancelling=True)
    bot.maker_orders["q2"] = _MakerOrder(Side.BUY, 999_000, 5, None)
    state = leg_state(bot, MAKER, bid)
    assert (state.position, state.working_buy, state.working_sell) == (0, 10, 0)  # q2 itself left out
    decision = refusal(risk, bot, MAKER, bid)
    assert decision.code == "insufficient_margin"
    assert "needs 9.99 USDT" in decision.message and "free margin is 5.02 USDT" in decision.message
    # a sell holds nothing of the buys: allowed; once long 0.010, a sell of 0.005 reduces: allowed
    ask = PlaceOrder("q3", Side.SELL, 1_001_000, 5, TimeInForce.POST_ONLY)
    assert refusal(risk, bot, MAKER, ask) is None
    bot.maker_position = 10
    assert refusal(risk, bot, MAKER, ask) is None
    # the hedge leg reads the hedge position and the hedge orders
    bot.hedge_position = -7
    assert leg_state(bot, HEDGE, ask).position == -7 and leg_state(bot, HEDGE, ask).working_buy == 0
