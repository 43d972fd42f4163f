"""Online estimators converge on synthetic data with known parameters (seeded)."""

from __future__ import annotations

import math
import random

import pytest

from trading.book import OrderBook
from trading.events import BookSnapshot
from trading.signals import ArrivalIntensity, MidVolatility, TimeEwma, TrendSignal, liquidity

NS = 1_000_000_000


def brownian_mids(sigma: float, seconds: float, seed: int, start: float = 1000.0, relative: bool = False):
    """Yield (ts, mid) with irregular spacing; absolute or geometric Brownian motion without drift."""
    rng = random.Random(seed)
    t, mid = 0.0, start
    while t < seconds:
        dt = rng.uniform(0.05, 0.4)
        t += dt
        shock = rng.gauss(0.0, sigma * math.sqrt(dt))
        mid = mid * math.exp(shock) if relative else mid + shock
        yield int(t * NS), mid


def test_time_ewma_halves_weight_of_old_value_after_one_halflife() -> None:
    ewma = TimeEwma(halflife_s=10.0)
    ewma.update(0, 100.0)
    assert ewma.update(10 * NS, 0.0) == pytest.approx(50.0)


def test_rolling_volatility_converges_to_true_sigma() -> None:
    vol = MidVolatility(interval_s=1.0, halflife_s=None, window=3000)
    for ts, mid in brownian_mids(0.5, 4000, seed=1):
        vol.update(ts, mid)
    assert vol.sigma == pytest.approx(0.5, rel=0.05)


def test_ewma_volatility_converges_to_true_sigma() -> None:
    vol = MidVolatility(interval_s=1.0, halflife_s=600.0)
    for ts, mid in brownian_mids(2.0, 4000, seed=2):
        vol.update(ts, mid)
    assert vol.sigma == pytest.approx(2.0, rel=0.1)


def test_relative_volatility_measures_log_returns() -> None:
    vol = MidVolatility(interval_s=2.0, halflife_s=None, window=2000, relative=True)
    for ts, mid in brownian_mids(0.001, 4000, seed=3, relative=True):
        vol.update(ts, mid)
    assert vol.sigma == pytest.approx(0.001, rel=0.08)
    assert vol.sigma_over(4.0) == pytest.approx(vol.sigma * 2.0)


def test_volatility_is_none_until_enough_samples() -> None:
    vol = MidVolatility(interval_s=1.0, halflife_s=60.0, min_samples=5)
    for i in range(5):
        vol.update(i * NS, 100.0 + i)
    assert vol.sigma is None
    vol.update(5 * NS, 100.0)
    assert vol.sigma is not None


def test_volatility_needs_exactly_one_of_halflife_or_window() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        MidVolatility(halflife_s=None, window=None)


def test_arrival_intensity_fit_recovers_a_and_k() -> None:
    rng = random.Random(7)
    true_a, true_k, mid = 2.0, 1.5, 100.0
    est = ArrivalIntensity(window_s=5000.0, depth_step=0.2)
    t = 0.0
    while t < 4000.0:
        t += rng.expovariate(true_a)
        distance = rng.expovariate(true_k)
        price = mid + distance if rng.random() < 0.5 else mid - distance
        est.on_trade(int(t * NS), price, mid)
    fit = est.estimate()
    assert fit is not None
    a, k = fit
    assert a == pytest.approx(true_a, rel=0.1)
    assert k == pytest.approx(true_k, rel=0.1)


def test_arrival_intensity_forgets_trades_outside_window() -> None:
    est = ArrivalIntensity(window_s=10.0, depth_step=1.0, min_count=1)
    for i in range(20):
        est.on_trade(i * NS, 100.0 + (i % 3), 100.0)
    est.observe_time(100 * NS)
    assert est.estimate() is None


def test_ema_trend_is_positive_when_rising_and_negative_when_falling() -> None:
    up = TrendSignal(method="ema", fast_s=5, slow_s=30)
    down = TrendSignal(method="ema", fast_s=5, slow_s=30)
    for i in range(200):
        up.update(i * NS, 100.0 + 0.1 * i)
        down.update(i * NS, 100.0 - 0.1 * i)
    assert up.trend is not None and up.trend > 0
    assert down.trend is not None and down.trend < 0
    assert up.strength == pytest.approx(abs(up.trend))


def test_regression_trend_equals_fractional_move_over_window() -> None:
    trend = TrendSignal(method="regression", window_s=60)
    for i in range(121):
        trend.update(i * NS, 1000.0 + 0.5 * i)  # 0.5 per second
    # last 60 s: slope 0.5/s * 60 s = 30 over a mean mid of 1000 + 0.5 * 90 = 1045
    assert trend.trend == pytest.approx(30.0 / 1045.0, rel=1e-9)


def test_trend_none_while_warming_up() -> None:
    trend = TrendSignal(min_samples=10)
    trend.update(0, 100.0)
    assert trend.trend is None and trend.strength is None


def make_book(bids, asks) -> OrderBook:
    book = OrderBook()
    book.apply_snapshot(BookSnapshot(ts=0, bids=tuple(bids), asks=tuple(asks)))
    return book


def test_liquidity_depth_is_thinner_side_within_percent_band() -> None:
    book = make_book([(10000, 5), (9960, 7), (9900, 100)], [(10010, 3), (10040, 4), (10200, 50)])
    # mid 10005, 0.5% band = +-50.025 ticks: bids >= 9954.975 -> 12 lots; asks <= 10055.025 -> 7 lots
    assert liquidity(book, measure="depth", pct=0.5) == 7


def test_liquidity_top_n_sums_best_levels() -> None:
    book = make_book([(10000, 5), (9960, 7), (9900, 100)], [(10010, 3), (10040, 4), (10200, 50)])
    assert liquidity(book, measure="top_n", levels=2) == min(12, 7)
    assert liquidity(book, measure="top_n", levels=3) == min(112, 57)
