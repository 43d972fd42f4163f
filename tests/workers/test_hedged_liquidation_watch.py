"""The liquidation watch of a hosted hedged bot's paper perpetual leg and the take-over replay of
its close (``workers/hedged_liquidation.py``), without a host: the short hedge leg of
``test_hedged_liquidation`` (2 contracts sold at 59999.9, 5x isolated, no fee): margin 23.99996,
liquidation price 143.99976 / 0.002008 = 71713.0279.. (2 x that in ticks: 1434260.55..); and
how the hedged setup reads a stored liquidation row back (real PostgreSQL)."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest

from trading.book import OrderBook
from trading.contracts import ContractSpec, MarginMode
from trading.events import BookSnapshot, Liquidity, OrderFilled
from trading.instruments import Instrument, Side
from trading.margin import BINANCE_USDM_BTCUSDT as TIERS
from trading.perp_ledger import close_at_bankruptcy
from trading.perp_risk import PerpRisk, PerpRiskLimits
from workers.hedged_liquidation import LegWatch, replay_close

INST = Instrument.create(symbol="BTC/USDT:USDT", tick_size="0.1", lot_size="0.001", min_notional="0")
LINEAR = ContractSpec.create(kind="linear", contract_size=1, settle="USDT", max_leverage=125)
LIQ = Fraction("143.99976") / Fraction("0.002008")


class _Leg:
    def __init__(self) -> None:
        self.perp = PerpRisk(PerpRiskLimits(), INST, LINEAR, TIERS, wallet="3000", leverage=5,
                             margin_mode=MarginMode.ISOLATED)  # fmt: skip
        self.perp.on_fill(OrderFilled(1, "h-0", Side.SELL, 599_999, 2, 0, 0, Liquidity.TAKER, "t1"))


def _book(mid_ticks: int) -> OrderBook:
    book = OrderBook()
    book.apply_snapshot(BookSnapshot(1, [(mid_ticks - 1, 10)], [(mid_ticks + 1, 10)]))
    return book


def test_the_highest_mark_since_the_last_check_reaches_a_short_leg():
    leg = _Leg()
    assert leg.perp.liquidation == LIQ and leg.perp.isolated.wallet == Decimal("23.99996")
    watch = LegWatch(leg, _book(600_000))
    assert watch.crossed() is None  # calm
    watch.marks.note(2 * 717_130)  # 71713.0: just under the liquidation price
    assert watch.crossed() is None
    watch.marks.note(2 * 717_131)  # a spike to 71713.1 (a skipped snapshot), back to 60000.0 since
    assert watch.crossed() == Fraction("71713.1")
    assert watch.crossed() is None  # the range starts again


def test_a_flat_leg_forgets_the_marks_it_saw():
    leg = _Leg()
    pos = leg.perp.position
    for one in pos.legs.values():
        one.lots = 0
    leg.perp._refresh_liquidation()
    watch = LegWatch(leg, _book(600_000))
    watch.marks.note(2 * 800_000)
    assert watch.crossed() is None and watch.marks.take() == (None, None)


def test_replaying_the_stored_close_books_what_the_liquidation_booked():
    live, rebuilt = _Leg(), _Leg()
    perp = live.perp
    price, pnl, _ = close_at_bankruptcy(perp.spec, perp.position, perp.wallet, perp.liquidation, perp.liquidation_wb())
    perp.isolated.set(0)
    perp._refresh_liquidation()
    assert price == Fraction("71999.88") and pnl == -Fraction("23.99996")
    replay_close(rebuilt.perp, Decimal("-23.999960000000000000"))  # the Fill row's realized_pnl
    for p in (perp, rebuilt.perp):
        assert p.position.net_lots == 0 and p.liquidation is None and p.isolated.wallet == 0
        assert p.position.realized == -Fraction("23.99996")


@pytest.mark.django_db(transaction=True)
def test_the_setup_reads_a_legs_liquidation_and_holds_quoting_until_the_trader_resumed():
    """A stored liquidation row of the hedge leg (off the 0.1 grid: 71999.88) is among that leg's
    fills, not the maker's, with its loss; quoting stays held until a ``quoting_resumed`` event
    comes after it."""
    from apps.bots.services import bot_events_record
    from apps.orders.services import fills_record
    from tests.workers.test_hedged_perp_perp import _perp_perp_bot
    from workers import hedged_records, liquidation_fills

    bot = _perp_perp_bot()
    ts = 1_800_000_000_000_000_000
    maker, hedge, _settings = hedged_records.hedged_setup(bot.pk)
    close = [ts, "buy", 719_998, 2, "71999.88000000", "-23.999960000000000000", "USDT", "hedge"]
    fills_record([liquidation_fills.fill_row(hedge, close)])
    maker, hedge, _settings = hedged_records.hedged_setup(bot.pk)
    assert maker.fills == [] and maker.liquidated_leg == "hedge"
    ((f_ts, cid, side, price, lots, fee, is_maker, trade_id),) = hedge.fills
    assert (f_ts, cid, side, price, lots, fee, is_maker) == (ts, "", Side.BUY, 719_998, 2, Decimal(0), False)
    assert trade_id == f"liquidation-{ts}-hedge" and hedge.liquidation_closes == {trade_id: Decimal("-23.99996")}
    bot_events_record([(bot.pk, ts - 1_000, "hedge", "quoting_resumed", "resumed by the trader", {})])
    assert hedged_records.hedged_setup(bot.pk)[0].liquidated_leg == "hedge"  # a resume before it
    bot_events_record([(bot.pk, ts + 1_000_000, "hedge", "quoting_resumed", "resumed by the trader", {})])
    assert hedged_records.hedged_setup(bot.pk)[0].liquidated_leg is None
