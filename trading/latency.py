"""Latency models for the fill simulation: how long an order takes to reach the venue and
how long the venue's answer takes to come back to us.

Injected into :class:`trading.fillsim.SimulatedExchange`, never hard-coded. All values are
integer nanoseconds. Models that draw from a distribution are seeded, so a backtest with the
same seed and input is identical.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from itertools import pairwise
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


QUANTILE_POINTS = 101  # p0, p1, ..., p100


def quantile_table(samples: Sequence[int], points: int = QUANTILE_POINTS) -> tuple[int, ...]:
    """``points`` evenly spaced quantiles (p0 .. p100) of ``samples``, linear between order
    statistics (numpy's default method), rounded to whole nanoseconds."""
    values = sorted(_check_ns("samples", v) for v in samples)
    if not values:
        raise ValueError("samples: empty; give at least one measured latency in nanoseconds")
    if points < 2:
        raise ValueError(f"points: {points!r} is not accepted; give at least 2")
    out = []
    last = len(values) - 1
    for i in range(points):
        pos = last * i / (points - 1)
        lo = int(pos)
        hi = min(lo + 1, last)
        out.append(round(values[lo] + (values[hi] - values[lo]) * (pos - lo)))
    return tuple(out)


class EmpiricalLatency:
    """Round trips drawn from measured distributions, reproducibly by seed.

    ``place_ack`` and ``cancel_ack`` are quantile tables (see :func:`quantile_table`) of the
    measured time from sending a place (a cancel) to its acknowledgement; a draw is the inverse
    CDF at a seeded uniform, linear between table points. The answer comes back in
    ``response_ns`` (constant, by default half the fastest place round trip) and the rest of the
    drawn round trip is spent on the way in, so a simulated place is acknowledged after exactly
    the drawn round trip and the simulated round trips have the measured distribution.
    """

    def __init__(
        self,
        place_ack: Sequence[int],
        cancel_ack: Sequence[int] | None = None,
        *,
        response_ns: int | None = None,
        seed: int = 0,
    ) -> None:
        self.place_ack = self._table("place_ack", place_ack)
        self.cancel_ack = self.place_ack if cancel_ack is None else self._table("cancel_ack", cancel_ack)
        fastest = min(self.place_ack[0], self.cancel_ack[0])
        self._response = fastest // 2 if response_ns is None else _check_ns("response_ns", response_ns)
        if self._response > fastest:
            raise ValueError(
                f"response_ns: {response_ns} is not accepted; give at most the fastest round trip ({fastest} ns)"
            )
        self.seed = seed
        self._rng = random.Random(seed)

    @staticmethod
    def _table(field: str, table: Sequence[int]) -> tuple[int, ...]:
        values = tuple(table)
        if len(values) < 2:
            raise ValueError(f"{field}: give a quantile table of at least 2 points (p0 .. p100) in nanoseconds")
        for v in values:
            _check_ns(field, v)
        if any(b < a for a, b in pairwise(values)):
            raise ValueError(f"{field}: quantiles must not decrease from p0 to p100")
        return values

    def _draw(self, table: tuple[int, ...]) -> int:
        pos = self._rng.random() * (len(table) - 1)
        lo = int(pos)
        hi = min(lo + 1, len(table) - 1)
        return round(table[lo] + (table[hi] - table[lo]) * (pos - lo))

    def round_trip_ns(self, table: tuple[int, ...]) -> int:
        """One draw from ``table`` (for checks and reports)."""
        return self._draw(table)

    def entry_ns(self, ts: int) -> int:
        return self._draw(self.place_ack) - self._response

    def cancel_ns(self, ts: int) -> int:
        return self._draw(self.cancel_ack) - self._response

    def response_ns(self, ts: int) -> int:
        return self._response

    def __repr__(self) -> str:
        p = self.place_ack
        return (
            f"EmpiricalLatency(place_ack p50={p[len(p) // 2]} ns, cancel_ack p50={self.cancel_ack[len(self.cancel_ack) // 2]}"
            f" ns, response_ns={self._response}, seed={self.seed})"
        )
