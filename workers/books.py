"""Applying feed events to an order book (the feed loop's book, and a host's shared books)."""

from __future__ import annotations

from trading.book import OrderBook
from trading.events import BookDelta, BookSnapshot, TopOfBook
from trading.instruments import Side


def apply_to_book(book: OrderBook, event) -> bool:
    """Apply a book event; return whether the book changed. Raises ``SequenceGap`` on a gap.

    A ticker (top of book) only drives a book that has no depth stream behind it; on a synced
    depth book it would wipe every level below the touch, so it is ignored there.
    """
    t = type(event)
    if t is BookSnapshot:
        book.apply_snapshot(event)
    elif t is BookDelta:
        return book.apply_delta(event) is not False
    elif t is TopOfBook:
        if book.is_synced:
            return False
        book.clear()
        book.set_level(Side.BUY, event.bid_price, event.bid_qty)
        book.set_level(Side.SELL, event.ask_price, event.ask_qty)
    return True
