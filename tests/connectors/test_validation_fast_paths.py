"""FeedValidator's hot-path shortcuts decide exactly as the plain per-event checks."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.binance_recording import BINANCE_SPOT_BTCUSDT
from connectors.validation import FeedValidator, _first_bad_level, _levels_reason
from trading.events import BookDelta, BookSnapshot, TopOfBook

ODD_NUMBERS = st.sampled_from([0, -1, 1.5, float("nan"), True, None, "5"])
PRICES = st.one_of(st.integers(99_990, 100_010), st.integers(99_990, 100_010), ODD_NUMBERS)
SIZES = st.one_of(st.integers(1, 5), st.integers(1, 5), ODD_NUMBERS)


@st.composite
def tops(draw):
    return TopOfBook(
        ts=10**12,
        bid_price=draw(PRICES),
        bid_qty=draw(SIZES),
        ask_price=draw(PRICES),
        ask_qty=draw(SIZES),
        venue_ts=draw(st.sampled_from([0, 10**12 - 1, 1, 10**12 - 6_000_000_000])),
    )


@settings(max_examples=200, deadline=None)
@given(st.lists(tops(), min_size=1, max_size=30))
def test_top_of_book_check_equals_the_plain_check(events) -> None:
    fast = FeedValidator(BINANCE_SPOT_BTCUSDT, max_staleness_ns=5_000_000_000)
    plain = FeedValidator(BINANCE_SPOT_BTCUSDT, max_staleness_ns=5_000_000_000)
    for event in events:
        try:
            expected = plain._check(event, event.ts)
        except Exception:
            expected = "internal_error"
        assert fast.check(event, event.ts) == expected, event
    assert fast.stats.messages == len(events)
    assert fast.stats.accepted == len(events) - sum(fast.stats.rejects.values())


LEVEL_ITEMS = st.one_of(st.integers(-2, 5), st.integers(1, 10**9), ODD_NUMBERS)
LEVELS = st.one_of(
    st.lists(st.tuples(LEVEL_ITEMS, LEVEL_ITEMS), max_size=6),
    st.lists(st.tuples(st.integers(1, 10**9), st.integers(0, 10**9)), max_size=6),
    st.lists(st.lists(LEVEL_ITEMS, min_size=1, max_size=3).map(tuple), max_size=4),
)


@settings(max_examples=400, deadline=None)
@given(levels=LEVELS, allow_zero=st.booleans())
def test_level_batch_check_names_the_first_bad_level_like_the_loop(levels, allow_zero) -> None:
    try:
        expected: object = _first_bad_level(levels, allow_zero=allow_zero)
    except Exception as exc:
        expected = type(exc)
    try:
        got: object = _levels_reason(levels, allow_zero=allow_zero)
    except Exception as exc:
        got = type(exc)
    assert got == expected


def test_snapshot_and_delta_with_a_bad_level_are_rejected_with_its_reason() -> None:
    v = FeedValidator(BINANCE_SPOT_BTCUSDT, max_staleness_ns=5_000_000_000)
    assert v.check(BookSnapshot(1, ((100, 1),), ((101, 1),), sequence=5), 1) is None
    assert v.check(BookDelta(2, ((100, 0), (99, -1)), (), 6, 6), 2) == "bad_size"
    assert v.check(BookDelta(2, ((100, 0),), ((0, 1),), 6, 6), 2) == "bad_price"
    assert v.check(BookDelta(2, ((100, 0),), ((101, 2, 3),), 6, 6), 2) == "internal_error"
    assert v.check(BookDelta(2, ((100, 0),), ((101, 2),), 6, 6), 2) is None
