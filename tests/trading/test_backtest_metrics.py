"""Backtest measures: Sharpe, drawdown, time-weighted inventory and quoting."""

from __future__ import annotations

import itertools
import math

import pytest

from trading.metrics import NS_PER_YEAR, TimeWeightedTracker, max_drawdown, sharpe_ratio


def test_max_drawdown_is_the_largest_peak_to_trough_fall():
    assert max_drawdown([100, 120, 90, 110, 80, 130]) == (40, pytest.approx(40 / 120))
    assert max_drawdown([1, 2, 3]) == (0, 0.0)
    assert max_drawdown([]) == (0, 0.0)


def test_sharpe_is_mean_over_std_of_returns_annualised_by_interval():
    equity = [1000, 1010, 1005, 1020, 1030]
    returns = [(b - a) / a for a, b in itertools.pairwise(equity)]
    mean = sum(returns) / 4
    std = math.sqrt(sum((r - mean) ** 2 for r in returns) / 3)
    second = 1_000_000_000
    assert sharpe_ratio(equity, second) == pytest.approx(mean / std * math.sqrt(NS_PER_YEAR / second))
    assert sharpe_ratio([5, 5, 5], second) is None
    assert sharpe_ratio([1, 2], second) is None


def test_sharpe_falls_back_to_pnl_changes_when_started_without_capital():
    assert sharpe_ratio([0, 10, 5, 20], 1_000_000_000) > 0


def test_tracker_weights_states_by_how_long_they_lasted():
    t = TimeWeightedTracker()
    t.observe(0, position=0, our_bid=99, our_ask=101, best_bid=99, best_ask=101)  # both quoted, at top
    t.observe(10, position=4, our_bid=98, our_ask=None, best_bid=99, best_ask=101)  # only bid, behind
    t.observe(40, position=-2, our_bid=100, our_ask=101, best_bid=99, best_ask=100)  # bid improves book
    t.observe(50, position=-2, our_bid=None, our_ask=None, best_bid=99, best_ask=100)
    q = t.quoting()
    assert q.quote_uptime == pytest.approx((10 + 10) / 50)
    assert q.bid_at_top == pytest.approx((10 + 10) / 50)
    assert q.ask_at_top == pytest.approx(10 / 50)
    assert q.time_at_top == pytest.approx(10 / 50)
    inv = t.inventory()
    assert inv.time_weighted_mean == pytest.approx((0 * 10 + 4 * 30 - 2 * 10) / 50)
    assert (inv.min, inv.max) == (-2, 4)
    assert inv.mean == pytest.approx((0 + 4 - 2 - 2) / 4)


def test_positions_noted_between_observations_count_in_min_and_max_only():
    t = TimeWeightedTracker()
    t.observe(0, position=0, our_bid=None, our_ask=None, best_bid=None, best_ask=None)
    t.note_position(7)
    t.note_position(-3)
    t.observe(10, position=1, our_bid=None, our_ask=None, best_bid=None, best_ask=None)
    inv = t.inventory()
    assert (inv.min, inv.max) == (-3, 7)
    assert inv.mean == pytest.approx(0.5)
