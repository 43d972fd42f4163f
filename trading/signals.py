"""Online market signals for strategies: volatility, EWMA, trend, liquidity, order arrival.

Every estimator is fed explicitly with ``ts`` (ns) and values; none reads a clock and none is
random. Prices may be in any unit (ticks or quote currency) — estimates come out in the same
unit — unless an estimator says it works on relative (log) returns.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections import deque
from itertools import repeat
from operator import itemgetter, mul, sub
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:  # pragma: no cover
    from trading.book import OrderBook

NS = 1_000_000_000


class TimeEwma:
    """Exponentially weighted average in *time*: an observation's weight halves every ``halflife_s``.

    Irregular event spacing is handled: the decay applied is ``0.5 ** (dt / halflife)``.
    """

    def __init__(self, halflife_s: float) -> None:
        if not halflife_s > 0:
            raise ValueError(f"halflife_s: {halflife_s!r} must be greater than 0")
        self.halflife_s = halflife_s
        self.value: float | None = None
        self._last_ts: int | None = None

    def update(self, ts: int, x: float) -> float:
        """Add an observation at ``ts`` and return the new average."""
        if self.value is None or self._last_ts is None:
            self.value = x
        else:
            dt = max(ts - self._last_ts, 0) / NS
            keep = 0.5 ** (dt / self.halflife_s)
            self.value = keep * self.value + (1.0 - keep) * x
        self._last_ts = ts
        return self.value


class MidVolatility:
    """Volatility of the mid price from its changes, per square root of a second.

    The mid is sampled when at least ``interval_s`` has passed since the previous sample; each
    sample adds ``(change)^2`` and its elapsed time ``dt``. The variance per second is
    ``sum(change^2) / sum(dt)`` over a rolling ``window`` of samples, or over exponentially
    decayed sums with ``halflife_s`` (in seconds). With ``relative=True`` changes are log
    returns, so ``sigma`` is a fraction of price per sqrt(second); otherwise ``sigma`` is in the
    unit the mid is given in per sqrt(second) — the Avellaneda–Stoikov ``sigma``.
    """

    def __init__(
        self,
        *,
        interval_s: float = 1.0,
        halflife_s: float | None = 60.0,
        window: int | None = None,
        relative: bool = False,
        min_samples: int = 10,
    ) -> None:
        if not interval_s > 0:
            raise ValueError(f"interval_s: {interval_s!r} must be greater than 0")
        if (halflife_s is None) == (window is None):
            raise ValueError("give exactly one of halflife_s (EWMA) or window (rolling samples)")
        self.interval_s = interval_s
        self.relative = relative
        self.min_samples = min_samples
        self.samples = 0
        self._halflife = halflife_s
        self._rolling: deque[tuple[float, float]] | None = deque(maxlen=window) if window else None
        self._sum_sq = 0.0
        self._sum_dt = 0.0
        self._last_ts: int | None = None
        self._last_mid: float | None = None

    def update(self, ts: int, mid: float) -> None:
        """Feed the current mid at ``ts``; samples at most once per ``interval_s``."""
        if mid is None or (self.relative and not mid > 0):
            return
        if self._last_ts is None or self._last_mid is None:
            self._last_ts, self._last_mid = ts, mid
            return
        dt = (ts - self._last_ts) / NS
        if dt < self.interval_s:
            return
        change = math.log(mid / self._last_mid) if self.relative else mid - self._last_mid
        self._last_ts, self._last_mid = ts, mid
        self.samples += 1
        if self._rolling is not None:
            if len(self._rolling) == self._rolling.maxlen:
                old_sq, old_dt = self._rolling[0]
                self._sum_sq -= old_sq
                self._sum_dt -= old_dt
            self._rolling.append((change * change, dt))
            self._sum_sq += change * change
            self._sum_dt += dt
        else:
            assert self._halflife is not None
            keep = 0.5 ** (dt / self._halflife)
            self._sum_sq = keep * self._sum_sq + change * change
            self._sum_dt = keep * self._sum_dt + dt

    @property
    def ready(self) -> bool:
        """Whether enough samples were seen for the estimate to mean something."""
        return self.samples >= self.min_samples and self._sum_dt > 0

    @property
    def sigma(self) -> float | None:
        """Standard deviation of mid changes per sqrt(second), or ``None`` while warming up."""
        if not self.ready:
            return None
        return math.sqrt(max(self._sum_sq, 0.0) / self._sum_dt)

    def sigma_over(self, seconds: float) -> float | None:
        """Volatility scaled to a horizon of ``seconds`` (square-root-of-time rule)."""
        s = self.sigma
        return None if s is None else s * math.sqrt(seconds)


class TrendSignal:
    """Signed trend of the mid as a fraction of price (positive = rising).

    ``method="ema"``: ``(ema_fast - ema_slow) / ema_slow`` with time-based EMAs (half-lives in
    seconds). ``method="regression"``: least-squares slope of the mid over the last
    ``window_s`` seconds, times ``window_s``, divided by the mean mid — the fractional move the
    fitted line makes over the window. ``strength`` is the absolute value.
    """

    def __init__(
        self,
        *,
        method: Literal["ema", "regression"] = "ema",
        fast_s: float = 10.0,
        slow_s: float = 60.0,
        window_s: float = 60.0,
        min_samples: int = 10,
    ) -> None:
        if method not in ("ema", "regression"):
            raise ValueError(f"method: {method!r} is not accepted; accepted: 'ema', 'regression'")
        self.method = method
        self.window_s = window_s
        self.min_samples = min_samples
        self.samples = 0
        self._fast = TimeEwma(fast_s)
        self._slow = TimeEwma(slow_s)
        self._points: deque[tuple[int, float]] = deque()

    def update(self, ts: int, mid: float) -> None:
        """Feed the current mid at ``ts``."""
        self.samples += 1
        if self.method == "ema":
            self._fast.update(ts, mid)
            self._slow.update(ts, mid)
            return
        self._points.append((ts, mid))
        horizon = ts - int(self.window_s * NS)
        while self._points and self._points[0][0] < horizon:
            self._points.popleft()

    @property
    def ready(self) -> bool:
        return self.samples >= self.min_samples

    @property
    def trend(self) -> float | None:
        """Signed fractional trend, or ``None`` while warming up."""
        if not self.ready:
            return None
        if self.method == "ema":
            fast, slow = self._fast.value, self._slow.value
            if fast is None or not slow:
                return None
            return (fast - slow) / slow
        return self._regression_trend()

    def _regression_trend(self) -> float | None:
        n = len(self._points)
        if n < 2:
            return None
        t0 = self._points[0][0]
        xs = [(t - t0) / NS for t, _ in self._points]
        ys = [m for _, m in self._points]
        mx, my = sum(xs) / n, sum(ys) / n
        sxx = sum((x - mx) ** 2 for x in xs)
        if sxx == 0 or my == 0:
            return None
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
        return slope * self.window_s / my

    @property
    def strength(self) -> float | None:
        t = self.trend
        return None if t is None else abs(t)


def liquidity(
    book: OrderBook, *, measure: Literal["depth", "top_n"] = "depth", pct: float = 0.5, levels: int = 5
) -> int:
    """Liquidity of the thinner side of the book, in lots.

    ``measure="depth"``: lots resting within ``pct`` percent of mid (``book.depth_within``, so
    ``0.5`` means +-0.5%);
    ``measure="top_n"``: lots in the best ``levels`` levels. The minimum of bid and ask side is
    returned because a quoter is exposed on whichever side is thinner.
    """
    if measure == "depth":
        bid_lots, ask_lots = book.depth_within(pct)
        return min(int(bid_lots), int(ask_lots))
    bids, asks = book.top(levels)
    return min(sum(int(q) for _, q in bids), sum(int(q) for _, q in asks))


class ArrivalIntensity:
    """Estimate the order-arrival intensity ``lambda(delta) = A * exp(-k * delta)`` from trades.

    Each public trade is recorded with its distance ``delta`` from the mid at that moment: a
    resting quote at distance ``delta`` would have been filled by every trade that went at least
    that far. For depths ``0, step, 2*step, ...`` the estimator counts trades reaching each depth
    over the last ``window_s`` seconds, turns the counts into rates per second, and fits
    ``ln(rate) = ln(A) - k * delta`` by least squares (depths with fewer than ``min_count``
    trades are left out, being too noisy). ``A`` is per second; ``k`` is per unit of the price
    in which distances are given.
    """

    def __init__(self, *, window_s: float = 600.0, depth_step: float = 1.0, min_count: int = 5) -> None:
        if not window_s > 0 or not depth_step > 0:
            raise ValueError("window_s and depth_step must be greater than 0")
        self.window_s = window_s
        self.depth_step = depth_step
        self.min_count = min_count
        self._trades: deque[tuple[int, float]] = deque()
        self._first_ts: int | None = None
        self._last_ts: int | None = None

    def on_trade(self, ts: int, price: float, mid: float) -> None:
        """Record a trade print at ``price`` when the mid was ``mid``."""
        if self._first_ts is None:
            self._first_ts = ts
        self._last_ts = ts
        self._trades.append((ts, abs(price - mid)))
        horizon = ts - int(self.window_s * NS)
        while self._trades and self._trades[0][0] < horizon:
            self._trades.popleft()

    def observe_time(self, ts: int) -> None:
        """Move the observation window to ``ts`` even when no trade happened."""
        if self._first_ts is None:
            self._first_ts = ts
        self._last_ts = ts

    def estimate(self) -> tuple[float, float] | None:
        """Return ``(A, k)`` or ``None`` when fewer than two depths have enough trades."""
        if self._first_ts is None or self._last_ts is None:
            return None
        elapsed = min((self._last_ts - self._first_ts) / NS, self.window_s)
        if elapsed <= 0:
            return None
        horizon = self._last_ts - int(self.window_s * NS)
        trades = self._trades
        if trades and trades[0][0] >= horizon:  # the usual case: on_trade already trimmed the window
            ascending = sorted(map(itemgetter(1), trades))
        else:
            ascending = sorted(d for t, d in trades if t >= horizon)
        xs: list[float] = []  # depth
        ys: list[float] = []  # ln(rate)
        ws: list[float] = []  # weight = count (the variance of ln(count) is about 1/count)
        # Walk the depth grid; trades at least this far = those from the first distance >= depth
        # (bisect: the first index whose distance is not below ``depth - 1e-12``).
        counts_at_or_beyond = len(ascending)
        step = self.depth_step
        min_count = self.min_count
        log = math.log
        depth_index = 0
        while True:
            depth = depth_index * step
            count = counts_at_or_beyond - bisect_left(ascending, depth - 1e-12)
            if count < min_count:
                break
            xs.append(depth)
            ys.append(log(count / elapsed))
            ws.append(float(count))
            depth_index += 1
        if len(xs) < 2:
            return None
        # Weighted least squares. The sums run over C-level ``map``s (thousands of depth points
        # on a one-tick grid) but multiply and add in the same order as the textbook
        # expressions ``sum(w * (x - mx) ** 2)`` etc., so the floats are the same.
        w_sum = sum(ws)
        mx = sum(map(mul, ws, xs)) / w_sum
        my = sum(map(mul, ws, ys)) / w_sum
        dx = list(map(sub, xs, repeat(mx)))
        dy = map(sub, ys, repeat(my))
        sxx = sum(map(mul, ws, map(pow, dx, repeat(2))))
        slope = sum(map(mul, map(mul, ws, dx), dy)) / sxx
        k = -slope
        if not k > 0:
            return None
        return math.exp(my - slope * mx), k
