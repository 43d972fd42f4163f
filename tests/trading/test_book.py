"""Order book: levels, queries, sequence rules (Binance spot and futures)."""

from __future__ import annotations

import pytest

from trading.book import CrossedBook, OrderBook, SequenceGap
from trading.events import BookDelta, BookSnapshot
from trading.instruments import Side


def _book() -> OrderBook:
    book = OrderBook()
    book.apply_snapshot(
        BookSnapshot(
            ts=1,
            bids=((100, 5), (99, 7), (97, 1)),
            asks=((101, 2), (103, 4), (104, 9)),
            sequence=10,
        )
    )
    return book


def test_snapshot_sets_best_prices_sizes_and_sequence() -> None:
    book = _book()
    assert (
        book.best_bid(),
        book.best_bid_qty(),
        book.best_ask(),
        book.best_ask_qty(),
    ) == (100, 5, 101, 2)
    assert book.sequence == 10
    assert book.spread() == 1
    assert book.mid() == 100.5
    assert book.is_synced


def test_snapshot_replaces_previous_book() -> None:
    book = _book()
    book.apply_snapshot(BookSnapshot(ts=2, bids=((50, 1),), asks=((60, 1), (61, 0)), sequence=20))
    assert book.top(10) == ([(50, 1)], [(60, 1)])
    assert book.qty_at(Side.BUY, 100) == 0


def test_removing_best_bid_promotes_next_level() -> None:
    book = _book()
    book.set_level(Side.BUY, 100, 0)
    assert book.best_bid() == 99
    book.set_level(Side.SELL, 101, 0)
    book.set_level(Side.SELL, 103, 0)
    assert book.best_ask() == 104


def test_removing_missing_level_is_a_no_op() -> None:
    book = _book()
    book.set_level(Side.SELL, 150, 0)
    assert book.level_count(Side.SELL) == 3


def test_negative_quantity_is_rejected_with_the_value() -> None:
    book = _book()
    with pytest.raises(ValueError, match="-3"):
        book.set_level(Side.BUY, 98, -3)


def test_empty_book_queries_return_none_or_zero() -> None:
    book = OrderBook()
    assert book.best_bid() is None and book.best_ask() is None
    assert book.mid() is None and book.microprice() is None and book.spread() is None
    assert book.best_bid_qty() == 0 and book.best_ask_qty() == 0
    assert book.depth_within(1.0) == (0, 0)
    assert book.imbalance() == 0.0
    assert book.cost_to_trade(Side.BUY, 5) == (0, 0)
    assert not book.is_crossed()


def test_microprice_leans_toward_the_thinner_side() -> None:
    book = _book()  # 5 lots bid at 100, 2 lots ask at 101: buyers dominate, price leans up
    assert book.microprice() == pytest.approx((100 * 2 + 101 * 5) / 7)
    assert book.microprice() > book.mid()


def test_top_returns_best_first() -> None:
    bids, asks = _book().top(2)
    assert bids == [(100, 5), (99, 7)]
    assert asks == [(101, 2), (103, 4)]


def test_cost_to_trade_walks_levels_and_stops_when_filled() -> None:
    book = _book()
    assert book.cost_to_trade(Side.BUY, 5) == (5, 2 * 101 + 3 * 103)
    assert book.cost_to_trade(Side.SELL, 6) == (6, 5 * 100 + 1 * 99)


def test_cost_to_trade_reports_partial_fill_when_book_runs_out() -> None:
    assert _book().cost_to_trade(Side.SELL, 100) == (13, 500 + 693 + 97)


def test_depth_within_counts_levels_inside_percent_band() -> None:
    book = OrderBook()
    book.apply_levels(Side.BUY, [(10000, 1), (9950, 2), (9900, 4)])
    book.apply_levels(Side.SELL, [(10010, 1), (10060, 2), (10200, 4)])
    # mid 10005, 1 % band = 9904.95 .. 10105.05
    assert book.depth_within(1.0) == (3, 3)
    assert book.depth_within(10.0) == (7, 7)


def test_imbalance_uses_top_levels() -> None:
    book = _book()
    assert book.imbalance(1) == pytest.approx((5 - 2) / 7)
    assert book.imbalance(5) == pytest.approx((13 - 15) / 28)


def test_crossed_book_is_detected_and_check_raises() -> None:
    book = _book()
    book.set_level(Side.BUY, 101, 3)
    assert book.is_crossed()
    with pytest.raises(CrossedBook):
        book.check_not_crossed()


def test_depth_limit_trims_far_levels_and_keeps_best() -> None:
    book = OrderBook(depth_limit=10)
    book.apply_levels(Side.BUY, [(p, 1) for p in range(1, 200)])
    book.apply_levels(Side.SELL, [(p, 1) for p in range(300, 500)])
    assert book.level_count(Side.BUY) <= 23
    assert book.best_bid() == 199 and book.best_ask() == 300
    assert book.top(10)[0][-1] == (190, 1)


