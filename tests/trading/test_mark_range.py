"""The marks a paper perpetual's liquidation check judges (trading.perp_liquidation.MarkRange)
and the mid of a snapshot the host skips as superseded (workers.codec.snapshot_mid2)."""

from __future__ import annotations

from trading.book import OrderBook
from trading.events import BookSnapshot
from trading.perp_liquidation import MarkRange
from workers import codec


def test_the_range_keeps_the_lowest_and_highest_mark_until_taken():
    marks = MarkRange()
    assert marks.take() == (None, None) and marks.take(120) == (120, 120)
    for m2 in (120, 96, 130, 118):
        marks.note(m2)
    assert marks.take(119) == (96, 130)  # the current mark is part of the range
    assert marks.take(119) == (119, 119)  # taken: it starts again
    book = OrderBook()
    book.apply_snapshot(BookSnapshot(1, ((100, 5),), ((104, 5),)))
    marks.note_book(book)
    book.apply_snapshot(BookSnapshot(2, ((100, 5),), ()))  # one-sided: no mark
    marks.note_book(book)
    assert marks.take() == (204, 204)


def test_a_skipped_snapshots_mid_is_read_from_its_encoding():
    raw = codec.encode_snapshot(1, [(99, 1), (100, 2)], [(105, 1), (103, 4)])
    assert codec.snapshot_mid2(raw) == 203  # best bid 100 + best ask 103, whatever the level order
    assert codec.snapshot_mid2(codec.encode_snapshot(1, [(100, 1)], [])) == 0  # one-sided
    assert codec.snapshot_mid2(codec.encode_snapshot(1, [(104, 1)], [(103, 1)])) == 0  # crossed
    assert codec.snapshot_mid2(b'["S",1,[') == 0  # malformed
