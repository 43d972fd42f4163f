"""Clocks are injected into the core; the core never reads the wall clock itself."""

from __future__ import annotations

from typing import Protocol


class Clock(Protocol):
    def now_ns(self) -> int:
        """Nanoseconds since the epoch."""
        ...


class ManualClock:
    """A clock that only moves when told to: for backtests and tests."""

    def __init__(self, start_ns: int = 0) -> None:
        self._now = start_ns

    def now_ns(self) -> int:
        return self._now

    def set(self, ts_ns: int) -> None:
        if ts_ns < self._now:
            raise ValueError(f"ts_ns: {ts_ns} is before the clock's time {self._now}; time never goes back")
        self._now = ts_ns

    def advance(self, delta_ns: int) -> None:
        self.set(self._now + delta_ns)
