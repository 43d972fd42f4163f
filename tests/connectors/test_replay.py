"""Replay venue: looping, live-looking timestamps, speed control, health, validation."""

from __future__ import annotations

import gzip
import itertools
from pathlib import Path

import pytest

from connectors.binance_recording import BINANCE_SPOT_BTCUSDT, RECORDINGS, iter_recording
from connectors.replay import ReplayFeed
from connectors.validation import FeedValidator
from trading.book import OrderBook
from trading.events import BookDelta, BookSnapshot, TopOfBook, TradeTick
from trading.ports import FeedHealth, MarketDataFeed

SPOT = RECORDINGS["binance-spot-btcusdt"]


@pytest.fixture(scope="module")
def short_spot(tmp_path_factory) -> Path:
    """The first 3,000 lines of the real spot recording (includes its snapshot)."""
    path = tmp_path_factory.mktemp("rec") / "spot_head.gz"
    with gzip.open(SPOT.paths[0], "rb") as src, gzip.open(path, "wb") as dst:
        for i, line in enumerate(src):
            if i >= 3000:
                break
            dst.write(line)
    return path


class FakeClock:
    """Wall clock that only moves when the feed sleeps."""

    def __init__(self, start: int) -> None:
        self.now = start
        self.slept = 0.0

    def now_ns(self) -> int:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept += seconds
        self.now += int(seconds * 1e9)


async def _collect(feed: ReplayFeed) -> list:
    await feed.connect()
    return [event async for event in feed.events()]


def test_replay_feed_satisfies_the_market_data_port(short_spot) -> None:
    assert isinstance(ReplayFeed(BINANCE_SPOT_BTCUSDT, [short_spot]), MarketDataFeed)


async def test_looping_replay_restarts_with_snapshot_and_keeps_time_increasing(short_spot) -> None:
    one_pass = list(iter_recording([short_spot], BINANCE_SPOT_BTCUSDT))
    feed = ReplayFeed(BINANCE_SPOT_BTCUSDT, [short_spot], speed=0, max_loops=3)
    events = await _collect(feed)
    assert len(events) == 3 * len(one_pass)
    snapshots = [i for i, e in enumerate(events) if type(e) is BookSnapshot]
    assert snapshots == [0, len(one_pass), 2 * len(one_pass)]
    stamps = [e.ts for e in events]
    assert all(a < b for a, b in itertools.pairwise(stamps))
    assert feed.loops_completed == 3 and feed.health is FeedHealth.CLOSED


async def test_looping_replay_feeds_a_book_without_gaps_or_crossing(short_spot) -> None:
    feed = ReplayFeed(BINANCE_SPOT_BTCUSDT, [short_spot], speed=0, max_loops=2)
    await feed.connect()
    book = OrderBook()
    applied = crossed = 0
    async for event in feed.events():
        if type(event) is BookSnapshot:
            book.apply_snapshot(event)
        elif type(event) is BookDelta:
            assert book.apply_delta(event)  # raises SequenceGap on a gap
            applied += 1
            crossed += book.is_crossed()
    assert applied > 100 and crossed == 0


async def test_real_speed_replay_sleeps_the_recorded_duration_and_stamps_wall_time(short_spot) -> None:
    one_pass = list(iter_recording([short_spot], BINANCE_SPOT_BTCUSDT))
    recorded_s = (one_pass[-1].ts - one_pass[0].ts) / 1e9
    clock = FakeClock(start=2_000_000_000_000_000_000)
    feed = ReplayFeed(BINANCE_SPOT_BTCUSDT, [short_spot], speed=1.0, loop=False, now_ns=clock.now_ns, sleep=clock.sleep)
    events = await _collect(feed)
    assert events[0].ts == 2_000_000_000_000_000_000
    assert clock.slept == pytest.approx(recorded_s, abs=0.01)
    assert all(abs(e.ts - clock.now) < 10**10 for e in events[-5:])  # last events stamped near "now"
    assert events[-1].ts - events[0].ts == pytest.approx(recorded_s * 1e9, rel=1e-3)


