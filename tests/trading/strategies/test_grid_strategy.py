"""Grid: lines inside the band, buys below and sells above the mid, re-centring, validation."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest

from trading.config import ConfigError
from trading.events import Timer
from trading.strategies import build_strategy, validate_params

from .support import INSTRUMENT, NS, make_ctx, prices, two_sided

TICKS = {
    "order_amount": "0.01",
    "levels": 3,
    "step": 500,
    "step_unit": "ticks",
    "lower_price": "9900.00",
    "upper_price": "10100.00",
}


def grid(**params):
    return build_strategy("grid", {**TICKS, **params}, INSTRUMENT)


def test_tick_grid_buys_below_and_sells_above_skipping_line_at_mid() -> None:
    qs = grid().on_event(Timer(NS), make_ctx(two_sided(999_900, 1_000_100)))  # mid on line 1,000,000
    assert prices(qs.bids) == [999_500, 999_000, 998_500]
    assert prices(qs.asks) == [1_000_500, 1_001_000, 1_001_500]
    assert all(q.qty == 10 for q in qs.all)


def test_lines_beyond_the_band_are_not_quoted() -> None:
    qs = grid().on_event(Timer(NS), make_ctx(two_sided(1_009_100, 1_009_300)))  # mid 1,009,200
    assert prices(qs.bids) == [1_009_000, 1_008_500, 1_008_000]
    assert prices(qs.asks) == [1_009_500, 1_010_000]


def test_price_outside_band_pulls_quotes_when_recentring_is_off() -> None:
    qs = grid(recenter=False).on_event(Timer(NS), make_ctx(two_sided(1_019_900, 1_020_100)))
    assert qs.all == ()
    assert "outside band" in qs.reason


def test_price_outside_band_recentres_band_of_same_width() -> None:
    s = grid()
    qs = s.on_event(Timer(NS), make_ctx(two_sided(1_019_900, 1_020_100)))  # mid 1,020,000
    assert (s.lower, s.upper) == (1_010_000, 1_030_000)
    assert prices(qs.bids) == [1_019_500, 1_019_000, 1_018_500]
    assert prices(qs.asks) == [1_020_500, 1_021_000, 1_021_500]
    assert "re-centred" in qs.reason and s.recentered == 1


def test_geometric_grid_lines_round_in_the_safe_direction() -> None:
    s = build_strategy(
        "grid",
        {"order_amount": "0.01", "levels": 2, "step": "0.01", "lower_price": "9000", "upper_price": "11000"},
        INSTRUMENT,
    )
    qs = s.on_event(Timer(NS), make_ctx(two_sided(999_900, 1_000_100)))
    line = lambda j: Fraction(900_000) * Fraction(101, 100) ** j  # noqa: E731
    # 900000 * 1.01^10 = 994,159.9 < mid 1,000,000 < 900000 * 1.01^11 = 1,004,101.5
    assert prices(qs.bids) == [math.floor(line(10)), math.floor(line(9))]
    assert prices(qs.asks) == [math.ceil(line(11)), math.ceil(line(12))]
    assert prices(qs.bids)[0] == 994_159 and prices(qs.asks)[0] == 1_004_102


def test_unbounded_grid_centres_band_on_first_mid() -> None:
    s = build_strategy("grid", {"order_amount": "0.01", "band_width": "0.02"}, INSTRUMENT)
    s.on_event(Timer(NS), make_ctx(two_sided(999_900, 1_000_100)))
    assert (s.lower, s.upper) == (990_000, 1_010_000)


def test_band_bounds_round_inward() -> None:
    s = grid(lower_price="9900.005", upper_price="10099.995")
    assert (s.lower, s.upper) == (990_001, 1_009_999)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"lower_price": "9900"}, "upper_price"),
        ({"lower_price": "10100", "upper_price": "9900"}, "lower_price"),
        ({"step": "2.5", "step_unit": "ticks"}, "step"),
        ({"step_unit": "percent"}, "step_unit"),
    ],
)
def test_invalid_grid_params_name_the_field(params: dict, field: str) -> None:
    with pytest.raises(ConfigError) as info:
        validate_params("grid", {"order_amount": "0.01", **params})
    assert field in info.value.errors


def test_recentring_after_a_crash_keeps_the_band_positive() -> None:
    s = build_strategy(
        "grid",
        {"order_amount": "1", "levels": 3, "step": "0.01", "lower_price": "9000", "upper_price": "11000"},
        INSTRUMENT,
    )
    qs = s.on_event(Timer(NS), make_ctx(two_sided(49_900, 50_100)))  # price 500, band width 2000
    assert s.lower == 1 and s.upper == 150_000
    assert qs.bids and qs.asks
    assert all(0 < q.price < 50_100 for q in qs.bids) and all(q.price > 49_900 for q in qs.asks)
