"""Performance measures for backtests: time-weighted quoting and inventory statistics, Sharpe
ratio and drawdown of a sampled equity curve. Money stays in integer cash units; ratios are floats.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

NS_PER_YEAR = 365 * 24 * 3600 * 1_000_000_000  # crypto trades every day of the year


@dataclass(frozen=True, slots=True)
class InventoryStats:
    """Position in lots: sample statistics at every event, plus the time-weighted mean."""

    mean: float
    std: float
    min: int
    max: int
    time_weighted_mean: float


@dataclass(frozen=True, slots=True)
class QuotingStats:
    """Fractions of the measured time."""

    quote_uptime: float  # both sides quoted
    bid_at_top: float  # our best bid at (or better than) the market's best bid
    ask_at_top: float
    time_at_top: float  # both of our sides at the top at once


class TimeWeightedTracker:
    """Accumulates, between consecutive observations, how long each state lasted.

    The state observed at ``ts`` is assumed to hold until the next observation.
    """

    __slots__ = (
        "_ask_top",
        "_bid_top",
        "_both",
        "_last_ts",
        "_max",
        "_min",
        "_n",
        "_position",
        "_state",
        "_sum",
        "_sumsq",
        "_top",
        "_total",
        "_tw_position",
    )

    def __init__(self) -> None:
        self._last_ts: int | None = None
        self._state = (0, False, False, False)
        self._total = 0
        self._both = 0
        self._bid_top = 0
        self._ask_top = 0
        self._top = 0
        self._tw_position = 0
        self._n = 0
        self._sum = 0
        self._sumsq = 0
        self._min = 0
        self._max = 0

    def observe(
        self,
        ts: int,
        position: int,
        our_bid: int | None,
        our_ask: int | None,
        best_bid: int | None,
        best_ask: int | None,
    ) -> None:
        """Record the state at ``ts`` (positions in lots, prices in ticks)."""
        last = self._last_ts
        if last is not None and ts > last:
            dt = ts - last
            pos, both, bid_top, ask_top = self._state
            self._total += dt
            self._tw_position += pos * dt
            if both:
                self._both += dt
            if bid_top:
                self._bid_top += dt
            if ask_top:
                self._ask_top += dt
            if bid_top and ask_top:
                self._top += dt
        self._last_ts = ts
        bid_top = our_bid is not None and (best_bid is None or our_bid >= best_bid)
        ask_top = our_ask is not None and (best_ask is None or our_ask <= best_ask)
        self._state = (position, our_bid is not None and our_ask is not None, bid_top, ask_top)
        if self._n == 0:
            self._min = self._max = position
        elif position < self._min:
            self._min = position
        elif position > self._max:
            self._max = position
        self._n += 1
        self._sum += position
        self._sumsq += position * position

    def note_position(self, position: int) -> None:
        """Count a position seen between observations in the min/max (e.g. right after a fill)."""
        if self._n == 0:
            return
        if position < self._min:
            self._min = position
        elif position > self._max:
            self._max = position

    def inventory(self) -> InventoryStats:
        n = self._n
        if n == 0:
            return InventoryStats(0.0, 0.0, 0, 0, 0.0)
        mean = self._sum / n
        var = max(self._sumsq / n - mean * mean, 0.0)
        tw = self._tw_position / self._total if self._total else float(self._state[0])
        return InventoryStats(mean, math.sqrt(var), self._min, self._max, tw)

    def quoting(self) -> QuotingStats:
        total = self._total
        if not total:
            return QuotingStats(0.0, 0.0, 0.0, 0.0)
        return QuotingStats(self._both / total, self._bid_top / total, self._ask_top / total, self._top / total)


def sharpe_ratio(equity: Sequence[int], interval_ns: int) -> float | None:
    """Annualised Sharpe ratio (risk-free rate 0) of per-interval equity returns.

    Returns are ``(E[i] - E[i-1]) / E[i-1]`` when every equity value is positive; when the bot
    started with no capital (equity around 0) they are the per-interval PnL changes instead, which
    gives the same ratio for a constant capital base. Annualised by ``sqrt(intervals per year)``
    with a 365-day year. ``None`` with fewer than three samples or no variation.
    """
    if len(equity) < 3 or interval_ns <= 0:
        return None
    if all(e > 0 for e in equity):
        returns = [(b - a) / a for a, b in itertools.pairwise(equity)]
    else:
        returns = [float(b - a) for a, b in itertools.pairwise(equity)]
    n = len(returns)
    mean = sum(returns) / n
    var = sum((r - mean) ** 2 for r in returns) / (n - 1)
    if var <= 0:
        return None
    return mean / math.sqrt(var) * math.sqrt(NS_PER_YEAR / interval_ns)


def max_drawdown(equity: Sequence[int]) -> tuple[int, float]:
    """Largest peak-to-trough fall: (cash units, fraction of the peak; 0.0 when the peak is <= 0)."""
    peak: int | None = None
    worst = 0
    worst_fraction = 0.0
    for e in equity:
        if peak is None or e > peak:
            peak = e
        fall = peak - e
        if fall > worst:
            worst = fall
            worst_fraction = fall / peak if peak > 0 else 0.0
    return worst, worst_fraction
