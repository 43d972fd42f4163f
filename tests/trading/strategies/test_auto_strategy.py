"""Automatic selection: regime per thresholds, priority, hysteresis, dwell time, nested configs."""

from __future__ import annotations

import pytest

from trading.config import ConfigError
from trading.events import Timer, TradeTick
from trading.instruments import Side
from trading.strategies import build_strategy, validate_params
from trading.strategies.auto import Conditions

from .support import INSTRUMENT, NS, make_book, make_ctx

MID = 1_000_000


def auto(**params):
    base = {
        "order_amount": "0.01",
        "volatility_high": 0.001,
        "trend_strong": 0.005,
        "liquidity_low": "0.5",
        "volatility_halflife": 5.0,
        "ema_fast": 2.0,
        "ema_slow": 20.0,
        "min_dwell": 0.0,
        "grid": {"levels": 2},
    }
    return build_strategy("auto", {**base, **params}, INSTRUMENT)


def book_at(mid: int, qty: int = 1000):
    return make_book([(mid - 1, qty), (mid - 101, qty)], [(mid + 1, qty), (mid + 101, qty)])


def run(strategy, mids, *, start_s: int = 0, qty: int = 1000):
    """Feed one mid per second; return the list of (regime, QuoteSet)."""
    out = []
    for i, mid in enumerate(mids):
        ts = (start_s + i) * NS
        qs = strategy.on_event(Timer(ts), make_ctx(book_at(mid, qty), ts))
        out.append((strategy.regime, qs))
    return out


CALM = [MID] * 30
SWINGS = [MID + (2_000 if i % 2 else 0) for i in range(30)]  # 0.2% moves every second
RISING = [MID - 30_000 + 1_000 * i for i in range(31)]  # 0.1% per second


def test_calm_deep_market_selects_grid() -> None:
    regime, qs = run(auto(), CALM)[-1]
    assert regime == "grid"
    assert qs.reason.startswith("regime=grid: calm")
    assert len(qs.bids) == 2 and len(qs.asks) == 2


def test_high_volatility_selects_volatility_adaptive_with_reason() -> None:
    regime, qs = run(auto(), SWINGS)[-1]
    assert regime == "volatility_adaptive"
    assert qs.reason.startswith("regime=volatility_adaptive: sigma ")
    assert "> volatility_high 0.001" in qs.reason
    assert "volatility adaptive:" in qs.reason  # the sub-strategy's own reason follows


def test_thin_book_selects_inventory_based() -> None:
    regime, qs = run(auto(), CALM, qty=200)[-1]  # 0.4 base within the band < 0.5
    assert regime == "inventory_based"
    assert "liquidity 0.400 < liquidity_low 0.5" in qs.reason


def test_strong_trend_selects_trend_following() -> None:
    regime, qs = run(auto(volatility_high=0.01), RISING)[-1]
    assert regime == "trend_following"
    assert "trend strength" in qs.reason and "> trend_strong 0.005" in qs.reason


def test_volatility_takes_priority_over_thin_liquidity() -> None:
    regime, _ = run(auto(), SWINGS, qty=200)[-1]
    assert regime == "volatility_adaptive"


def test_regime_is_held_for_min_dwell_before_switching_back() -> None:
    s = auto(min_dwell=40.0, hysteresis=0.0)
    history = run(s, SWINGS) + run(s, [MID] * 60, start_s=30)
    regimes = [r for r, _ in history]
    entered = regimes.index("volatility_adaptive")
    assert entered <= 12  # the warm-up choice (grid) is provisional: no dwell before the first real regime
    left = regimes.index("grid", entered)
    assert left - entered == 40
    held_reasons = [qs.reason for r, qs in history[entered:left] if "held" in qs.reason]
    assert held_reasons and "conditions call for grid" in held_reasons[-1]


def test_hysteresis_keeps_regime_until_condition_clears_by_margin() -> None:
    s = auto(hysteresis=0.5)
    run(s, SWINGS)
    assert s.regime == "volatility_adaptive"
    # sigma between volatility_high * 0.5 and volatility_high: stays
    assert s.select(100 * NS, Conditions(0.0007, 10_000, 0.0)) == "volatility_adaptive"
    assert "hysteresis" in s.regime_cause
    assert s.select(101 * NS, Conditions(0.0004, 10_000, 0.0)) == "grid"


def test_no_hysteresis_switches_as_soon_as_threshold_is_crossed() -> None:
    s = auto(hysteresis=0.0)
    run(s, SWINGS)
    assert s.select(100 * NS, Conditions(0.0009, 10_000, 0.0)) == "grid"
    assert s.switches >= 2


def test_sub_strategies_see_trades_and_auto_returns_none_on_them() -> None:
    s = auto()
    assert s.on_event(TradeTick(NS, MID, 1, Side.BUY), make_ctx(book_at(MID), NS)) is None


def test_nested_sub_strategy_errors_are_prefixed_and_collected() -> None:
    with pytest.raises(ConfigError) as info:
        validate_params(
            "auto",
            {
                "order_amount": "0.01",
                "grid": {"levels": 0},
                "trend_following": {"colour": 1},
                "volatility_high": -1,
            },
        )
    errors = info.value.errors
    assert set(errors) == {"volatility_high"}  # field errors first: nested checks need valid fields
    with pytest.raises(ConfigError) as info:
        validate_params("auto", {"order_amount": "0.01", "grid": {"levels": 0}, "trend_following": {"colour": 1}})
    errors = info.value.errors
    assert set(errors) == {"grid.levels", "trend_following.colour"}
    assert errors["grid.levels"] == "0 is too small; accepted: 1 or more"


def test_sub_strategy_order_amount_defaults_to_auto_amount() -> None:
    s = auto()
    assert s.subs["grid"].config.order_amount == s.config.order_amount


@pytest.mark.parametrize(
    ("conditions", "regime"),
    [
        (Conditions(sigma=0.00101, liquidity_lots=10_000, trend_strength=0.0), "volatility_adaptive"),
        (Conditions(sigma=0.001, liquidity_lots=10_000, trend_strength=0.0), "grid"),  # not above: stays calm
        (Conditions(sigma=0.0, liquidity_lots=499, trend_strength=0.0), "inventory_based"),  # 0.499 < 0.5
        (Conditions(sigma=0.0, liquidity_lots=500, trend_strength=0.0), "grid"),
        (Conditions(sigma=0.0, liquidity_lots=10_000, trend_strength=0.00501), "trend_following"),
        (Conditions(sigma=0.0, liquidity_lots=10_000, trend_strength=0.005), "grid"),
        (Conditions(sigma=0.002, liquidity_lots=1, trend_strength=0.01), "volatility_adaptive"),  # priority
        (Conditions(sigma=0.0, liquidity_lots=1, trend_strength=0.01), "inventory_based"),  # priority
    ],
)
def test_regime_switches_exactly_at_thresholds(conditions: Conditions, regime: str) -> None:
    s = auto(hysteresis=0.0)
    run(s, CALM)  # warm up in the calm regime
    assert s.regime == "grid"
    assert s.select(100 * NS, conditions) == regime


def test_auto_description_nests_each_sub_strategy_schema() -> None:
    from trading.strategies import describe_strategy

    schema = describe_strategy("auto")
    grid = schema["properties"]["grid"]
    assert grid["type"] == "object" and grid["default"] == {}
    assert grid["properties"]["levels"]["minimum"] == 1
    assert set(schema["properties"]["trend_following"]["properties"]) >= {"ema_fast", "ema_slow", "max_skew"}
