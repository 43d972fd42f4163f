"""FeedValidator reject reasons and FeedStats (connectors.validation)."""

from __future__ import annotations

import math

import pytest

from connectors.validation import FeedStats, FeedValidator
from trading.events import BookDelta, BookSnapshot, Timer, TopOfBook, TradeTick
from trading.instruments import Instrument, Side

BTC = Instrument.create(symbol="BTC/USDT", tick_size="0.01", lot_size="0.00001")
SEC = 1_000_000_000


def _validator(**kw) -> FeedValidator:
    return FeedValidator(BTC, max_staleness_ns=5 * SEC, **kw)


def _snap(seq: int = 100, bid: int = 6_000_000, ask: int = 6_000_001) -> BookSnapshot:
    return BookSnapshot(ts=1, bids=((bid, 10), (bid - 1, 5)), asks=((ask, 7),), sequence=seq)


def _trade(price: int, ts: int = 1) -> TradeTick:
    return TradeTick(ts=ts, price=price, qty=3, aggressor=Side.BUY, venue_ts=ts)


def test_good_snapshot_delta_top_and_trade_are_accepted_and_counted() -> None:
    v = _validator()
    assert v.check(_snap(), recv_ts=2) is None
    assert v.check(BookDelta(ts=2, bids=((6_000_000, 0),), asks=(), first_sequence=99, last_sequence=101), 2) is None
    assert v.check(TopOfBook(ts=3, bid_price=6_000_000, bid_qty=1, ask_price=6_000_001, ask_qty=1), 3) is None
    assert v.check(_trade(6_000_001), recv_ts=3) is None
    assert (v.stats.messages, v.stats.accepted, v.stats.rejected) == (4, 4, 0)


@pytest.mark.parametrize("price", [0, -5, math.nan, 1.5, 2**63, 10**400])
def test_bad_trade_prices_are_rejected(price) -> None:
    assert _validator().check(TradeTick(ts=1, price=price, qty=1, aggressor=Side.SELL), 1) == "bad_price"


@pytest.mark.parametrize("qty", [0, -1, math.nan, 2**63, 10**400])
def test_bad_trade_sizes_are_rejected(qty) -> None:
    assert _validator().check(TradeTick(ts=1, price=100, qty=qty, aggressor=Side.SELL), 1) == "bad_size"


def test_delta_level_with_zero_size_is_a_removal_but_negative_is_rejected() -> None:
    v = _validator()
    v.check(_snap(), 1)
    assert v.check(BookDelta(ts=2, bids=((5, 0),), asks=(), first_sequence=101, last_sequence=101), 2) is None
    assert v.check(BookDelta(ts=2, bids=((5, -1),), asks=(), first_sequence=102, last_sequence=102), 2) == "bad_size"
    assert v.check(BookDelta(ts=2, bids=(), asks=((0, 1),), first_sequence=102, last_sequence=102), 2) == "bad_price"


def test_book_levels_and_tops_beyond_int64_counts_are_rejected() -> None:
    v = _validator()
    assert v.check(BookSnapshot(ts=1, bids=((10, 1),), asks=((10**400, 1),), sequence=1), 1) == "bad_price"
    assert v.check(BookSnapshot(ts=1, bids=((10, 2**63),), asks=((11, 1),), sequence=1), 1) == "bad_size"
    assert v.check(_snap(), 1) is None
    big = BookDelta(ts=2, bids=((5, 10**30),), asks=(), first_sequence=101, last_sequence=101)
    assert v.check(big, 2) == "bad_size"
    top = TopOfBook(ts=3, bid_price=6_000_000, bid_qty=1, ask_price=2**63, ask_qty=1)
    assert v.check(top, 3) == "bad_price"
    top = TopOfBook(ts=3, bid_price=6_000_000, bid_qty=2**63, ask_price=6_000_001, ask_qty=1)
    assert v.check(top, 3) == "bad_size"


def test_snapshot_with_zero_size_level_is_rejected() -> None:
    snap = BookSnapshot(ts=1, bids=((10, 0),), asks=((11, 1),), sequence=1)
    assert _validator().check(snap, 1) == "bad_size"


def test_crossed_snapshot_and_top_of_book_are_rejected() -> None:
    v = _validator()
    assert v.check(_snap(bid=101, ask=100), 1) == "crossed"
    assert v.check(TopOfBook(ts=1, bid_price=100, bid_qty=1, ask_price=100, ask_qty=1), 1) == "crossed"


def test_top_of_book_with_zero_size_is_rejected() -> None:
    assert _validator().check(TopOfBook(ts=1, bid_price=99, bid_qty=0, ask_price=100, ask_qty=1), 1) == "bad_size"


