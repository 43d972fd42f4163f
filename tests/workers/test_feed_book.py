"""The feed's book keeps its depth on a real recorded stream that mixes diffs and tickers."""

from __future__ import annotations

import itertools

from connectors.binance_recording import RECORDINGS, iter_recording
from trading.book import OrderBook
from trading.events import BookDelta, TopOfBook, TradeTick
from workers.feeds import apply_to_book


def test_tickers_do_not_wipe_the_depth_of_a_synced_book():
    recording = RECORDINGS["binance-spot-btcusdt"]
    book = OrderBook()
    tickers = deltas = 0
    for event in itertools.islice(iter_recording(recording.paths, recording.instrument), 20_000):
        if isinstance(event, TradeTick):
            continue  # trades do not touch the book
        was_synced = book.is_synced
        changed = apply_to_book(book, event)
        if isinstance(event, TopOfBook) and was_synced:
            tickers += 1
            assert changed is False
            bids, asks = book.top(20)
            assert len(bids) == 20 and len(asks) == 20  # depth survives every ticker
        elif isinstance(event, BookDelta):
            deltas += 1
    assert tickers > 1000 and deltas > 100


def test_a_ticker_only_feed_builds_a_one_level_book():
    book = OrderBook()
    assert apply_to_book(book, TopOfBook(ts=1, bid_price=100, bid_qty=5, ask_price=101, ask_qty=7)) is True
    assert book.top(5) == ([(100, 5)], [(101, 7)])
