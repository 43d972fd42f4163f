"""Simulated venues: synthetic markets from ``trading.synthetic`` played as live feeds.

- :class:`SimMarket` pulls one generator of ``(venue, event)`` pairs — several venues sharing
  one generator, so their prices are correlated exactly as the generator makes them — and
  paces it in real time (``speed`` x faster; ``speed=0`` means as fast as possible). Event
  times are re-based onto the clock: an event generated ``d`` ns after the first one is
  stamped ``start + d / speed``, so downstream staleness checks and the fill simulator see
  live-looking times.
- :class:`SimFeed` is one venue's :class:`trading.ports.MarketDataFeed` view of a SimMarket.
- :func:`single_venue_market` / :func:`multi_venue_market` build markets from the
  Avellaneda-Stoikov stream and from ``trading.synthetic.multivenue``, reproducible by seed.
  Both run forever.

Clock and sleep are injectable; tests run at full speed with a fake clock.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from typing import Any

from connectors.feed_support import EventQueue, FeedCounters
from trading.events import BookDelta, BookSnapshot, MarketEvent
from trading.instruments import Instrument
from trading.ports import FeedHealth


def _rebase(event: MarketEvent, ts: int) -> MarketEvent:
    return dataclasses.replace(event, ts=ts)


class SimMarket:
    """One synthetic generator fanned out to per-venue feeds, paced in real time."""

    def __init__(
        self,
        source: Iterable[tuple[str, MarketEvent]],
        *,
        speed: float = 1.0,
        clock_ns: Callable[[], int] = time.time_ns,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if speed < 0:
            raise ValueError(f"speed: {speed!r} must be >= 0 (0 = as fast as possible, 1 = real time)")
        self._source: Iterator[tuple[str, MarketEvent]] = iter(source)
        self.speed = speed
        self._clock_ns = clock_ns
        self._sleep = sleep
        self._subscribers: dict[str, list[EventQueue]] = {}
        self._task: asyncio.Task | None = None
        self._users = 0
        self.exhausted = False
        self.generated = 0

    def subscribe(self, venue: str) -> EventQueue:
        queue = EventQueue()
        self._subscribers.setdefault(venue, []).append(queue)
        return queue

    def unsubscribe(self, venue: str, queue: EventQueue) -> None:
        queues = self._subscribers.get(venue, [])
        if queue in queues:
            queues.remove(queue)

    async def start(self) -> None:
        self._users += 1
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="sim-market")

    async def stop(self) -> None:
        self._users -= 1
        if self._users <= 0 and self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        first_ts: int | None = None
        start_ns = self._clock_ns()
        try:
            for venue, event in self._source:
                self.generated += 1
                if first_ts is None:
                    first_ts = event.ts
                offset = event.ts - first_ts
                if self.speed > 0:
                    target = start_ns + int(offset / self.speed)
                    wait_ns = target - self._clock_ns()
                    if wait_ns > 0:
                        await self._sleep(wait_ns / 1e9)
                    stamped = _rebase(event, target)
                else:
                    stamped = _rebase(event, start_ns + offset)
                for queue in self._subscribers.get(venue, ()):
                    if self.speed > 0:
                        queue.put(stamped)  # live pacing: a slow consumer loses the oldest events
                    else:
                        await queue.put_wait(stamped)  # flat out: the generator waits for consumers
                if self.generated % 64 == 0:
                    await asyncio.sleep(0)  # let consumers run between bursts
        finally:
            self.exhausted = True
            for queues in self._subscribers.values():
                for queue in queues:
                    queue.close()


class SimFeed:
    """One venue of a :class:`SimMarket` as a MarketDataFeed."""

    def __init__(self, market: SimMarket, venue: str, instrument: Instrument) -> None:
        self.market = market
        self.venue = venue
        self.instrument = instrument
        self.stats = FeedCounters()
        self._queue = market.subscribe(venue)
        self._state = FeedHealth.CONNECTING

    @property
    def health(self) -> FeedHealth:
        if self._state is FeedHealth.LIVE and self.market.exhausted:
            return FeedHealth.CLOSED
        return self._state

    async def connect(self) -> None:
        await self.market.start()
        self._state = FeedHealth.LIVE

    async def close(self) -> None:
        if self._state is not FeedHealth.CLOSED:
            self._state = FeedHealth.CLOSED
            self.market.unsubscribe(self.venue, self._queue)
            await self.market.stop()
            self._queue.close()

    async def events(self) -> AsyncIterator[MarketEvent]:
        """The venue's events; book deltas before the first snapshot are skipped (counted)."""
        have_book = False
        async for event in self._queue.iterate():
            self.stats.received += 1
            if isinstance(event, BookSnapshot):
                have_book = True
            elif isinstance(event, BookDelta) and not have_book:
                self.stats.reject("waiting_for_snapshot")
                continue
            self.stats.emitted += 1
            self.stats.last_event_ns = event.ts
            yield event


