"""Simulated venues (``sim:<name>``) for the demo and tests when ``connectors.sim`` is absent.

Prices are a deterministic function of wall time and a seed, so every process that hosts a
``sim:*`` feed sees the same market: a shared slow random walk (a sum of seeded waves) that all
sim venues follow, plus per-venue divergence episodes (some minutes a venue drifts away from the
others by up to ~0.3 % and comes back) and small per-venue noise. Each venue streams a 10-level
book every 100 ms and public trades now and then, as :class:`~trading.events` values.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from collections.abc import AsyncIterator

from trading.events import BookSnapshot, MarketEvent, TradeTick
from trading.instruments import Instrument, Side
from trading.ports import FeedHealth

BASE_PRICE = 60_000.0
WAVES = ((3600.0, 0.004), (900.0, 0.002), (240.0, 0.0012), (60.0, 0.0006), (17.0, 0.0003))


def _unit(*parts: object) -> float:
    """A reproducible number in [0, 1) from the parts."""
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def sim_mid(venue: str, t: float, seed: int = 7) -> float:
    """The venue's mid price at wall time ``t`` (seconds)."""
    common = sum(a * math.sin(2 * math.pi * t / p + 6.283 * _unit(seed, p)) for p, a in WAVES)
    minute = int(t // 60)
    divergence = 0.0
    if _unit(seed, venue, "div", minute) < 0.35:  # about a third of the minutes diverge
        phase = (t % 60) / 60
        divergence = 0.003 * (2 * _unit(seed, venue, "amp", minute) - 1) * math.sin(math.pi * phase)
    noise = 0.00005 * (2 * _unit(seed, venue, "n", int(t * 10)) - 1)
    return BASE_PRICE * math.exp(common + divergence + noise)


class SimFeed:
    """A live-paced simulated feed for one instrument on ``sim:<name>`` (``MarketDataFeed``)."""

    def __init__(self, venue: str, instrument: Instrument, *, interval_s: float = 0.1, seed: int = 7) -> None:
        self.venue = venue
        self.instrument = instrument
        self.interval_s = interval_s
        self.seed = seed
        self._health = FeedHealth.CONNECTING
        self._trade_seq = 0

    @property
    def health(self) -> FeedHealth:
        return self._health

    async def connect(self) -> None:
        self._health = FeedHealth.LIVE

    async def close(self) -> None:
        self._health = FeedHealth.CLOSED

    def book_at(self, ts: int) -> BookSnapshot:
        """The simulated 10-level book at ``ts`` (ns)."""
        t = ts / 1e9
        inst = self.instrument
        mid = sim_mid(self.venue, t, self.seed)
        tick = float(inst.tick_size)
        half = max(1, round(mid * 0.00005 / tick))  # ~1 bp half spread
        centre = round(mid / tick)
        lot = float(inst.lot_size)
        bids, asks = [], []
        for i in range(10):
            step = half + i * max(1, half // 2)
            size_b = max(1, round((0.05 + 0.5 * _unit(self.venue, "qb", i, int(t * 10))) / lot))
            size_a = max(1, round((0.05 + 0.5 * _unit(self.venue, "qa", i, int(t * 10))) / lot))
            bids.append((centre - step, size_b))
            asks.append((centre + step, size_a))
        return BookSnapshot(ts=ts, bids=tuple(bids), asks=tuple(asks))

    async def events(self) -> AsyncIterator[MarketEvent]:
        if self._health is not FeedHealth.LIVE:
            await self.connect()
        while self._health is not FeedHealth.CLOSED:
            ts = time.time_ns()
            book = self.book_at(ts)
            yield book
            if _unit(self.venue, "trade", ts // 100_000_000) < 0.4:
                self._trade_seq += 1
                buy = _unit(self.venue, "side", ts) < 0.5
                price, qty = book.asks[0] if buy else book.bids[0]
                yield TradeTick(
                    ts=ts + 1,
                    price=price,
                    qty=max(1, qty // 4),
                    aggressor=Side.BUY if buy else Side.SELL,
                    trade_id=f"{self.venue}-{ts}",
                )
            await asyncio.sleep(self.interval_s - (time.time_ns() - ts) / 1e9 if self.interval_s > 0 else 0)
