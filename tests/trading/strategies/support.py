"""Helpers for strategy tests: a BTC/USDT-like instrument, real books, contexts, event feeds."""

from __future__ import annotations

from collections.abc import Sequence

from trading.book import OrderBook
from trading.events import BookSnapshot, Timer
from trading.instruments import FEE_SCALE, Instrument
from trading.strategy import QuoteSet, StrategyContext

NS = 1_000_000_000

# tick 0.01 quote, lot 0.001 base, min notional 5 quote
INSTRUMENT = Instrument.create(symbol="BTC/USDT", tick_size="0.01", lot_size="0.001", min_notional="5")


def make_book(bids: Sequence[tuple[int, int]], asks: Sequence[tuple[int, int]]) -> OrderBook:
    book = OrderBook()
    book.apply_snapshot(BookSnapshot(ts=0, bids=tuple(bids), asks=tuple(asks)))
    return book


def two_sided(bid: int, ask: int, qty: int = 1000) -> OrderBook:
    return make_book([(bid, qty), (bid - 100, qty)], [(ask, qty), (ask + 100, qty)])


def make_ctx(
    book: OrderBook,
    ts: int = NS,
    *,
    position: int = 0,
    base_balance: int = 0,
    quote_balance: int = 0,
    instrument: Instrument = INSTRUMENT,
) -> StrategyContext:
    return StrategyContext(
        ts=ts,
        instrument=instrument,
        book=book,
        position=position,
        base_balance=base_balance,
        quote_balance=quote_balance,
    )


def balanced_ctx(book: OrderBook, ts: int, base_lots: int, base_share: float) -> StrategyContext:
    """A context whose base holding is ``base_share`` of total value at the book's mid."""
    mid = (book.best_bid() + book.best_ask()) / 2
    base_value = base_lots * mid * FEE_SCALE
    quote_units = int(base_value * (1 - base_share) / base_share) if base_share > 0 else 10**15
    return make_ctx(book, ts, base_balance=base_lots, quote_balance=quote_units)


def quote_on(strategy, book: OrderBook, ts: int = NS, **ctx_kwargs) -> QuoteSet | None:
    return strategy.on_event(Timer(ts), make_ctx(book, ts, **ctx_kwargs))


def feed_mids(
    strategy, mids: Sequence[float], *, start_ts: int = 0, step_s: float = 1.0, spread: int = 2, **ctx_kwargs
):
    """Drive a strategy with a book whose mid walks through ``mids`` (in ticks); return the last QuoteSet."""
    result = None
    for i, mid in enumerate(mids):
        ts = start_ts + int(i * step_s * NS)
        bid = int(mid) - spread // 2
        book = two_sided(bid, bid + spread)
        out = strategy.on_event(Timer(ts), make_ctx(book, ts, **ctx_kwargs))
        if out is not None:
            result = out
    return result


def prices(quotes) -> list[int]:
    return [q.price for q in quotes]


def sizes(quotes) -> list[int]:
    return [q.qty for q in quotes]
