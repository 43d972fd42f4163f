"""The AS (2008) Monte Carlo reproduces the paper's table (gamma = 0.1) within sampling error."""

from __future__ import annotations

import pytest

from trading.events import BookSnapshot, TradeTick
from trading.instruments import Instrument, Side
from trading.synthetic.avellaneda_stoikov import (
    ASParams,
    average_optimal_spread,
    event_stream,
    monte_carlo,
    optimal_spread,
    reservation_price,
)

# Avellaneda & Stoikov (2008), section 3, table for gamma = 0.1 (1000 simulations each).
PAPER = {
    "inventory": {"profit": 62.94, "profit_std": 5.89, "q": 0.08, "q_std": 2.80},
    "symmetric": {"profit": 67.21, "profit_std": 13.43, "q": 0.01, "q_std": 8.66},
}
PAPER_SPREAD = 1.49


@pytest.fixture(scope="module")
def summaries():
    return {s: monte_carlo(1000, s, seed=7) for s in PAPER}


@pytest.mark.parametrize("strategy", ["inventory", "symmetric"])
def test_monte_carlo_mean_profit_matches_paper_within_sampling_error(summaries, strategy):
    summary = summaries[strategy]
    expected = PAPER[strategy]
    # Standard error of a 1000-path mean is std/sqrt(1000): 0.19 (inventory), 0.42 (symmetric).
    # Allow ~5 combined standard errors (ours and the paper's).
    tolerance = 5 * 2**0.5 * expected["profit_std"] / 1000**0.5
    assert abs(summary.profit_mean - expected["profit"]) < tolerance


@pytest.mark.parametrize("strategy", ["inventory", "symmetric"])
def test_monte_carlo_dispersion_matches_paper(summaries, strategy):
    summary = summaries[strategy]
    expected = PAPER[strategy]
    assert summary.profit_std == pytest.approx(expected["profit_std"], rel=0.15)
    assert summary.final_inventory_std == pytest.approx(expected["q_std"], rel=0.10)
    # Final inventory is centred: standard error of the mean is q_std/sqrt(1000) (0.09 / 0.27).
    assert abs(summary.final_inventory_mean - expected["q"]) < 5 * expected["q_std"] / 1000**0.5


def test_both_strategies_quote_the_papers_average_spread(summaries):
    assert summaries["inventory"].spread_mean == pytest.approx(PAPER_SPREAD, abs=0.005)
    assert summaries["symmetric"].spread_mean == pytest.approx(summaries["inventory"].spread_mean)


def test_inventory_strategy_trades_some_profit_for_much_less_risk(summaries):
    inventory, symmetric = summaries["inventory"], summaries["symmetric"]
    assert inventory.profit_std < 0.6 * symmetric.profit_std
    assert inventory.final_inventory_std < 0.5 * symmetric.final_inventory_std
    assert inventory.profit_mean < symmetric.profit_mean


def test_same_seed_gives_identical_summary_and_other_seed_differs():
    assert monte_carlo(200, "inventory", seed=3) == monte_carlo(200, "inventory", seed=3)
    assert monte_carlo(200, "inventory", seed=3) != monte_carlo(200, "inventory", seed=4)


def test_reservation_price_leans_against_inventory_and_spread_narrows_towards_horizon():
    p = ASParams()
    assert reservation_price(100.0, 3, 0.0, p) == pytest.approx(100.0 - 3 * 0.1 * 4 * 1.0)
    assert reservation_price(100.0, -2, 0.5, p) > 100.0
    assert optimal_spread(0.0, p) > optimal_spread(0.99, p) > 0
    assert average_optimal_spread(p) == pytest.approx(1.4918, abs=1e-3)


def test_unknown_strategy_and_bad_parameters_are_rejected_with_the_field_named():
    with pytest.raises(ValueError, match="strategy: 'grid'"):
        monte_carlo(10, "grid")
    with pytest.raises(ValueError, match="n_paths"):
        monte_carlo(0, "inventory")
    with pytest.raises(ValueError, match="sigma"):
        ASParams(sigma=-1.0)


def test_event_stream_emits_a_snapshot_per_step_and_trades_through_the_displayed_book():
    instrument = Instrument.create(symbol="AS/USD", tick_size="0.01", lot_size="1")
    events = list(event_stream(instrument, seed=1, step_ns=1_000_000))
    snapshots = [e for e in events if isinstance(e, BookSnapshot)]
    trades = [e for e in events if isinstance(e, TradeTick)]
    assert len(snapshots) == ASParams().n_steps
    assert all(s.bids[0][0] < s.asks[0][0] for s in snapshots)
    assert [e.ts for e in events] == sorted(e.ts for e in events)
    assert trades, "the AS market must print trades"
    last_book = None
    for e in events:
        if isinstance(e, BookSnapshot):
            last_book = e
        elif e.aggressor is Side.SELL:
            assert e.price <= last_book.bids[0][0]
        else:
            assert e.price >= last_book.asks[0][0]
    assert events == list(event_stream(instrument, seed=1, step_ns=1_000_000))
