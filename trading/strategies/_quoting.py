"""Shared quoting helpers: reading the book, safe rounding, post-only guards, sizes.

Every strategy ends with :func:`build_quote_set`, so the rules hold everywhere:
bids round down and asks up to whole ticks; a bid is always below the best ask and an ask
above the best bid (post-only quotes never cross); sizes are whole lots and quotes below the
instrument's minimum notional are skipped.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from trading.config import ConfigError
from trading.events import BookDelta, BookSnapshot, OrderFilled, Timer, TopOfBook, TradeTick
from trading.instruments import FEE_SCALE, Instrument, InstrumentError, Side
from trading.strategy import Quote, QuoteSet, StrategyContext

if TYPE_CHECKING:  # pragma: no cover
    from trading.events import Event

NS = 1_000_000_000
_FLOAT_SLACK = 1e-9  # ticks; absorbs float noise so 99.9999999999 rounds like 100

QUOTE_EVENTS = (BookSnapshot, BookDelta, TopOfBook, Timer)


@dataclass(slots=True, unsafe_hash=True)
class Market:
    """Top of the book in ticks; ``mid`` is exact (a half tick is representable).

    A value (compared and hashed by its fields), immutable by convention: not ``frozen=True``
    because a frozen dataclass costs several times as much to build and one is read per event.
    """

    best_bid: int
    best_ask: int

    @property
    def mid(self) -> Fraction:
        return Fraction(self.best_bid + self.best_ask, 2)

    @property
    def mid2(self) -> int:
        """Twice the mid, an exact integer (for integer-only price arithmetic)."""
        return self.best_bid + self.best_ask

    @property
    def mid_float(self) -> float:
        return (self.best_bid + self.best_ask) / 2


def read_market(book: Any) -> Market | None:
    """Return the top of ``book`` or ``None`` when a side is empty or the book is crossed."""
    bid, ask = book.best_bid(), book.best_ask()
    if bid is None or ask is None or bid >= ask:
        return None
    return Market(int(bid), int(ask))


def bid_ticks(price: Fraction | float) -> int:
    """Round a bid price (in ticks) down to a whole tick."""
    if type(price) is not float and isinstance(price, Fraction):  # (an ABC check: floats skip it)
        return math.floor(price)
    return math.floor(price + _FLOAT_SLACK)


def ask_ticks(price: Fraction | float) -> int:
    """Round an ask price (in ticks) up to a whole tick."""
    if type(price) is not float and isinstance(price, Fraction):
        return math.ceil(price)
    return math.ceil(price - _FLOAT_SLACK)


def mid_times_floor(market: Market, ratio: Fraction) -> int:
    """``floor(mid * ratio)`` with integers only (``ratio`` is usually a precomputed Fraction)."""
    return (market.mid2 * ratio.numerator) // (2 * ratio.denominator)


def mid_times_ceil(market: Market, ratio: Fraction) -> int:
    """``ceil(mid * ratio)`` with integers only."""
    return -((-market.mid2 * ratio.numerator) // (2 * ratio.denominator))


def frac(value: Decimal | float | int) -> Fraction:
    """Exact fraction of a config number (floats through their shortest repr)."""
    if isinstance(value, float):
        return Fraction(repr(value))
    return Fraction(value)


def amount_to_lots(instrument: Instrument, field: str, amount: Decimal) -> int:
    """Convert a base amount to lots, rounding down; an amount under one lot is a ConfigError."""
    lots = instrument.lots(amount, field=field, round_down=True)
    if lots <= 0:
        raise ConfigError({field: f"{amount} is below the lot size {instrument.lot_size}; give at least that"})
    return lots


def price_to_ticks(instrument: Instrument, field: str, price: Decimal, side: Side) -> int:
    """Convert a config price to ticks, rounding in the safe direction for ``side``."""
    try:
        return instrument.ticks(price, side=side, field=field)
    except InstrumentError as exc:
        raise ConfigError({field: str(exc)}) from None


def inventory_base_ratio(ctx: StrategyContext, mid_ticks: Fraction | float) -> float | None:
    """Share of the bot's value held in base currency (0..1), or ``None`` with no value at all."""
    base_value = ctx.base_balance * float(mid_ticks) * FEE_SCALE  # cash units
    total = base_value + ctx.quote_balance
    if total <= 0:
        return None
    return min(max(base_value / total, 0.0), 1.0)


