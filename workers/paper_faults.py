"""Fault injection for the paper venue in tests (``MM_PAPER_FAULTS``, read by :mod:`mmsite.env`)."""

from __future__ import annotations

import asyncio
import os
import random

from mmsite import env

STATUS_TEXT = {429: "429 Too Many Requests", 502: "502 Bad Gateway", 503: "503 Service Unavailable"}


class InjectedVenueError(Exception):
    """A fault injected for tests: the venue answered 429/5xx (nothing was done)."""


class PaperFaults:
    """Fault injection for tests: ``MM_PAPER_FAULTS="error=0.1,timeout=0.1,delay_ms=50,seed=1"``.

    ``error``: fraction of places/cancels answered with a 429/503 before anything is done
    (``status``: always that HTTP status instead of a random one of 429/503/502);
    ``timeout``: fraction of places whose response is lost *after* the venue took the order;
    ``drop``: fraction of places lost on their way *before* the venue got them: never answered
    and no error either, as a request that hangs until the client gives up (the caller's own
    timeout has to notice; a hedged bot's hedge timeout does);
    ``delay_ms``: time each place spends in flight.
    """

    def __init__(
        self,
        error: float = 0.0,
        timeout: float = 0.0,
        delay_ms: float = 0.0,
        seed: int = 1,
        status: int | None = None,
        drop: float = 0.0,
    ) -> None:
        self.error = error
        self.timeout = timeout
        self.delay_ms = delay_ms
        self.status = status
        self.drop = drop
        self._rng = random.Random(seed)

    @classmethod
    def from_env(cls, account_id: int | None = None) -> PaperFaults | None:
        """The faults of ``MM_PAPER_FAULTS`` for a venue of paper account ``account_id`` (none
        when the setting names another ``account``)."""
        values = env.paper_faults()
        if values is None or ("account" in values and values["account"] != account_id):
            return None
        return cls(
            error=float(values.get("error", 0)),
            timeout=float(values.get("timeout", 0)),
            delay_ms=float(values.get("delay_ms", 0)),
            seed=int(values.get("seed", os.getpid())),
            status=int(values["status"]) if "status" in values else None,
            drop=float(values.get("drop", 0)),
        )

    async def before(self, what: str) -> None:
        if self.delay_ms and what == "place":
            await asyncio.sleep(self.delay_ms / 1000)
        if self._rng.random() < self.error:
            code = (
                STATUS_TEXT.get(self.status, str(self.status))
                if self.status
                else self._rng.choice(("429 Too Many Requests", "503 Service Unavailable", "502 Bad Gateway"))
            )
            raise InjectedVenueError(f"{what}: HTTP {code} (injected)")

    def drop_place(self) -> bool:
        """Whether this place is lost before it reaches the venue (nothing done, no answer)."""
        return bool(self.drop) and self._rng.random() < self.drop

    def lose_response(self) -> bool:
        return self._rng.random() < self.timeout