# --- sequences ------------------------------------------------------------------------------
def test_spot_first_delta_must_cover_snapshot_plus_one() -> None:
    book = _book()  # sequence 10
    assert book.apply_delta(BookDelta(ts=2, bids=((100, 6),), asks=(), first_sequence=8, last_sequence=12))
    assert book.sequence == 12 and book.best_bid_qty() == 6


def test_first_delta_beyond_snapshot_plus_one_is_a_gap() -> None:
    book = _book()
    with pytest.raises(SequenceGap) as info:
        book.apply_delta(BookDelta(ts=2, bids=(), asks=(), first_sequence=12, last_sequence=15))
    assert info.value.expected == 11
    assert not book.is_synced


def test_stale_deltas_are_ignored_and_leave_book_unchanged() -> None:
    book = _book()
    assert book.apply_delta(BookDelta(ts=2, bids=((100, 99),), asks=(), first_sequence=3, last_sequence=10)) is False
    assert book.best_bid_qty() == 5 and book.sequence == 10


def test_spot_deltas_must_be_contiguous() -> None:
    book = _book()
    book.apply_delta(BookDelta(ts=2, bids=(), asks=(), first_sequence=11, last_sequence=12))
    book.apply_delta(BookDelta(ts=3, bids=(), asks=(), first_sequence=13, last_sequence=14))
    with pytest.raises(SequenceGap):
        book.apply_delta(BookDelta(ts=4, bids=(), asks=(), first_sequence=16, last_sequence=18))
    # unsynced until the next snapshot, even for a delta that would have chained
    with pytest.raises(SequenceGap):
        book.apply_delta(BookDelta(ts=5, bids=(), asks=(), first_sequence=15, last_sequence=18))
    book.apply_snapshot(BookSnapshot(ts=6, bids=((1, 1),), asks=((2, 1),), sequence=20))
    assert book.apply_delta(BookDelta(ts=7, bids=(), asks=(), first_sequence=21, last_sequence=21))


def test_futures_deltas_chain_on_prev_sequence() -> None:
    book = _book()  # sequence 10
    book.apply_delta(BookDelta(ts=2, bids=(), asks=(), first_sequence=9, last_sequence=40, prev_sequence=7))
    book.apply_delta(
        BookDelta(
            ts=3,
            bids=(),
            asks=(),
            first_sequence=55,
            last_sequence=60,
            prev_sequence=40,
        )
    )
    assert book.sequence == 60
    with pytest.raises(SequenceGap) as info:
        book.apply_delta(
            BookDelta(
                ts=4,
                bids=(),
                asks=(),
                first_sequence=70,
                last_sequence=80,
                prev_sequence=65,
            )
        )
    assert (info.value.expected, info.value.received) == (60, 65)


def test_delta_before_any_snapshot_is_a_gap() -> None:
    with pytest.raises(SequenceGap):
        OrderBook().apply_delta(BookDelta(ts=1, bids=(), asks=(), first_sequence=1, last_sequence=2))


def test_unsequenced_deltas_apply_without_checks() -> None:
    book = OrderBook()
    assert book.apply_delta(BookDelta(ts=1, bids=((5, 1),), asks=((6, 1),)))
    assert (book.best_bid(), book.best_ask()) == (5, 6)


def test_snapshot_round_trip() -> None:
    book = _book()
    copy = OrderBook()
    copy.apply_snapshot(book.snapshot(ts=9))
    assert copy.top(10) == book.top(10) and copy.sequence == book.sequence


def test_futures_snapshot_id_equal_to_an_events_final_id_syncs() -> None:
    """Binance futures: the event whose ``u`` equals the snapshot id is already in the snapshot;
    the next one chains on it through ``pu`` although its ``U`` is far past ``S + 1`` (futures
    update ids are not contiguous). Such a stream must sync."""
    book = _book()  # snapshot id 10
    assert (
        book.apply_delta(BookDelta(ts=2, bids=(), asks=(), first_sequence=4, last_sequence=10, prev_sequence=3))
        is False
    )
    applied = book.apply_delta(
        BookDelta(ts=3, bids=((100, 6),), asks=(), first_sequence=17, last_sequence=25, prev_sequence=10)
    )
    assert applied and book.is_synced and book.sequence == 25 and book.best_bid_qty() == 6


def test_futures_first_event_after_snapshot_must_chain_or_cover_it() -> None:
    book = _book()  # snapshot id 10
    with pytest.raises(SequenceGap):
        book.apply_delta(BookDelta(ts=3, bids=(), asks=(), first_sequence=17, last_sequence=25, prev_sequence=12))
    assert not book.is_synced
