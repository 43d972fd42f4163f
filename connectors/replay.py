"""Replay venue: a recorded exchange stream served as a live market-data feed.

:class:`ReplayFeed` implements ``trading.ports.MarketDataFeed``. It replays a recording (read by
:func:`connectors.binance_recording.iter_recording` — the same reader the backtester uses) at
real speed, faster, or as fast as possible, and loops forever. Timestamps are shifted so the
stream looks live: at ``speed > 0`` an event's ``ts`` is the wall-clock time it is emitted
(recorded gaps divided by ``speed``); at ``speed == 0`` the recorded spacing is kept from the
moment of connection. Every loop starts with a fresh :class:`~trading.events.BookSnapshot` and
timestamps keep increasing across loops. ``venue_ts`` keeps its recorded offset from ``ts``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path

from connectors.binance_recording import RECORDINGS, ReaderStats, iter_recording
from connectors.validation import FeedStats, FeedValidator
from trading.events import MarketEvent
from trading.instruments import Instrument
from trading.ports import FeedHealth

__all__ = ["ReplayFeed", "iter_recording"]  # iter_recording: the synchronous reader the backtester uses

LOOP_GAP_NS = 1_000_000  # recorded-time pause between the end of one loop and the next snapshot


class ReplayFeed:
    """Serve a recording as a live feed for one instrument.

    ``speed``: 1.0 real time, 10.0 ten times faster, 0 as fast as possible.
    ``loop``: start again (with a fresh snapshot) at the end; ``max_loops`` caps it (for tests).
    ``validator``: screens each event; rejected events are counted in :attr:`stats` and dropped.
    ``now_ns``/``sleep`` are injectable so tests need not wait.
    """

    def __init__(
        self,
        instrument: Instrument,
        paths: Sequence[Path | str],
        *,
        speed: float = 1.0,
        loop: bool = True,
        max_loops: int | None = None,
        validator: FeedValidator | None = None,
        now_ns: Callable[[], int] = time.time_ns,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if speed < 0:
            raise ValueError(f"speed: {speed!r} must be 0 (as fast as possible) or a positive factor such as 1.0")
        if not paths:
            raise ValueError("paths: empty; give the recording files in order")
        missing = [str(p) for p in paths if not Path(p).is_file()]
        if missing:
            raise ValueError(f"paths: {missing} do not exist; give recorded .gz files")
        self.instrument = instrument
        self.paths = tuple(Path(p) for p in paths)
        self.speed = float(speed)
        self.loop = loop
        self.max_loops = max_loops
        self.validator = validator
        self._own_stats = FeedStats()
        self.reader_stats = ReaderStats()
        self.loops_completed = 0
        self._now_ns = now_ns
        self._sleep = sleep
        self._health = FeedHealth.CONNECTING
        self._anchor_ns: int | None = None

    @classmethod
    def from_recording(cls, name: str, **kwargs: object) -> ReplayFeed:
        """Build a feed for a shipped recording by name (see ``binance_recording.RECORDINGS``)."""
        try:
            recording = RECORDINGS[name]
        except KeyError:
            raise ValueError(f"recording: {name!r} is not shipped; accepted: {sorted(RECORDINGS)}") from None
        return cls(recording.instrument, recording.paths, **kwargs)  # type: ignore[arg-type]

    @property
    def stats(self) -> FeedStats:
        """Counters and latencies: the validator's when there is one (it may be set after creation)."""
        return self.validator.stats if self.validator is not None else self._own_stats

    @property
    def health(self) -> FeedHealth:
        """``CONNECTING`` before :meth:`connect`, ``LIVE`` while replaying, ``CLOSED`` after."""
        return self._health

    async def connect(self) -> None:
        """Start the replay clock: the first event is stamped with the current time."""
        self._anchor_ns = self._now_ns()
        self._health = FeedHealth.LIVE

    async def close(self) -> None:
        """Stop the replay; :meth:`events` ends at the next event."""
        self._health = FeedHealth.CLOSED

    async def events(self) -> AsyncIterator[MarketEvent]:
        """Yield validated events, time-shifted to look live, until closed (or loops run out)."""
        if self._anchor_ns is None:
            await self.connect()
        anchor = self._anchor_ns or 0
        speed = self.speed
        elapsed_base = 0  # recorded ns already played in earlier loops
        last_ts = 0
        since_yield = 0
        while self._health is not FeedHealth.CLOSED:
            self.reader_stats = ReaderStats()
            first_rec: int | None = None
            rec_ts = 0
            if self.validator is not None:
                self.validator.reset()  # a loop restart is a resync: sequences and prices restart
            for event in iter_recording(self.paths, self.instrument, stats=self.reader_stats):
                if self._health is FeedHealth.CLOSED:
                    return
                rec_ts = event.ts
                if first_rec is None:
                    first_rec = rec_ts
                elapsed = elapsed_base + rec_ts - first_rec
                ts = anchor + (int(elapsed / speed) if speed > 0 else elapsed)
                if ts <= last_ts:
                    ts = last_ts + 1  # strictly increasing, even for events recorded in the same ns
                last_ts = ts
                if speed > 0:
                    wait_ns = ts - self._now_ns()
                    if wait_ns > 1_000_000:
                        await self._sleep(wait_ns / 1e9)
                        since_yield = 0
                else:
                    since_yield += 1
                    if since_yield >= 1000:
                        await self._sleep(0)  # let other tasks run during a flat-out replay
                        since_yield = 0
                venue_ts = event.venue_ts
                shifted = dataclasses.replace(event, ts=ts, venue_ts=venue_ts + ts - rec_ts if venue_ts else 0)
                if self.validator is not None:
                    reason = self.validator.check(shifted, recv_ts=ts)
                    self.stats.observe_latency(venue_ts=shifted.venue_ts, recv_ts=ts, processed_ts=self._now_ns())
                    if reason is not None:
                        if reason == "sequence_gap":
                            self.stats.resyncs += 1
                        continue
                else:
                    self.stats.record(None)
                yield shifted
            self.loops_completed += 1
            if first_rec is None:
                raise ValueError(f"paths: {list(map(str, self.paths))} hold no depth snapshot to replay from")
            elapsed_base += rec_ts - first_rec + LOOP_GAP_NS
            if not self.loop or (self.max_loops is not None and self.loops_completed >= self.max_loops):
                break
        self._health = FeedHealth.CLOSED