async def test_ten_times_speed_compresses_time_tenfold(short_spot) -> None:
    one_pass = list(iter_recording([short_spot], BINANCE_SPOT_BTCUSDT))
    recorded_ns = one_pass[-1].ts - one_pass[0].ts
    clock = FakeClock(start=10**18)
    feed = ReplayFeed(
        BINANCE_SPOT_BTCUSDT, [short_spot], speed=10.0, loop=False, now_ns=clock.now_ns, sleep=clock.sleep
    )
    events = await _collect(feed)
    assert events[-1].ts - events[0].ts == pytest.approx(recorded_ns / 10, rel=1e-3)
    assert clock.slept == pytest.approx(recorded_ns / 10 / 1e9, abs=0.01)


async def test_venue_time_keeps_its_recorded_offset(short_spot) -> None:
    original = [e for e in iter_recording([short_spot], BINANCE_SPOT_BTCUSDT) if type(e) is TradeTick][:20]
    feed = ReplayFeed(BINANCE_SPOT_BTCUSDT, [short_spot], speed=0, loop=False)
    replayed = [e for e in await _collect(feed) if type(e) is TradeTick][:20]
    for before, after in zip(original, replayed, strict=True):
        assert after.venue_ts - after.ts == before.venue_ts - before.ts
        assert (after.price, after.qty, after.trade_id) == (before.price, before.qty, before.trade_id)


async def test_close_stops_the_event_stream(short_spot) -> None:
    feed = ReplayFeed(BINANCE_SPOT_BTCUSDT, [short_spot], speed=0)
    assert feed.health is FeedHealth.CONNECTING
    await feed.connect()
    assert feed.health is FeedHealth.LIVE
    seen = 0
    async for _ in feed.events():
        seen += 1
        if seen == 50:
            await feed.close()
    assert seen == 50 and feed.health is FeedHealth.CLOSED


async def test_validated_replay_of_real_data_rejects_nothing_and_counts_everything(short_spot) -> None:
    validator = FeedValidator(BINANCE_SPOT_BTCUSDT, max_staleness_ns=5_000_000_000)
    feed = ReplayFeed(BINANCE_SPOT_BTCUSDT, [short_spot], speed=0, max_loops=2, validator=validator)
    events = await _collect(feed)
    assert feed.stats.messages == len(events) and feed.stats.rejected == 0
    assert feed.stats.latency_percentiles()["receipt_to_processed_p50_ns"] is not None
    assert {type(e) for e in events} == {BookSnapshot, BookDelta, TopOfBook, TradeTick}


def test_bad_arguments_are_refused_by_name(short_spot) -> None:
    with pytest.raises(ValueError, match="speed"):
        ReplayFeed(BINANCE_SPOT_BTCUSDT, [short_spot], speed=-1)
    with pytest.raises(ValueError, match="paths"):
        ReplayFeed(BINANCE_SPOT_BTCUSDT, ["/nonexistent.gz"])
    with pytest.raises(ValueError, match="accepted"):
        ReplayFeed.from_recording("kraken-xyz")


def test_from_recording_uses_the_shipped_files() -> None:
    feed = ReplayFeed.from_recording("binance-usdm-btcusdt", speed=0)
    assert feed.instrument.symbol == "BTC/USDT:USDT" and len(feed.paths) == 1


async def test_validator_attached_after_creation_owns_the_feed_stats(short_spot) -> None:
    feed = ReplayFeed(BINANCE_SPOT_BTCUSDT, [short_spot], speed=0, loop=False)
    feed.validator = FeedValidator(BINANCE_SPOT_BTCUSDT, max_staleness_ns=60_000_000_000)
    events = await _collect(feed)
    assert feed.stats is feed.validator.stats
    assert feed.stats.messages == len(events) > 0
    assert feed.stats.latency_percentiles()["exchange_to_receipt_p50_ns"] is not None
