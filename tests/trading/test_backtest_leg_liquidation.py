"""Hedge position mode, isolated margin: a liquidated leg is closed alone at its bankruptcy
price and the ledger (and the backtest) go on with the other leg; the cross account's
liquidation still ends it. Worked numbers: Binance USD-M BTCUSDT bracket 1 (MMR 0.4 %, cum 0),
10x, long 0.004 at 60,000 and short 0.002 at 61,000 (the legs of tests/trading/test_hedge_legs)."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

from tests.trading.test_backtest_perp import INSTRUMENT, LINEAR, MS
from trading.backtest import Backtest, result_records
from trading.contracts import MarginMode, PositionMode
from trading.engine import Engine
from trading.events import BookSnapshot, Liquidity, OrderFilled, TradeTick
from trading.fillsim import SimulatedExchange
from trading.instruments import Side
from trading.latency import ConstantLatency
from trading.margin import BINANCE_USDM_BTCUSDT as TIERS
from trading.perp_ledger import PerpLedger, perp_records
from trading.perp_risk import PerpRisk
from trading.risk import RiskLimits
from trading.strategies import build_strategy


def _fill(ts: int, side: Side, price: str, qty: str) -> OrderFilled:
    return OrderFilled(
        ts, f"o{ts}", side, INSTRUMENT.ticks(price), INSTRUMENT.lots(qty), 0, 0, Liquidity.MAKER, f"t{ts}"
    )


def _ledger(mode: MarginMode, wallet: int = 10_000) -> PerpLedger:
    ledger = PerpLedger(INSTRUMENT, LINEAR, TIERS, wallet=Decimal(wallet), leverage=10, margin_mode=mode,
                        mode=PositionMode.HEDGE)  # fmt: skip
    ledger.on_fill(_fill(1, Side.BUY, "60000", "0.004"), "long")
    ledger.on_fill(_fill(2, Side.SELL, "61000", "0.002"), "short")
    return ledger


def test_an_isolated_leg_is_liquidated_alone_and_the_ledger_goes_on():
    ledger = _ledger(MarginMode.ISOLATED)
    assert ledger.on_mark(3, Fraction(60_000)) == []
    # long: liquidation 60,000 x 0.9 / 0.996 = 54,216.87; at 54,200 the long leg alone is closed
    # at its bankruptcy price 54,000 (its 24 USDT wallet used up)
    (done,) = ledger.on_mark(4, Fraction(54_200))
    assert (done.leg, done.price, done.pnl, done.closed) == ("long", Fraction(54_000), Fraction(-24), {"long": 4})
    assert done.liquidation_price == Fraction(60_000) * Fraction("0.9") / Fraction("0.996")
    assert not done.ends_account and ledger.liquidated_at is None  # the run goes on
    assert ledger.position.legs["long"].lots == 0 and ledger.position.legs["short"].lots == -2
    assert ledger.position.realized == -24
    # the other leg still trades: a fill after the liquidation is booked
    ledger.on_fill(_fill(5, Side.SELL, "55000", "0.001"), "short")
    assert ledger.position.legs["short"].lots == -3
    # short 0.002 at 61,000 + 0.001 at 55,000: entry 59,000, wallet 12.2 + 5.5 = 17.7;
    # bankruptcy 17.7 + 0.003 (59,000 - p) = 0 -> p = 64,900. Its liquidation: (17.7 + 177) /
    # (0.003 x 1.004) = 64,641.43...; a mark of 64,700 reaches it.
    assert ledger.on_mark(6, Fraction(64_600)) == []
    (second,) = ledger.on_mark(7, Fraction(64_700))
    assert (second.leg, second.price, second.pnl) == ("short", Fraction(64_900), Fraction("-17.7"))
    assert second.liquidation_price == Fraction("194.7") / Fraction("0.003012")
    assert ledger.position.realized == Fraction("-41.7")
    report = ledger.report()
    assert [q.leg for q in report["liquidations"]] == ["long", "short"] and report["liquidated_at"] is None
    shown = perp_records(report, INSTRUMENT)
    assert shown["liquidation_count"] == 2 and shown["liquidated_at"] is None
    assert "the long leg (isolated): closed at the bankruptcy price 54000, -24 USDT" in shown["liquidations_text"]
    records = shown["liquidations"]
    assert records[0]["leg"] == "long" and records[0]["bankruptcy_price"] == "54000.00000000"
    assert records[0]["pnl"] == "-24.00000000" and records[0]["contracts"] == {"long": "0.004"}
    assert records[1]["contracts"] == {"short": "-0.003"}


def test_the_cross_accounts_liquidation_still_ends_the_ledger():
    ledger = _ledger(MarginMode.CROSS, wallet=10)
    # WB 10 less the maker fees (0.02 % of 240 + 122 = 0.0724): 9.9276; bankruptcy 9.9276 +
    # 0.004 (p - 60,000) + 0.002 (61,000 - p) = 0 -> p = 54,036.2, the wallet is gone
    (done,) = ledger.on_mark(3, Fraction(54_600))
    assert done.leg == "account" and done.ends_account and done.closed == {"long": 4, "short": -2}
    assert done.price == Fraction("54036.2") and done.pnl == Fraction("-9.9276") and ledger.liquidated_at == 3
    assert ledger.on_mark(4, Fraction(50_000)) == []  # nothing after


def _snap(ts: int, bid: str, ask: str) -> BookSnapshot:
    lots = INSTRUMENT.lots("5")
    return BookSnapshot(ts, ((INSTRUMENT.ticks(bid), lots),), ((INSTRUMENT.ticks(ask), lots),))


def _trade(ts: int, price: str, side: Side, n: int) -> TradeTick:
    return TradeTick(ts, INSTRUMENT.ticks(price), INSTRUMENT.lots("1"), side, f"x{n}")


def test_a_hedge_mode_backtest_goes_on_after_an_isolated_leg_is_liquidated():
    """The bid and ask at 59,997 / 60,003 both fill (a long and a short leg open at once), the mid
    falls to 58,000 (the long leg's liquidation at 125x is ~59,757): the long leg is closed at its
    bankruptcy price, the engine's inventory and PerpRisk lose it too, and the run goes on to the
    end of the data with the short leg. (The bid requoted at 59,997 before the fall fills as the
    book falls through it, its answer arriving after the first liquidation: that new long leg is
    liquidated in turn at the next mark.)"""
    ledger = PerpLedger(INSTRUMENT, LINEAR, TIERS, wallet=Decimal(10_000), leverage=125,
                        margin_mode=MarginMode.ISOLATED, mode=PositionMode.HEDGE)  # fmt: skip
    perp = PerpRisk.from_ledger(ledger)
    strategy = build_strategy(
        "fixed_spread",
        {"order_amount": "0.002", "bid_spread": "0.00005", "ask_spread": "0.00005", "refresh_time": "10"},
        INSTRUMENT,
    )
    engine = Engine(strategy, INSTRUMENT, bot_id="legs", risk=RiskLimits(),
                    initial_quote=INSTRUMENT.cash_units("100000"), perp=perp)  # fmt: skip
    t0 = 1_700_000_000 * 10**9
    events = [_snap(t0, "59990", "60010"), _snap(t0 + 10 * MS, "59990", "60010")]
    events += [_trade(t0 + 20 * MS, "59997", Side.SELL, 1), _trade(t0 + 20 * MS, "60003", Side.BUY, 2)]
    events += [_snap(t0 + 300 * MS + i * 100 * MS, "57990", "58010") for i in range(10)]
    exchange = SimulatedExchange(INSTRUMENT, latency=ConstantLatency(MS, MS))
    result = Backtest(engine, events, exchange, timer_interval_ns=100 * MS, perp=ledger).run()
    report = result.perp
    done, *later = report["liquidations"]
    assert done.leg == "long" and done.closed == {"long": 2} and report["liquidated_at"] is None
    assert [q.leg for q in later] == ["long"] * len(later)  # never the short leg, never the account
    # long 0.002 at 59,997 at 125x: wallet 0.95995 USDT; bankruptcy 59,997 x (1 - 1/125) = 59,517.024
    assert done.price == Fraction(59_997) * Fraction(124, 125) and done.pnl == -Fraction(59_997 * 2, 1000) / 125
    assert result.events == len(events) and result.last_ts == events[-1].ts > done.ts  # the run went on
    pos = ledger.position
    assert pos.legs["long"].lots == 0 and pos.legs["short"].lots < 0
    # the engine's PerpRisk and portfolio lost the long leg too
    assert {n: leg.lots for n, leg in perp.position.legs.items()} == {n: leg.lots for n, leg in pos.legs.items()}
    assert engine.portfolio.position == pos.net_lots
    assert any(n.code == "liquidated" and "long leg (isolated)" in n.message for n in result.notes)
    assert result_records(result, INSTRUMENT)["perp"]["liquidations"][0]["leg"] == "long"


def test_a_one_way_backtest_sees_a_crash_that_comes_back_between_two_timers():
    """Long 0.002 at 59,997 at 125x isolated (liquidation ~59,756): the book falls to a 58,000 mid
    at 150 ms and is back at 60,000 at 160 ms, before the 200 ms timer. The backtest marks the
    ledger on the crashing book itself: liquidated there at the bankruptcy price, and the run ends."""
    ledger = PerpLedger(INSTRUMENT, LINEAR, TIERS, wallet=Decimal(10_000), leverage=125)
    strategy = build_strategy(
        "fixed_spread",
        {"order_amount": "0.002", "bid_spread": "0.00005", "ask_spread": "0.05", "refresh_time": "10"},
        INSTRUMENT,
    )
    engine = Engine(
        strategy, INSTRUMENT, bot_id="one", risk=RiskLimits(), initial_quote=INSTRUMENT.cash_units("100000")
    )
    t0 = 1_700_000_000 * 10**9
    events = [_snap(t0, "59990", "60010"), _snap(t0 + 10 * MS, "59990", "60010")]
    events += [_trade(t0 + 20 * MS, "59997", Side.SELL, 1)]
    events += [_snap(t0 + 150 * MS, "57990", "58010"), _snap(t0 + 160 * MS, "59990", "60010")]
    events += [_snap(t0 + 300 * MS + i * 100 * MS, "59990", "60010") for i in range(5)]
    exchange = SimulatedExchange(INSTRUMENT, latency=ConstantLatency(MS, MS))
    result = Backtest(engine, events, exchange, timer_interval_ns=100 * MS, perp=ledger).run()
    (done,) = result.perp["liquidations"]
    assert done.ts == t0 + 150 * MS == result.perp["liquidated_at"] and done.mark == 58_000
    assert done.leg == "both" and done.closed["both"] > 0 and ledger.position.net_lots == 0
    assert result.last_ts == t0 + 150 * MS  # nothing after the liquidation