def target_base_lots(ctx: StrategyContext, mid_ticks: Fraction | float, ratio: float) -> float:
    """Lots of base the bot would hold if its value were split at ``ratio`` base."""
    price = float(mid_ticks)
    if price <= 0:
        return 0.0
    total = ctx.base_balance * price * FEE_SCALE + ctx.quote_balance
    return total * ratio / (price * FEE_SCALE)


def scaled_lots(lots: int, factor: float) -> int:
    """Scale a size and round down to whole lots (never negative)."""
    return max(math.floor(lots * factor + _FLOAT_SLACK), 0)


def build_quote_set(
    instrument: Instrument,
    market: Market,
    bids: Iterable[tuple[int, int]],
    asks: Iterable[tuple[int, int]],
    reason: str,
) -> QuoteSet:
    """Make a QuoteSet from ``(price_ticks, lots)`` pairs (best first), applying the safety rules.

    Bids above ``best_ask - 1`` are lowered to it and asks below ``best_bid + 1`` raised to it, so
    post-only quotes never cross; non-positive prices, empty sizes and quotes under the minimum
    notional are dropped.
    """
    entry = _MIN_PQ_BY_ID.get(id(instrument))
    min_pq = entry[1] if entry is not None and entry[0] is instrument else _remember_min_pq(instrument)
    highest_bid = market.best_ask - 1
    lowest_ask = market.best_bid + 1
    out_bids: list[Quote] = []
    cache = _BID_QUOTES
    for price, qty in bids:
        if price > highest_bid:
            price = highest_bid
        if price <= 0 or qty <= 0 or price * qty < min_pq:
            continue
        key = (price, qty, len(out_bids))
        quote = cache.get(key)
        if quote is None:
            quote = _new_quote(cache, key, Side.BUY)
        out_bids.append(quote)
    out_asks: list[Quote] = []
    cache = _ASK_QUOTES
    for price, qty in asks:
        if price < lowest_ask:
            price = lowest_ask
        if qty <= 0 or price * qty < min_pq:
            continue
        key = (price, qty, len(out_asks))
        quote = cache.get(key)
        if quote is None:
            quote = _new_quote(cache, key, Side.SELL)
        out_asks.append(quote)
    return QuoteSet(tuple(out_bids), tuple(out_asks), reason)


# Quotes are immutable values, so equal ones can be shared: a ladder around a mid that moves by a
# few ticks keeps asking for the same (price, size, level) quotes, and building a frozen
# dataclass costs about ten times a dict lookup. Bounded: cleared when full.
_QUOTE_CACHE_SIZE = 4096
_BID_QUOTES: dict[tuple[int, int, int], Quote] = {}
_ASK_QUOTES: dict[tuple[int, int, int], Quote] = {}


def _new_quote(cache: dict[tuple[int, int, int], Quote], key: tuple[int, int, int], side: Side) -> Quote:
    if len(cache) >= _QUOTE_CACHE_SIZE:
        cache.clear()
    quote = cache[key] = Quote(side, key[0], key[1], key[2])
    return quote


# By identity (an Instrument's own hash is a Python-level dataclass __hash__); each entry keeps its
# instrument alive, so an id cannot be reused while its entry exists.
_MIN_PQ_BY_ID: dict[int, tuple[Instrument, int]] = {}


def _remember_min_pq(instrument: Instrument) -> int:
    if len(_MIN_PQ_BY_ID) >= 256:
        _MIN_PQ_BY_ID.clear()
    value = min_price_times_qty(instrument)
    _MIN_PQ_BY_ID[id(instrument)] = (instrument, value)
    return value


