"""Latency models for the fill simulation: how long an order takes to reach the venue and
how long the venue's answer takes to come back to us.

Injected into :class:`trading.fillsim.SimulatedExchange`, never hard-coded. All values are
integer nanoseconds. Models that draw from a distribution are seeded, so a backtest with the
same seed and input is identical.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Protocol


class LatencyModel(Protocol):
    """Where time goes between us and the venue (all in ns)."""

    def entry_ns(self, ts: int) -> int:
        """Delay for a new order or an amendment sent at ``ts`` to reach the matching engine."""
        ...

    def cancel_ns(self, ts: int) -> int:
        """Delay for a cancel sent at ``ts`` to reach the matching engine."""
        ...

    def response_ns(self, ts: int) -> int:
        """Delay for the venue's answer (ack, fill, cancel, reject) at ``ts`` to reach us."""
        ...


def _check_ns(field: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{field}: {value!r} is not accepted; give a whole number of nanoseconds >= 0")
    return value


class ConstantLatency:
    """The same delay every time. ``cancel_ns`` defaults to the entry delay."""

    def __init__(self, entry_ns: int = 0, response_ns: int = 0, cancel_ns: int | None = None) -> None:
        self._entry = _check_ns("entry_ns", entry_ns)
        self._response = _check_ns("response_ns", response_ns)
        self._cancel = self._entry if cancel_ns is None else _check_ns("cancel_ns", cancel_ns)

    def entry_ns(self, ts: int) -> int:
        return self._entry

    def cancel_ns(self, ts: int) -> int:
        return self._cancel

    def response_ns(self, ts: int) -> int:
        return self._response

    def __repr__(self) -> str:
        return f"ConstantLatency(entry_ns={self._entry}, response_ns={self._response}, cancel_ns={self._cancel})"


class RecordedLatency:
    """Delays drawn (with replacement, seeded) from recorded samples, e.g. measured round trips.

    ``response_samples`` and ``cancel_samples`` default to ``entry_samples``.
    """

    def __init__(
        self,
        entry_samples: Sequence[int],
        response_samples: Sequence[int] | None = None,
        cancel_samples: Sequence[int] | None = None,
        *,
        seed: int = 0,
    ) -> None:
        self._entry = self._validated("entry_samples", entry_samples)
        self._response = (
            self._entry if response_samples is None else self._validated("response_samples", response_samples)
        )
        self._cancel = self._entry if cancel_samples is None else self._validated("cancel_samples", cancel_samples)
        self._rng = random.Random(seed)

    @staticmethod
    def _validated(field: str, samples: Sequence[int]) -> tuple[int, ...]:
        values = tuple(samples)
        if not values:
            raise ValueError(f"{field}: empty; give at least one recorded latency in nanoseconds")
        for v in values:
            _check_ns(field, v)
        return values

    def _draw(self, samples: tuple[int, ...]) -> int:
        return samples[self._rng.randrange(len(samples))]

    def entry_ns(self, ts: int) -> int:
        return self._draw(self._entry)

    def cancel_ns(self, ts: int) -> int:
        return self._draw(self._cancel)

    def response_ns(self, ts: int) -> int:
        return self._draw(self._response)
