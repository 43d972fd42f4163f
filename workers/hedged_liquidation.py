"""Liquidation of a hosted hedged bot's PAPER perpetual legs (:mod:`workers.hedged_loop`).

A live perpetual leg is liquidated by its exchange (what it reports is read back); a paper one is
liquidated here, as a single-venue paper perpetual is (:mod:`workers.paper_perp`):

- **the watch** (:class:`LegWatch`, one per paper perpetual leg, the leg's ``paper_perp``): every
  book mid of the leg's market since the last check goes into a
  :class:`~trading.perp_liquidation.MarkRange` (the books the leg handles or conflates,
  :meth:`workers.hedged_legs.HedgeLeg.push_market`, and the snapshots the host skips as
  superseded, :mod:`workers.fanout`). Each pass of the loop compares the worst of them (a long
  leg's lowest, a short leg's highest) with the leg's liquidation price (its
  :class:`~trading.perp_risk.PerpRisk`: isolated, the leg's own margin; cross, the account's
  wallet), as integers: a few comparisons per pass.
- **the close** (:func:`liquidate`): the leg's position is closed at the bankruptcy price
  (:func:`trading.perp_ledger.close_at_bankruptcy`: isolated, the leg's margin is lost; cross,
  the wallet and what was booked), the loss booked as realized PnL on the leg's PerpRisk (the
  hedged PnL snapshots show it); a Fill row with liquidity ``liq`` through
  :mod:`workers.liquidation_fills` (no client order id, venue trade id
  ``liquidation-<ts>-<leg>``, written once); the hedged maker is told
  (:meth:`trading.hedger.HedgedMaker.on_liquidation`: the leg's lots are gone, quotes are
  cancelled, nothing is re-hedged and quoting stays stopped until the trader resumes it); an
  incident ``liquidation`` and a ``risk_breach`` notification name the leg and the exposure left.
- **take-over**: the setup reads each leg's liquidation rows with its fills
  (:func:`fills_filter`), so the rebuilt position counts the close once (the hedger's lots from
  the row's side and lots, the leg's PerpRisk from its exact loss, :func:`replay_close`) and a
  new owner has nothing left to liquidate. A liquidation the trader has not resumed from since
  (no ``quoting_resumed`` event after it, :func:`held_leg`) keeps the new owner's hedger stopped
  (:func:`watch`), so the exposure is not re-hedged on the venue that was just liquidated.
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

from trading.contracts import to_decimal
from trading.instruments import Side
from trading.perp_ledger import close_at_bankruptcy, crossed_liquidation
from trading.perp_liquidation import MarkRange, close_ticks
from workers import liquidation_fills

RESUME = "Quoting of both legs is stopped until you resume quoting (nothing is re-hedged before)."


class LegWatch:
    """The liquidation watch of one paper perpetual leg (module docstring)."""

    __slots__ = ("_bound", "_liq", "_long", "book", "leg", "marks")

    def __init__(self, leg, book) -> None:
        self.leg = leg
        self.book = book  # the leg's market's shared book (the host keeps it)
        self.marks = MarkRange()
        self._liq: Fraction | None = None  # the liquidation price the bound is for
        self._bound = 0
        self._long = True

    def crossed(self) -> Fraction | None:
        """The worst mark since the last call when it reached the leg's liquidation price, else None."""
        perp = self.leg.perp
        liq = perp.liquidation
        self.marks.note_book(self.book)  # the book as it is now
        if liq is None:
            self.marks.take()  # what the market did while flat liquidates nothing
            return None
        if perp.venue_mark2 is not None:  # a venue's mark: the exact test
            self.marks.take()
            mark = perp.venue_mark2 * perp.tick / 2
            return mark if crossed_liquidation(perp.position.net_lots, mark, liq) else None
        if liq is not self._liq:
            self._liq = liq
            liq2 = 2 * liq / perp.tick
            self._long = perp.position.net_lots > 0
            # long: mark2 <= liq2 <=> mark2 <= floor(liq2); short: mark2 >= ceil(liq2)
            self._bound = (liq2.numerator // liq2.denominator) if self._long else -(-liq2.numerator // liq2.denominator)
        low, high = self.marks.take()
        m2 = low if self._long else high
        if m2 is None or not ((m2 <= self._bound) if self._long else (m2 >= self._bound)):
            return None
        return Fraction(m2) * perp.tick / 2


class HedgedLiquidation:
    """The watches of a hedged bot's paper perpetual legs; :meth:`check` once per loop pass."""

    def __init__(self, loop) -> None:
        self.loop = loop
        self.watches: list[LegWatch] = []
        for leg in loop.legs.values():
            if leg.perp is not None and not leg.live:
                leg.paper_perp = LegWatch(leg, loop.r.host.book(leg.setup.venue, leg.setup.symbol))
                self.watches.append(leg.paper_perp)

    def check(self, ts: int) -> None:
        for watch in self.watches:
            mark = watch.crossed()
            if mark is not None:
                liquidate(self.loop, watch.leg, ts, mark)


def watch(loop, maker_setup) -> HedgedLiquidation:
    """The loop's liquidation watches, started after take-over; a liquidation the trader has not
    resumed from (``maker_setup.liquidated_leg``, :func:`held_leg`) stops the hedger again."""
    held = getattr(maker_setup, "liquidated_leg", None)
    bot = loop.bot
    if held:
        bot.halted, bot.exhausted = "liquidated", True
        base = bot.legs.maker.instrument.base
        loop.r._event(
            "hedge",
            "liquidated_hold",
            f"the {held} leg was liquidated and quoting was not resumed since: quoting stays stopped, nothing is "
            f"re-hedged; exposure {float(bot.exposure()):g} {base} left unhedged",
            {"leg": held, "exposure": str(float(bot.exposure())), "asset": base},
        )
    return HedgedLiquidation(loop)


def _num(value: Fraction) -> str:
    return f"{to_decimal(value, 8).normalize():f}"


def liquidate(loop, leg, ts: int, mark: Fraction) -> None:
    """Close ``leg``'s position at its bankruptcy price and tell everyone (module docstring)."""
    from workers.paper_perp import liquidation_record

    r, bot, perp, setup = loop.r, loop.bot, leg.perp, leg.setup
    pos = perp.position
    liq, lots, entry = perp.liquidation, pos.net_lots, pos.entry_price()
    price, pnl, contracts = close_at_bankruptcy(perp.spec, pos, perp.wallet, liq, perp.liquidation_wb())
    if perp.isolated is not None:
        perp.isolated.set(0)  # the leg's margin is gone with it
    perp._refresh_liquidation()
    settle = perp.spec.settle
    side = Side.SELL if lots > 0 else Side.BUY
    bankruptcy = f"{to_decimal(price, 8):f}"
    close = [ts, side.name.lower(), close_ticks(setup.instrument, price, lots), abs(lots), bankruptcy,
             f"{to_decimal(pnl, 18):f}", settle, leg.name]  # fmt: skip
    what = f"{leg.name} leg ({setup.venue} {setup.symbol}, {pos.margin_mode.value})"
    why = (
        f"mark {_num(mark)} reached the liquidation price {_num(liq)} of the {what}; {perp._contracts(abs(lots))} "
        f"{'long' if lots > 0 else 'short'} from {_num(entry)} closed at the bankruptcy price {_num(price)}, "
        f"{to_decimal(pnl, perp.places):f} {settle}"
    )
    # Halted first: the liquidation's own incident and notification (below) say quoting stopped,
    # so the hedger's generic ``quoting_stopped`` stop (a second incident) is not raised as well.
    bot.halted = bot.halted or "liquidated"
    commands = bot.on_liquidation(leg.name, ts, lots, why)
    exposure, base = bot.exposure(), bot.legs.maker.instrument.base
    reason = f"liquidated: {why}; exposure {float(exposure):g} {base} left unhedged"
    data = {
        "leg": leg.name, "venue": setup.venue, "symbol": setup.symbol, "margin_mode": pos.margin_mode.value,
        "mark": f"{to_decimal(mark, 8):f}", "liquidation_price": f"{to_decimal(liq, 8):f}",
        "bankruptcy_price": bankruptcy, "entry": f"{to_decimal(entry, 8):f}",
        "contracts": f"{to_decimal(contracts, 8):f}", "pnl": close[5], "settle": settle,
        "trade_id": liquidation_fills.trade_id(ts, leg.name),
        "exposure": f"{to_decimal(exposure, 12):f}", "asset": base,
    }  # fmt: skip
    loop._use(leg)  # the leg's setup and recorded trade ids for the Fill row
    liquidation_fills.record(r, close)
    for venue, command in commands:  # the maker quotes' cancels, sent with this pass's flush
        loop.legs[venue].runner.send([command], ts)
    r.host.db.submit(liquidation_record, r.bot_id, ts, reason, data, RESUME)


# --- take-over (database thread) ------------------------------------------------------------


def fills_filter(account_id: int, leg: str):
    """The ``Fill`` rows of ``leg``'s liquidations (no client order id; trade id naming the leg)."""
    from django.db.models import Q

    return Q(
        client_order_id="", liquidity="liq", account_id=account_id,
        venue_trade_id__startswith=liquidation_fills.TRADE_PREFIX, venue_trade_id__endswith=f"-{leg}",
    )  # fmt: skip


def held_leg(bot_id: int, closes: dict[str, list]) -> str | None:
    """The leg of the newest liquidation (``closes``: leg -> its liquidation Fill rows) when no
    ``quoting_resumed`` event came after it (the trader's resume), else None."""
    from apps.bots.models import BotEvent

    last = max(((f.ts, leg) for leg, rows in closes.items() for f in rows), default=None)
    if last is None:
        return None
    resumed = BotEvent.objects.filter(bot_id=bot_id, code="quoting_resumed", ts__gte=last[0]).exists()
    return None if resumed else last[1]


def replay_close(perp, pnl: Decimal) -> None:
    """Take-over: a stored liquidation of the leg on its rebuilt PerpRisk: the position closed,
    the row's loss booked as realized PnL (18 places), an isolated leg's margin gone."""
    pos = perp.position
    pos.realized += Fraction(pnl)
    for one in pos.legs.values():
        one.lots, one.basis = 0, Fraction(0)
    if perp.isolated is not None:
        perp.isolated.set(0)
    perp._refresh_liquidation()


__all__ = ["HedgedLiquidation", "LegWatch", "fills_filter", "held_leg", "liquidate", "replay_close", "watch"]