@functools.lru_cache(maxsize=256)
def min_price_times_qty(instrument: Instrument) -> int:
    """Smallest ``price_ticks * qty_lots`` meeting the instrument's minimum notional (exact)."""
    per_unit = instrument.tick_size * instrument.lot_size
    return math.ceil(Fraction(instrument.min_notional) / Fraction(per_unit))


def pulled(reason: str) -> QuoteSet:
    """An empty QuoteSet: pull every quote, saying why."""
    return QuoteSet((), (), f"pulled: {reason}")


class QuotingStrategy:
    """Base for the strategies here: routes events and keeps the last QuoteSet.

    Subclasses implement :meth:`quote` (called on book and timer events with a two-sided book)
    and may override :meth:`observe` (market signals), :meth:`on_trade` and :meth:`on_fill`.
    """

    name = "base"
    # Whether the class overrides :meth:`on_trade`; without it a trade print needs no book read.
    _trade_hook = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._trade_hook = cls.on_trade is not QuotingStrategy.on_trade

    def __init__(self, config: Any, instrument: Instrument) -> None:
        self.config = config
        self.instrument = instrument
        self.last_quotes: QuoteSet | None = None

    def on_event(self, event: Event, ctx: StrategyContext) -> QuoteSet | None:
        """Return the quotes wanted now, or ``None`` to leave the working quotes alone."""
        if type(event) is TradeTick or isinstance(event, TradeTick):
            if self._trade_hook:
                market = read_market(ctx.book)
                if market is not None:
                    self.on_trade(event, ctx, market)
            return None
        if isinstance(event, OrderFilled):
            self.on_fill(event, ctx)
            return None
        if not isinstance(event, QUOTE_EVENTS):
            return None
        market = read_market(ctx.book)
        if market is None:
            result = pulled("the book has no bid or no ask (or is crossed)")
        else:
            self.observe(ctx.ts, market, ctx)
            result = self.quote(ctx, market)
        if result is not None:
            self.last_quotes = result
        return result

    def observe_event(self, event: Event, ctx: StrategyContext) -> None:
        """Update signals and state from ``event`` without computing quotes (for ``auto``'s
        inactive sub-strategies, which must stay warm)."""
        if isinstance(event, TradeTick):
            market = read_market(ctx.book)
            if market is not None:
                self.on_trade(event, ctx, market)
        elif isinstance(event, OrderFilled):
            self.on_fill(event, ctx)
        elif isinstance(event, QUOTE_EVENTS):
            market = read_market(ctx.book)
            if market is not None:
                self.observe(ctx.ts, market, ctx)

    def observe(self, ts: int, market: Market, ctx: StrategyContext) -> None:
        """Update market signals from the book (default: nothing)."""

    def on_trade(self, trade: TradeTick, ctx: StrategyContext, market: Market) -> None:
        """React to a public trade print (default: nothing)."""

    def on_fill(self, fill: OrderFilled, ctx: StrategyContext) -> None:
        """React to one of our fills (default: nothing)."""

    def quote(self, ctx: StrategyContext, market: Market) -> QuoteSet | None:
        raise NotImplementedError


def ladder(
    market: Market,
    *,
    bid_offset: float,
    ask_offset: float,
    spacing: float,
    levels: int,
    bid_lots: list[int],
    ask_lots: list[int],
    center: float | None = None,
) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Ladder around ``center`` (default mid), for model-driven offsets (float math, then safe
    rounding): level ``i`` bid at ``center * (1 - bid_offset - i*spacing)`` rounded down, ask at
    ``center * (1 + ask_offset + i*spacing)`` rounded up. Offsets and spacing are fractions."""
    c = market.mid_float if center is None else center
    floor, ceil, slack = math.floor, math.ceil, _FLOAT_SLACK
    bids = [(floor(c * (1.0 - bid_offset - i * spacing) + slack), bid_lots[i]) for i in range(levels)]
    asks = [(ceil(c * (1.0 + ask_offset + i * spacing) - slack), ask_lots[i]) for i in range(levels)]
    return bids, asks
