"""Pieces shared by every feed in ``connectors``: per-feed statistics, the validation seam and
the event queue that turns producer tasks into one ``events()`` iterator.

Validation goes through :class:`EventValidator` (``check(event, recv_ts) -> reason | None``,
optional ``reset()``), by default :class:`connectors.validation.FeedValidator` (stale, crossed,
outlier, sequence and size/price checks). :class:`FeedCounters` also counts what never reaches
the validator: messages refused while normalizing (off-tick, NaN, malformed frames).
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from connectors.validation import FeedValidator
from trading.events import MarketEvent
from trading.instruments import Instrument

_CLOSED = object()


class EventValidator(Protocol):
    def check(self, event: MarketEvent, recv_ts: int) -> str | None:
        """Return a rejection reason code, or None when the event is acceptable."""
        ...


@dataclass
class FeedCounters:
    """What a feed has done since it started: the numbers operators look at."""

    received: int = 0
    emitted: int = 0
    rejected: collections.Counter = field(default_factory=collections.Counter)
    reconnects: int = 0
    resyncs: int = 0
    sequence_gaps: int = 0
    errors: collections.Counter = field(default_factory=collections.Counter)
    last_error: str = ""
    last_event_ns: int = 0

    def reject(self, reason: str) -> None:
        self.rejected[reason] += 1

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly view for the UI and health checks."""
        return {
            "received": self.received,
            "emitted": self.emitted,
            "rejected": dict(self.rejected),
            "reconnects": self.reconnects,
            "resyncs": self.resyncs,
            "sequence_gaps": self.sequence_gaps,
            "errors": dict(self.errors),
            "last_error": self.last_error,
        }


def default_validator(instrument: Instrument, *, max_staleness_ns: int = 30 * 10**9) -> EventValidator:
    """The shared :class:`connectors.validation.FeedValidator` for one instrument."""
    return FeedValidator(instrument, max_staleness_ns=max_staleness_ns)


class EventQueue:
    """A queue with a close marker; ``iterate()`` ends when the queue is closed.

    Bounded (market data: when a consumer falls behind, the oldest event is dropped and
    counted in ``dropped``) or, with ``maxsize=0``, unbounded (order events: never dropped)."""

    def __init__(self, maxsize: int = 10_000) -> None:
        self._queue: asyncio.Queue = asyncio.Queue(maxsize=maxsize)
        self.dropped = 0

    def put(self, event: Any) -> None:
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            # A consumer that cannot keep up loses the oldest market data, never blocks the socket.
            self._queue.get_nowait()
            self.dropped += 1
            self._queue.put_nowait(event)

    async def put_wait(self, event: Any) -> None:
        """Put, waiting for room instead of dropping (for producers that can be slowed down)."""
        await self._queue.put(event)

    def close(self) -> None:
        self.put(_CLOSED)

    def drain(self) -> list[Any]:
        """Everything queued now, without waiting; a close marker is put back for ``iterate``."""
        out = []
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if item is _CLOSED:
                self._queue.put_nowait(item)
                break
            out.append(item)
        return out

    async def iterate(self) -> AsyncIterator[Any]:
        while True:
            item = await self._queue.get()
            if item is _CLOSED:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
