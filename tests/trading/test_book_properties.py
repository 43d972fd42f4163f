"""Property tests: the book agrees with a naive dict model under random updates."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trading.book import OrderBook, SequenceGap
from trading.events import BookDelta, BookSnapshot
from trading.instruments import Side

prices = st.integers(min_value=1, max_value=60)
qtys = st.integers(min_value=0, max_value=5)
levels = st.lists(st.tuples(prices, qtys), max_size=12)


def _model_apply(model: dict[int, int], updates: list[tuple[int, int]]) -> None:
    for p, q in updates:
        if q:
            model[p] = q
        else:
            model.pop(p, None)


@settings(max_examples=200, deadline=None)
@given(
    snap_bids=levels,
    snap_asks=levels,
    deltas=st.lists(st.tuples(levels, levels), max_size=15),
)
def test_book_matches_naive_model(snap_bids, snap_asks, deltas) -> None:
    book = OrderBook()
    bids: dict[int, int] = {}
    asks: dict[int, int] = {}
    _model_apply(bids, snap_bids)
    _model_apply(asks, snap_asks)
    book.apply_snapshot(BookSnapshot(ts=0, bids=tuple(bids.items()), asks=tuple(asks.items()), sequence=100))
    seq = 100
    for i, (db, da) in enumerate(deltas):
        assert book.apply_delta(
            BookDelta(
                ts=i,
                bids=tuple(db),
                asks=tuple(da),
                first_sequence=seq + 1,
                last_sequence=seq + 3,
            )
        )
        seq += 3
        _model_apply(bids, db)
        _model_apply(asks, da)
        assert book.best_bid() == (max(bids) if bids else None)
        assert book.best_ask() == (min(asks) if asks else None)
    want_bids = sorted(bids.items(), reverse=True)
    want_asks = sorted(asks.items())
    assert book.top(1000) == (want_bids, want_asks)
    assert book.levels(Side.BUY) == want_bids
    assert book.is_crossed() == bool(bids and asks and max(bids) >= min(asks))
    assert book.sequence == seq


@settings(max_examples=200, deadline=None)
@given(
    bid_prices=st.sets(st.integers(1, 50), max_size=10),
    ask_prices=st.sets(st.integers(51, 100), max_size=10),
)
def test_uncrossed_input_gives_bid_below_ask(bid_prices, ask_prices) -> None:
    book = OrderBook()
    book.apply_levels(Side.BUY, [(p, 1) for p in bid_prices])
    book.apply_levels(Side.SELL, [(p, 1) for p in ask_prices])
    if bid_prices and ask_prices:
        assert book.best_bid() < book.best_ask()
        assert book.spread() > 0
    assert not book.is_crossed()


@settings(max_examples=200, deadline=None)
@given(
    asks=st.dictionaries(st.integers(1, 100), st.integers(1, 9), max_size=15),
    qty=st.integers(0, 120),
)
def test_cost_to_trade_equals_walking_sorted_levels(asks, qty) -> None:
    book = OrderBook()
    book.apply_levels(Side.SELL, asks.items())
    remaining, filled, cost = qty, 0, 0
    for price in sorted(asks):
        take = min(remaining, asks[price])
        filled += take
        cost += take * price
        remaining -= take
    assert book.cost_to_trade(Side.BUY, qty) == (filled, cost)


@settings(max_examples=200, deadline=None)
@given(
    spans=st.lists(st.integers(1, 4), min_size=1, max_size=20),
    skip_at=st.integers(0, 19),
)
def test_missing_update_ids_are_always_detected(spans, skip_at) -> None:
    book = OrderBook()
    book.apply_snapshot(BookSnapshot(ts=0, bids=((1, 1),), asks=((2, 1),), sequence=0))
    seq = 0
    for i, span in enumerate(spans):
        first = seq + 1 + (1 if i == skip_at else 0)
        delta = BookDelta(ts=i, bids=(), asks=(), first_sequence=first, last_sequence=first + span)
        if i == skip_at:
            try:
                book.apply_delta(delta)
            except SequenceGap:
                return
            raise AssertionError("gap not detected")
        book.apply_delta(delta)
        seq = first + span


@settings(max_examples=100, deadline=None)
@given(count=st.integers(1, 10), replay_from=st.integers(0, 9))
def test_replayed_old_deltas_are_ignored(count, replay_from) -> None:
    book = OrderBook()
    book.apply_snapshot(BookSnapshot(ts=0, bids=(), asks=(), sequence=0))
    sent = []
    for i in range(count):
        delta = BookDelta(
            ts=i,
            bids=((i + 1, i + 1),),
            asks=(),
            first_sequence=i + 1,
            last_sequence=i + 1,
        )
        sent.append(delta)
        assert book.apply_delta(delta)
    before = book.top(100)
    for delta in sent[min(replay_from, count - 1) :]:
        assert book.apply_delta(delta) is False
    assert book.top(100) == before


def _take(levels: list[tuple[int, int]], qty: int) -> tuple[int, int]:
    filled = cost = 0
    for price, lots in levels:
        take = min(lots, qty - filled)
        filled += take
        cost += take * price
        if filled == qty:
            break
    return filled, cost


deep_levels = st.lists(st.tuples(st.integers(min_value=1, max_value=600), st.integers(0, 5)), max_size=90)


@settings(max_examples=150, deadline=None)
@given(
    snap=st.dictionaries(st.integers(1, 600), st.integers(1, 5), max_size=500),
    deltas=st.lists(st.tuples(deep_levels, deep_levels), min_size=1, max_size=25),
    n=st.integers(1, 700),
    qty=st.integers(1, 2000),
    pct=st.sampled_from([0.1, 1.0, 10.0, 100.0]),
)
def test_deep_book_with_a_price_window_matches_naive_model(snap, deltas, n, qty, pct) -> None:
    """Books deeper than the sorted window (hundreds of levels, diffs landing at any depth):
    every query agrees with a dict model, also after the window is cut back and refilled."""
    book = OrderBook()
    bids = {p: q for p, q in snap.items() if p <= 300}
    asks = {p: q for p, q in snap.items() if p > 300}
    book.apply_snapshot(BookSnapshot(ts=0, bids=tuple(bids.items()), asks=tuple(asks.items()), sequence=1))
    for i, (db, da) in enumerate(deltas):
        db = [(p, q) for p, q in db if p <= 300]
        da = [(p, q) for p, q in da if p > 300]
        assert book.apply_delta(
            BookDelta(ts=i, bids=tuple(db), asks=tuple(da), first_sequence=i + 2, last_sequence=i + 2)
        )
        _model_apply(bids, db)
        _model_apply(asks, da)
        want_bids = sorted(bids.items(), reverse=True)
        want_asks = sorted(asks.items())
        assert book.best_bid() == (want_bids[0][0] if bids else None)
        assert book.best_ask() == (want_asks[0][0] if asks else None)
        assert book.top(5) == (want_bids[:5], want_asks[:5])
        if i % 3 == 0:  # queries behind the window sort the side; keep some steps without them
            assert book.top(n) == (want_bids[:n], want_asks[:n])
            assert book.cost_to_trade(Side.BUY, qty) == _take(want_asks, qty)
            assert book.cost_to_trade(Side.SELL, qty) == _take(want_bids, qty)
            if bids and asks and want_bids[0][0] < want_asks[0][0]:
                mid = (want_bids[0][0] + want_asks[0][0]) / 2
                band = mid * pct / 100
                assert book.depth_within(pct) == (
                    sum(q for p, q in bids.items() if p >= mid - band),
                    sum(q for p, q in asks.items() if p <= mid + band),
                )
    assert book.levels(Side.BUY) == sorted(bids.items(), reverse=True)
    assert book.levels(Side.SELL) == sorted(asks.items())


@pytest.mark.parametrize("seed", range(6))
def test_deep_book_following_a_drifting_market_matches_naive_model(seed: int) -> None:
    """A market that trends through hundreds of levels: sweeps empty the window from the top
    (refills), deep levels come and go behind it, new levels land ahead of it (cuts)."""
    rnd = random.Random(seed)
    book = OrderBook()
    mid = 5_000
    bids = {p: rnd.randint(1, 9) for p in range(mid - 800, mid)}
    asks = {p: rnd.randint(1, 9) for p in range(mid + 1, mid + 801)}
    book.apply_snapshot(BookSnapshot(ts=0, bids=tuple(bids.items()), asks=tuple(asks.items()), sequence=1))
    drift = rnd.choice([-1, 1])
    for i in range(400):
        if i % 50 == 0:
            drift = -drift
        mid += drift * rnd.randint(0, 40)
        db = [(p, 0) for p in list(bids) if p >= mid]  # swept
        da = [(p, 0) for p in list(asks) if p <= mid]
        db += [(rnd.randint(mid - 1000, mid - 1), rnd.choice([0, 0, 1, 5])) for _ in range(40)]
        da += [(rnd.randint(mid + 1, mid + 1000), rnd.choice([0, 0, 1, 5])) for _ in range(40)]
        db += [(p, rnd.randint(1, 9)) for p in range(mid - 30, mid)]  # the touch refills
        da += [(p, rnd.randint(1, 9)) for p in range(mid + 1, mid + 31)]
        rnd.shuffle(db)
        rnd.shuffle(da)
        assert book.apply_delta(
            BookDelta(ts=i, bids=tuple(db), asks=tuple(da), first_sequence=i + 2, last_sequence=i + 2)
        )
        _model_apply(bids, db)
        _model_apply(asks, da)
        want_bids = sorted(bids.items(), reverse=True)
        want_asks = sorted(asks.items())
        assert book.top(10) == (want_bids[:10], want_asks[:10]), i
        if i % 37 == 0:
            assert book.cost_to_trade(Side.BUY, 3_000) == _take(want_asks, 3_000)
            assert book.cost_to_trade(Side.SELL, 3_000) == _take(want_bids, 3_000)
            assert book.top(300) == (want_bids[:300], want_asks[:300])
    assert book.levels(Side.BUY) == sorted(bids.items(), reverse=True)
    assert book.levels(Side.SELL) == sorted(asks.items())