def avellaneda_stoikov_forever(
    instrument: Instrument, *, venue: str = "sim", seed: int = 0, step_ns: int = 100_000_000, **kwargs: Any
) -> Iterator[tuple[str, MarketEvent]]:
    """The Avellaneda-Stoikov market as an endless stream: each finished horizon is followed by
    another (next derived seed) starting from the last mid, so a sim venue never runs dry."""
    from trading.synthetic.avellaneda_stoikov import ASParams, event_stream

    base = kwargs.pop("params", None) or ASParams()
    tick = float(instrument.tick_size)
    s0 = base.s0
    start_ts = 0
    episode = 0
    while True:
        params = dataclasses.replace(base, s0=s0)
        last_ts = start_ts
        for event in event_stream(
            instrument, params=params, seed=seed * 1_000_003 + episode, start_ts=start_ts, step_ns=step_ns, **kwargs
        ):
            last_ts = event.ts
            if isinstance(event, BookSnapshot) and event.bids and event.asks:
                s0 = (event.bids[0][0] + event.asks[0][0]) / 2 * tick
            yield venue, event
        if s0 <= base.s0 / 10:
            s0 = base.s0  # a random walk that wandered near zero restarts at the base price
        start_ts = last_ts + step_ns
        episode += 1


def single_venue_market(
    instrument: Instrument, *, venue: str = "sim", seed: int = 0, speed: float = 1.0, **kwargs: Any
) -> SimMarket:
    """An endless Avellaneda-Stoikov market on one venue (see :func:`avellaneda_stoikov_forever`)."""
    clock_kwargs = {k: kwargs.pop(k) for k in ("clock_ns", "sleep") if k in kwargs}
    source = avellaneda_stoikov_forever(instrument, venue=venue, seed=seed, **kwargs)
    return SimMarket(source, speed=speed, **clock_kwargs)


def multi_venue_market(
    instrument: Instrument,
    venues: Sequence[str | Any],
    *,
    seed: int = 0,
    speed: float = 1.0,
    snapshot_every: int = 50,
    **kwargs: Any,
) -> SimMarket:
    """Several correlated venues from :class:`trading.synthetic.multivenue.MultiVenueMarket`
    (one generator, one seed). ``venues`` are names or ``multivenue.VenueSpec``; a snapshot every
    ``snapshot_every`` steps lets a feed that joins late build its book."""
    from trading.synthetic.multivenue import MultiVenueMarket, VenueSpec

    clock_kwargs = {k: kwargs.pop(k) for k in ("clock_ns", "sleep") if k in kwargs}
    specs = [v if isinstance(v, VenueSpec) else VenueSpec(name=str(v)) for v in venues]
    generator = MultiVenueMarket(instrument, specs, seed=seed, snapshot_every=snapshot_every, **kwargs)
    return SimMarket(iter(generator), speed=speed, **clock_kwargs)
