"""The strategy contract.

A strategy reacts to events and says which quotes it wants resting on the book; the engine
(``trading.engine``) turns that wish into the smallest set of cancels and places against the
orders already working, runs pre-trade risk, and hands commands to a gateway. Strategies
never do I/O and never read the wall clock: ``ctx.ts`` is the time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from trading.instruments import Instrument, Side

if TYPE_CHECKING:  # pragma: no cover
    from trading.book import OrderBook
    from trading.events import Event


@dataclass(frozen=True, slots=True)
class Quote:
    """One desired resting order: side, price in ticks, size in lots, ladder level (0 = best)."""

    side: Side
    price: int
    qty: int
    level: int = 0


@dataclass(frozen=True, slots=True)
class QuoteSet:
    """The complete set of quotes a strategy wants working now. An empty set pulls all quotes.

    ``reason`` says in the trader's words why the quotes look like this (shown in the bot log).
    """

    bids: tuple[Quote, ...] = ()
    asks: tuple[Quote, ...] = ()
    reason: str = ""

    @property
    def all(self) -> tuple[Quote, ...]:
        return self.bids + self.asks


@dataclass(slots=True)
class StrategyContext:
    """What a strategy may look at when it decides. Built by the engine for every event."""

    ts: int
    instrument: Instrument
    book: OrderBook
    position: int  # base position in lots (signed)
    base_balance: int  # lots of base available to the bot (inventory)
    quote_balance: int  # cash units of quote available to the bot
    working_bids: int = 0  # number of our working buy orders
    working_asks: int = 0
    # Perpetuals (``None`` on spot or while unknown): the funding rate that applies at the next
    # funding time (positive: longs pay shorts) and that time, in ns since the epoch.
    funding_rate: float | None = None
    next_funding_ts: int | None = None


class Strategy(Protocol):
    """Every strategy implements this; configs are frozen dataclasses built by ``from_dict``."""

    name: str

    def on_event(self, event: Event, ctx: StrategyContext) -> QuoteSet | None:
        """Return the quotes wanted now, or ``None`` to leave working quotes as they are."""
        ...
