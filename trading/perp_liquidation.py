"""What a perpetual liquidation does beyond the position it closes, shared by the backtesters
and the hosted paper venue.

- :func:`close_fill`: the venue's close of a liquidated position as a fill of the engine's
  portfolio (no order of the bot, fee 0, the bankruptcy price rounded to the tick as the
  portfolio keeps integer ticks), so the strategy's inventory loses the closed lots too.
- :func:`close_in_risk`: the same close in a :class:`~trading.perp_risk.PerpRisk` kept beside
  a ledger (a hedged backtest's perpetual leg).
- :func:`close_in_engine`: a hedge-mode backtest whose ledger liquidated one isolated leg
  (:class:`trading.perp_ledger.Liquidation`) closes the same leg in the engine's
  :class:`~trading.perp_risk.PerpRisk` and books the close on the engine's portfolio; the run
  goes on with the other leg.
- :class:`MarkRange`: the lowest and highest mark (twice the price in ticks, as the engine's
  ``mid2``) the market went through since the last liquidation check. A hosted bot is handed
  only the newest book of each cycle (the ones it fell behind on are conflated); its paper
  venue notes every book's mid here and the check compares the worst of them with the
  liquidation price: a long is liquidated by the lowest mark, a short by the highest, even if
  the market came back before the bot's next cycle.
"""

from __future__ import annotations

from fractions import Fraction

from trading import hedge_legs
from trading.contracts import PositionMode, to_decimal
from trading.events import Liquidity, OrderFilled
from trading.instruments import Instrument, Side
from trading.perp_ledger import close_at_bankruptcy


def close_fill(ts: int, lots: int, price_ticks: int, trade_id: str) -> OrderFilled:
    """The fill closing ``lots`` (signed, as held: a long is closed by a sell) at ``price_ticks``."""
    side = Side.SELL if lots > 0 else Side.BUY
    return OrderFilled(ts, "liquidation", side, price_ticks, abs(lots), 0, 0, Liquidity.TAKER, trade_id)


def close_ticks(instrument: Instrument, price: Fraction, lots: int) -> int:
    """The bankruptcy ``price`` in ticks for a close of ``lots`` (rounded as the close's side rounds)."""
    return instrument.ticks(to_decimal(price, 18), side=Side.SELL if lots > 0 else Side.BUY)


def close_in_risk(risk, liquidation) -> None:
    """Close in ``risk`` (a :class:`~trading.perp_risk.PerpRisk` on the ledger's account) what
    ``liquidation`` (the ledger's) closed, at its own bankruptcy price, so its pre-trade checks
    and liquidation watch see the position the venue left."""
    if liquidation.leg == "both":
        if risk.position.net_lots:
            close_at_bankruptcy(risk.spec, risk.position, risk.wallet, liquidation.liquidation_price,
                                risk.liquidation_wb())  # fmt: skip
            if risk.isolated is not None:
                risk.isolated.set(0)
    else:
        hedge_legs.liquidate_leg(risk.position, risk.wallet, liquidation.leg, liquidation.liquidation_price,
                                 risk.leg_funding)  # fmt: skip
    risk._refresh_liquidation()


def close_in_engine(engine, instrument: Instrument, liquidation) -> list[OrderFilled]:
    """Close in ``engine`` what ``liquidation`` (a ledger's) closed: the leg in its PerpRisk (when
    it keeps legs) and the lots on its portfolio. Returns the close fills booked."""
    risk = getattr(engine, "perp", None)
    if risk is not None and risk.hedge is not None:
        close_in_risk(risk, liquidation)
    fills = []
    for leg, lots in liquidation.closed.items():
        if lots:
            ticks = close_ticks(instrument, liquidation.price, lots)
            fill = close_fill(liquidation.ts, lots, ticks, f"liquidation-{liquidation.ts}-{leg}")
            engine.portfolio.on_fill(fill)
            fills.append(fill)
    return fills


def mid2_bounds(ledger) -> tuple[int | None, int | None]:
    """``(low, high)``: a book whose mid2 (bid + ask, ticks) is at or under ``low`` reaches a
    liquidation price of ``ledger`` on a falling mark (a long, a long leg, a long-like cross
    account); at or over ``high``, one on a rising mark. None where there is none. A backtest
    compares each book with these two integers and marks the ledger only when one is reached."""
    if ledger.liquidated_at is not None:
        return None, None
    pos = ledger.position
    if ledger.mode is PositionMode.HEDGE:
        found = list(hedge_legs.leg_liquidations(pos, ledger.table, ledger.wallet, ledger.leg_funding).values())
    else:
        liq = ledger.liquidation_price() if pos.net_lots else None
        found = [] if liq is None else [(1 if pos.net_lots > 0 else -1, liq)]
    tick = Fraction(ledger.instrument.tick_size)
    low = high = None
    for side, liq in found:
        liq2 = 2 * liq / tick
        if side > 0:
            bound = liq2.numerator // liq2.denominator
            low = bound if low is None else max(low, bound)
        else:
            bound = -(-liq2.numerator // liq2.denominator)
            high = bound if high is None else min(high, bound)
    return low, high


class MarkRange:
    """The lowest and highest ``mark2`` seen since the last :meth:`take` (module docstring)."""

    __slots__ = ("high", "low")

    def __init__(self) -> None:
        self.low: int | Fraction | None = None
        self.high: int | Fraction | None = None

    def note(self, mark2: int | Fraction) -> None:
        low = self.low
        if low is None:
            self.low = self.high = mark2
        elif mark2 < low:
            self.low = mark2
        elif mark2 > self.high:
            self.high = mark2

    def note_book(self, book) -> None:
        """The mid of ``book`` (an OrderBook) when it has both sides and is not crossed."""
        bid, ask = book.best_bid(), book.best_ask()
        if bid is not None and ask is not None and bid < ask:
            self.note(bid + ask)

    def take(self, current: int | Fraction | None = None) -> tuple:
        """``(low, high)`` over what was noted and ``current``; the range starts again empty."""
        low, high = self.low, self.high
        self.low = self.high = None
        if current is not None:
            low = current if low is None or current < low else low
            high = current if high is None or current > high else high
        return low, high


__all__ = ["MarkRange", "close_fill", "close_in_engine", "close_in_risk", "close_ticks", "mid2_bounds"]
