"""Volatility-adaptive, trend-following and inventory-based strategies."""

from __future__ import annotations

from decimal import Decimal

import pytest

from trading.config import ConfigError
from trading.events import Timer
from trading.instruments import FEE_SCALE
from trading.strategies import build_strategy, validate_params

from .support import INSTRUMENT, NS, feed_mids, make_ctx, prices, sizes, two_sided

MID = 1_000_000  # ticks; feed_mids builds a 2-tick book around it


# --- volatility adaptive ---------------------------------------------------------------------
def vol_strategy(**params):
    base = {"order_amount": "0.01", "base_spread": "0.001", "vol_multiplier": 2, "max_spread": "0.01"}
    return build_strategy("volatility_adaptive", {**base, **params}, INSTRUMENT)


def test_volatility_spread_formula_and_clamps() -> None:
    s = vol_strategy(min_spread="0.0015")
    assert s.spread_for(0.0005) == Decimal("0.002")  # 0.001 + 2 * 0.0005
    assert s.spread_for(0.0001) == Decimal("0.0015")  # floored at min_spread
    assert s.spread_for(0.5) == Decimal("0.01")  # capped at max_spread
    assert s.spread_for(None) == Decimal("0.01")  # unknown volatility: cautious


def test_volatility_adaptive_quotes_max_spread_while_warming_up() -> None:
    qs = vol_strategy().on_event(Timer(NS), make_ctx(two_sided(MID - 1, MID + 1)))
    assert prices(qs.bids) == [990_000] and prices(qs.asks) == [1_010_000]
    assert "warming up" in qs.reason


def test_calm_market_quotes_base_spread_and_volatile_market_quotes_wider() -> None:
    calm = feed_mids(vol_strategy(min_spread="0"), [MID] * 30)
    assert prices(calm.bids) == [999_000] and prices(calm.asks) == [1_001_000]
    swings = [MID + (2_000 if i % 2 else 0) for i in range(29)] + [MID]
    wild = feed_mids(vol_strategy(min_spread="0"), swings)
    assert prices(wild.bids)[0] < 999_000 and prices(wild.asks)[0] > 1_001_000


# --- trend following -------------------------------------------------------------------------
def trend_strategy(**params):
    base = {"order_amount": "0.01", "spread": "0.005", "ema_fast": 2, "ema_slow": 20, "max_skew": "0.002"}
    return build_strategy("trend_following", {**base, **params}, INSTRUMENT)


def test_uptrend_moves_both_quotes_up_by_capped_skew() -> None:
    rising = [MID - 30_000 + 1_000 * i for i in range(31)]  # ends at MID, +0.1% per second
    qs = feed_mids(trend_strategy(skew_strength=100), rising)
    # centre 1,000,000 * 1.002 = 1,002,000; bid 1,002,000 * 0.995, ask 1,002,000 * 1.005
    assert prices(qs.bids) == [996_990] and prices(qs.asks) == [1_007_010]
    assert "skew +0.002" in qs.reason


def test_downtrend_moves_both_quotes_down() -> None:
    falling = [MID + 30_000 - 1_000 * i for i in range(31)]
    qs = feed_mids(trend_strategy(skew_strength=100), falling)
    # centre 998,000: bid 993,010, ask 1,002,990
    assert prices(qs.bids) == [993_010] and prices(qs.asks) == [1_002_990]


def test_flat_market_gives_no_skew() -> None:
    qs = feed_mids(trend_strategy(), [MID] * 30)
    assert prices(qs.bids) == [995_000] and prices(qs.asks) == [1_005_000]


def test_regression_trend_method_also_skews_with_the_trend() -> None:
    rising = [MID - 30_000 + 1_000 * i for i in range(31)]
    qs = feed_mids(trend_strategy(trend_method="regression", regression_window=20, skew_strength=1), rising)
    assert prices(qs.bids)[0] > 995_000 and prices(qs.asks)[0] > 1_005_000


def test_fast_ema_must_be_shorter_than_slow() -> None:
    with pytest.raises(ConfigError) as info:
        validate_params("trend_following", {"order_amount": "0.01", "ema_fast": 30, "ema_slow": 10})
    assert set(info.value.errors) == {"ema_fast"}


# --- inventory based -------------------------------------------------------------------------
def inventory_quotes(base_lots: int, quote_lots_worth: int, **params):
    cfg = {"order_amount": "0.01", "spread": "0.001", "inventory_range": "0.2", "size_skew": "0.8"}
    s = build_strategy("inventory_based", {**cfg, **params}, INSTRUMENT)
    book = two_sided(MID - 100, MID + 100)
    ctx = make_ctx(book, NS, base_balance=base_lots, quote_balance=quote_lots_worth * MID * FEE_SCALE)
    return s.on_event(Timer(NS), ctx)


def test_inventory_at_target_quotes_symmetrically() -> None:
    qs = inventory_quotes(50, 50)
    assert prices(qs.bids) == [999_000] and prices(qs.asks) == [1_001_000]
    assert sizes(qs.bids) == sizes(qs.asks) == [10]


def test_long_inventory_sells_more_and_bids_smaller_and_wider() -> None:
    qs = inventory_quotes(60, 40)  # 60% base vs 50% target: deviation +0.5 of the 0.2 range
    assert sizes(qs.asks) == [14] and sizes(qs.bids) == [6]
    assert prices(qs.bids) == [998_500]  # spread 0.001 * (1 + 1 * 0.5)
    assert prices(qs.asks) == [1_001_000]


def test_short_inventory_buys_more_and_asks_smaller_and_wider() -> None:
    qs = inventory_quotes(40, 60)
    assert sizes(qs.bids) == [14] and sizes(qs.asks) == [6]
    assert prices(qs.bids) == [999_000] and prices(qs.asks) == [1_001_500]


def test_deviation_beyond_range_is_capped() -> None:
    qs = inventory_quotes(95, 5)
    assert sizes(qs.asks) == [18] and sizes(qs.bids) == [2]
    assert prices(qs.bids) == [998_000]
