"""A hedged backtest liquidates a perpetual leg whose mark reaches its liquidation price, even
between two timers, and says what it leaves unhedged (the set-up of tests/trading/test_hedge_margin:
perp-to-perp on X/USDT:USDT around 10,000 USDT, 5x isolated, quotes of 0.005 X).

1.005 s: the maker bought 0.005 at 9,990.00 and the hedge sold 0.005 at 10,000.00. The hedge
leg's isolated wallet is its initial margin, 0.005 x 10,000 / 5 = 10 USDT; its liquidation price
(MMR 0.4 %) is (10 + 0.005 x 10,000) / (0.005 x 1.004) = 11,952.19..., its bankruptcy price
10 + 0.005 (10,000 - p) = 0 -> 12,000. At 3.030 s the hedge book jumps to 12,000.00 / 12,000.10
(mark 12,000.05) and is back at 3.060 s, before the next timer."""

from __future__ import annotations

from fractions import Fraction

from tests.trading.test_hedge_margin import CONFIG, LEGS, MS, PERP, ledger
from trading.events import BookSnapshot, TradeTick
from trading.fillsim import SimulatedExchange
from trading.hedge_backtest import HedgedBacktest
from trading.hedger import HEDGE, MAKER, HedgedMaker
from trading.instruments import Side
from trading.latency import ConstantLatency


def _run(spike: bool):
    m = SimulatedExchange(PERP, latency=ConstantLatency(5 * MS, 5 * MS))
    h = SimulatedExchange(PERP, latency=ConstantLatency(3 * MS, 3 * MS), venue_prefix="simh")
    bot = HedgedMaker(LEGS, CONFIG, m.book, h.book)
    maker = [BookSnapshot(0, ((990_000, 100),), ((1_010_000, 100),))]
    maker += [TradeTick(t * 1_000 * MS, 995_000, 5, Side.SELL) for t in (1, 4)]  # through our bid
    maker.append(BookSnapshot(6_000 * MS, ((990_000, 100),), ((1_010_000, 100),)))
    hedge = [BookSnapshot(t * 100 * MS + 1, ((1_000_000, 100),), ((1_000_010, 100),)) for t in range(60)]
    if spike:
        hedge += [
            BookSnapshot(3_030 * MS, ((1_200_000, 100),), ((1_200_010, 100),)),
            BookSnapshot(3_060 * MS, ((1_000_000, 100),), ((1_000_010, 100),)),
        ]
        hedge.sort(key=lambda e: e.ts)
    perp = {MAKER: ledger(100), HEDGE: ledger(100)}
    return bot, HedgedBacktest(bot, maker, hedge, m, h, perp=perp).run()


def test_a_hedge_leg_whose_mark_reaches_its_liquidation_price_between_timers_is_liquidated():
    bot, result = _run(spike=True)
    (leg,) = result.liquidations
    done = leg.liquidation
    assert leg.venue == HEDGE and done.ts == 3_030 * MS and done.leg == "both"
    assert done.mark == Fraction("12000.05")
    assert done.liquidation_price == Fraction(60) / Fraction("0.00502")
    assert f"{float(done.liquidation_price):.2f}" == "11952.19"
    assert done.price == 12_000 and done.pnl == -10 and leg.lots == -5
    # the maker's long 0.005 is no longer hedged: that is the exposure the liquidation left
    assert leg.exposure == Fraction(5, 1000) == bot.exposure()
    assert bot.hedge_position == 0 and bot.maker_position == 5
    hedge = result.perp[HEDGE]
    assert hedge["liquidated_at"] == 3_030 * MS and hedge["position_lots"] == 0
    assert hedge["realized"] == -10
    # quoting stopped at once and stays stopped: the seller at 4 s finds no bid, nothing is re-hedged
    assert bot.halted == "liquidated" and bot.exhausted
    assert [f.ts for f in result.maker_fills] == [1_005 * MS] and len(result.hedge_fills) == 1
    codes = [n.code for n in bot.notes if n.ts == 3_030 * MS]
    assert codes == ["liquidated", "quoting_stopped"]
    assert "0.005 X left unhedged" in bot.notes[-2].message
    assert (3_030 * MS, Fraction(5, 1000)) in result.exposure.series


def test_without_the_spike_the_same_run_keeps_its_hedge():
    bot, result = _run(spike=False)
    assert result.liquidations == () and result.perp[HEDGE]["liquidated_at"] is None
    assert bot.halted is None and bot.exposure() == 0 and len(result.maker_fills) == 2


def test_the_results_show_the_liquidation_and_the_hedge_legs_pnl_includes_its_close():
    from apps.backtests.hedged import payload

    _bot, result = _run(spike=True)
    metrics = payload(result, LEGS, {"maker": "sim", "hedge": "simh"})["metrics"]
    (shown,) = metrics["hedged"]["liquidations"]
    assert shown == {
        "venue": "hedge", "ts_ms": 3_030, "leg": "both", "mark": "12000.05", "liquidation_price": "11952.19123506",
        "bankruptcy_price": "12000", "lots": -5, "pnl": "-10", "exposure_left": "0.005",
    }  # fmt: skip
    # hedge leg: sold 0.005 at 10,000 (+50), bought back by the liquidation at 12,000 (-60): -10
    # gross, less the taker fee 0.025; no position left to mark
    assert metrics["hedged"]["hedge_pnl"] == "-10.025"
    assert metrics["hedged"]["halted"] == "liquidated"
    from apps.dashboard.views.backtests import hedged_context

    figures = dict(hedged_context(metrics["hedged"])["figures"])  # the backtest page's "Hedged legs" card
    assert figures["hedge perp liquidated"] == (
        "at 3030 ms: mark 12000.05 reached 11952.19123506; closed at the bankruptcy price 12000 (-10); "
        "exposure left unhedged 0.005"
    )
