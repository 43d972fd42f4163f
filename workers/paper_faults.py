"""Fault injection for the paper venue in tests (``MM_PAPER_FAULTS``, read by :mod:`mmsite.env`)."""

from __future__ import annotations

import asyncio
import os
import random

from mmsite import env


class InjectedVenueError(Exception):
    """A fault injected for tests: the venue answered 429/5xx (nothing was done)."""


class PaperFaults:
    """Fault injection for tests: ``MM_PAPER_FAULTS="error=0.1,timeout=0.1,delay_ms=50,seed=1"``.

    ``error``: fraction of places/cancels answered with a 429/503 before anything is done;
    ``timeout``: fraction of places whose response is lost *after* the venue took the order;
    ``delay_ms``: time each place spends in flight.
    """

    def __init__(self, error: float = 0.0, timeout: float = 0.0, delay_ms: float = 0.0, seed: int = 1) -> None:
        self.error = error
        self.timeout = timeout
        self.delay_ms = delay_ms
        self._rng = random.Random(seed)

    @classmethod
    def from_env(cls) -> PaperFaults | None:
        values = env.paper_faults()
        if values is None:
            return None
        return cls(
            error=float(values.get("error", 0)),
            timeout=float(values.get("timeout", 0)),
            delay_ms=float(values.get("delay_ms", 0)),
            seed=int(values.get("seed", os.getpid())),
        )

    async def before(self, what: str) -> None:
        if self.delay_ms and what == "place":
            await asyncio.sleep(self.delay_ms / 1000)
        if self._rng.random() < self.error:
            code = self._rng.choice(("429 Too Many Requests", "503 Service Unavailable", "502 Bad Gateway"))
            raise InjectedVenueError(f"{what}: HTTP {code} (injected)")

    def lose_response(self) -> bool:
        return self._rng.random() < self.timeout
