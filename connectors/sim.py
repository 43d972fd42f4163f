"""Simulated venues: :class:`trading.synthetic.market.SyntheticMarket` played as live feeds.

The generator is a function of time, so a feed needs no shared state: each process that hosts
``sim:alpha`` builds its own :class:`SimFeed` and publishes the same books and trades at the
same times as any other process would (a second host after a fail-over continues the same market).

- :class:`SimFeed` paces one venue of a market. At ``speed=1`` with no ``start_ts`` it plays the
  market at wall-clock time (``ts`` = now). Otherwise market time starts at ``start_ts`` and runs
  ``speed`` times faster than the clock (``speed=0``: as fast as possible), with event times
  re-based onto the clock so staleness checks and the fill simulator see live-looking times.
- :func:`hosted_market` / :func:`hosted_feed` / :func:`sim_mid`: the hosted ``sim:<name>`` venues
  of the demo and the paper bots (a BTC-like market around 60,000 with divergence episodes
  between venues for the arbitrage tracker), one seed for every process.

Clock and sleep are injectable; tests run at full speed with a fake clock.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from functools import lru_cache

from connectors.feed_support import FeedCounters
from trading.events import BookSnapshot, MarketEvent
from trading.instruments import Instrument
from trading.ports import FeedHealth
from trading.synthetic.market import SyntheticMarket, VenueProfile

HOSTED_SEED = 7
HOSTED_PRICE = 60_000.0
HOSTED_WAVES = ((3600.0, 0.004), (900.0, 0.002), (240.0, 0.0012), (60.0, 0.0006), (17.0, 0.0003))
_REFERENCE = Instrument.create(symbol="BTC/USDT", tick_size="0.01", lot_size="0.00001", venue="sim")


class SimFeed:
    """One venue of a :class:`SyntheticMarket` as a ``MarketDataFeed``, paced by the clock."""

    def __init__(
        self,
        market: SyntheticMarket,
        venue: str,
        *,
        speed: float = 1.0,
        start_ts: int | None = None,
        clock_ns: Callable[[], int] = time.time_ns,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        max_behind_ns: int = 1_000_000_000,
    ) -> None:
        if speed < 0:
            raise ValueError(f"speed: {speed!r} must be >= 0 (0 = as fast as possible, 1 = real time)")
        if venue not in market.venues:
            raise ValueError(f"venue: {venue!r} is not one of the market's venues {', '.join(market.venues)}")
        self.market = market
        self.venue = venue
        self.instrument = market.instrument
        self.speed = speed
        self.start_ts = start_ts
        self.stats = FeedCounters()
        self._clock_ns = clock_ns
        self._sleep = sleep
        self._max_behind_ns = max_behind_ns
        self._health = FeedHealth.CONNECTING

    @property
    def health(self) -> FeedHealth:
        return self._health

    async def connect(self) -> None:
        self._health = FeedHealth.LIVE

    async def close(self) -> None:
        self._health = FeedHealth.CLOSED

    def book_at(self, ts: int) -> BookSnapshot:
        """The venue's book at market time ``ts`` (ns)."""
        return self.market.book_at(self.venue, ts)

    async def events(self) -> AsyncIterator[MarketEvent]:
        """Book (a snapshot first, then deltas) and trades, step after step until closed. A
        consumer that falls more than ``max_behind_ns`` behind a live pace skips ahead to the
        current step with a fresh snapshot."""
        if self._health is not FeedHealth.LIVE:
            await self.connect()
        market, step_ns, speed = self.market, self.market.step_ns, self.speed
        wall0 = self._clock_ns()
        wall_time = speed == 1 and self.start_ts is None
        t0 = wall0 if self.start_ts is None else self.start_ts
        k = -(-t0 // step_ns)
        snapshot = True
        produced = 0
        while self._health is not FeedHealth.CLOSED:
            for _venue, event in market.step_events(k, (self.venue,), snapshot=snapshot):
                if speed > 0:
                    target = wall0 + int((event.ts - t0) / speed)
                    wait_ns = target - self._clock_ns()
                    if wait_ns > 0:
                        await self._sleep(wait_ns / 1e9)
                else:
                    target = wall0 + event.ts - t0
                if self._health is FeedHealth.CLOSED:
                    return
                if not wall_time:
                    event = dataclasses.replace(event, ts=target)
                self.stats.received += 1
                self.stats.emitted += 1
                self.stats.last_event_ns = event.ts
                yield event
            snapshot = False
            k += 1
            produced += 1
            if speed > 0:
                behind = self._clock_ns() - (wall0 + int((k * step_ns - t0) / speed))
                if behind > self._max_behind_ns:
                    self.stats.reject("skipped_behind")
                    k += int(behind * speed) // step_ns
                    snapshot = True
            elif produced % 64 == 0:
                await asyncio.sleep(0)  # flat out: let consumers run between bursts


def hosted_profile(venue: str, instrument: Instrument) -> VenueProfile:
    """A hosted sim venue: 10 levels from about 1 bp off the mid, about 0.3 of the base asset each,
    about 4 trades a second, divergence episodes of up to 30 bps in about a third of the minutes."""
    tick, lot = float(instrument.tick_size), float(instrument.lot_size)
    half = max(1, round(HOSTED_PRICE * 0.00005 / tick))
    return VenueProfile(
        venue,
        noise_bps=0.3,
        half_spread_ticks=half,
        level_step_ticks=max(1, half // 2),
        levels=10,
        touch_qty=max(1.0, 0.3 / lot),
        qty_growth=0.0,
        level_refresh=1.0,
        trade_rate=4.0,
        trade_qty=max(1.0, 0.08 / lot),
        episode_share=0.35,
        episode_bps=30.0,
    )


@lru_cache(maxsize=64)
def hosted_market(venues: Sequence[str], instrument: Instrument, *, seed: int = HOSTED_SEED) -> SyntheticMarket:
    """The hosted sim market for ``venues`` (a tuple) in ``instrument``'s ticks and lots. Cached:
    the market is a function of time, so feeds of one process may share it (and its hour tables)."""
    return SyntheticMarket(
        instrument,
        [hosted_profile(v, instrument) for v in venues],
        seed=seed,
        start_price=HOSTED_PRICE,
        volatility_bps=1.0,
        waves=HOSTED_WAVES,
        snapshot_every=50,
    )


def hosted_feed(venue: str, instrument: Instrument, **kwargs) -> SimFeed:
    """The live feed of a hosted ``sim:<name>`` venue (wall-clock market time by default)."""
    return SimFeed(hosted_market((venue,), instrument), venue, **kwargs)


def sim_mid(venue: str, t: float, seed: int = HOSTED_SEED) -> float:
    """A hosted sim venue's mid price at wall time ``t`` (seconds)."""
    return hosted_market((venue,), _REFERENCE, seed=seed).mid(venue, int(t * 1e9))