def test_stale_message_is_rejected_by_venue_time() -> None:
    v = _validator()
    trade = TradeTick(ts=1, price=100, qty=1, aggressor=Side.BUY, venue_ts=10 * SEC)
    assert v.check(trade, recv_ts=16 * SEC) == "stale"
    assert v.check(trade, recv_ts=14 * SEC) is None


def test_sequence_gap_is_reported_and_needs_a_new_snapshot() -> None:
    v = _validator()
    v.check(_snap(seq=100), 1)
    assert v.check(BookDelta(ts=2, bids=(), asks=(), first_sequence=101, last_sequence=105), 2) is None
    assert v.check(BookDelta(ts=3, bids=(), asks=(), first_sequence=107, last_sequence=110), 3) == "sequence_gap"
    assert v.check(BookDelta(ts=4, bids=(), asks=(), first_sequence=111, last_sequence=112), 4) == "sequence_gap"
    v.check(_snap(seq=200), 5)
    assert v.check(BookDelta(ts=6, bids=(), asks=(), first_sequence=201, last_sequence=202), 6) is None
    assert v.stats.rejects["sequence_gap"] == 2


def test_futures_prev_sequence_break_is_a_gap() -> None:
    v = _validator()
    v.check(_snap(seq=100), 1)
    assert v.check(BookDelta(ts=2, bids=(), asks=(), first_sequence=90, last_sequence=120, prev_sequence=80), 2) is None
    assert (
        v.check(BookDelta(ts=3, bids=(), asks=(), first_sequence=130, last_sequence=140, prev_sequence=120), 3) is None
    )
    bad = BookDelta(ts=4, bids=(), asks=(), first_sequence=150, last_sequence=160, prev_sequence=145)
    assert v.check(bad, 4) == "sequence_gap"


def test_replayed_delta_is_a_duplicate() -> None:
    v = _validator()
    v.check(_snap(seq=100), 1)
    delta = BookDelta(ts=2, bids=(), asks=(), first_sequence=101, last_sequence=105)
    assert v.check(delta, 2) is None
    assert v.check(delta, 3) == "duplicate"


def test_delta_before_snapshot_is_a_gap() -> None:
    delta = BookDelta(ts=2, bids=(), asks=(), first_sequence=101, last_sequence=105)
    assert _validator().check(delta, 2) == "sequence_gap"


def test_price_jump_far_outside_recent_volatility_is_an_outlier() -> None:
    v = _validator()
    price = 6_000_000
    for i in range(100):
        price += 5 if i % 2 else -4
        assert v.check(_trade(price), 1) is None
    assert v.check(_trade(price * 2), 1) == "outlier"
    assert v.check(_trade(price + 3), 1) is None  # the reference price was not moved by the outlier


def test_small_moves_under_the_floor_are_never_outliers() -> None:
    v = _validator()
    for _ in range(50):
        v.check(_trade(1_000_000), 1)  # zero volatility
    assert v.check(_trade(1_004_000), 1) is None  # +0.4 % < 0.5 % floor


def test_confirmed_jump_is_accepted_after_consecutive_agreeing_prints() -> None:
    v = _validator(outlier_confirmations=3)
    for _ in range(50):
        v.check(_trade(1_000_000), 1)
    assert v.check(_trade(1_100_000), 1) == "outlier"
    assert v.check(_trade(1_100_010), 1) == "outlier"
    assert v.check(_trade(1_100_020), 1) is None
    assert v.check(_trade(1_100_030), 1) is None


def test_one_bad_message_never_raises_out_of_check() -> None:
    v = _validator()
    assert v.check(BookDelta(ts=1, bids=(("x",),), asks=()), 1) == "internal_error"  # type: ignore[arg-type]
    assert v.check(Timer(ts=1), 1) == "unsupported"  # type: ignore[arg-type]
    assert v.check(None, 1) == "unsupported"  # type: ignore[arg-type]
    assert v.stats.messages == 3


def test_validator_rejects_bad_configuration_by_name() -> None:
    with pytest.raises(ValueError, match="max_staleness_ns"):
        FeedValidator(BTC, max_staleness_ns=0)


def test_feed_stats_latency_percentiles_over_rolling_window() -> None:
    stats = FeedStats(window=100)
    for i in range(1, 201):
        stats.observe_latency(venue_ts=1000, recv_ts=1000 + i, processed_ts=1000 + i + 2 * i)
    lat = stats.latency_percentiles()
    assert lat["exchange_to_receipt_p50_ns"] == 150
    assert lat["exchange_to_receipt_p99_ns"] == 199
    assert lat["receipt_to_processed_p50_ns"] == 300
    stats.record(None)
    stats.record("stale")
    summary = stats.as_dict()
    assert summary["rejects"] == {"stale": 1} and summary["accepted"] == 1 and summary["messages"] == 2


def test_empty_feed_stats_report_no_latency() -> None:
    assert FeedStats().latency_percentiles()["exchange_to_receipt_p99_ns"] is None
