"""Registry: names, validation, building, descriptions; strategies are deterministic."""

from __future__ import annotations

import json

import pytest

from trading.config import ConfigError
from trading.events import Timer
from trading.strategies import STRATEGIES, build_strategy, describe_strategy, validate_params

from .support import INSTRUMENT, NS, feed_mids, make_ctx, two_sided

MINIMAL = {name: {"order_amount": "0.01"} for name in STRATEGIES}
MINIMAL["avellaneda_stoikov"] = {"order_amount": "0.01", "sigma": 1.0, "k": 1.5}


def test_registry_lists_every_strategy_with_config_and_class() -> None:
    assert set(STRATEGIES) == {
        "fixed_spread",
        "avellaneda_stoikov",
        "grid",
        "volatility_adaptive",
        "trend_following",
        "inventory_based",
        "auto",
    }
    for name, (config_cls, strategy_cls) in STRATEGIES.items():
        assert strategy_cls.name == name
        assert config_cls.__dataclass_params__.frozen


def test_unknown_strategy_name_is_a_config_error_on_strategy_field() -> None:
    with pytest.raises(ConfigError) as info:
        validate_params("martingale", {})
    message = info.value.errors["strategy"]
    assert "'martingale' is not a strategy" in message
    assert "fixed_spread" in message and "auto" in message
    with pytest.raises(ConfigError):
        build_strategy("martingale", {}, INSTRUMENT)
    with pytest.raises(ConfigError):
        describe_strategy("martingale")


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_every_strategy_builds_and_quotes_a_two_sided_book(name: str) -> None:
    strategy = build_strategy(name, MINIMAL[name], INSTRUMENT)
    qs = strategy.on_event(Timer(NS), make_ctx(two_sided(999_900, 1_000_100)))
    assert qs is not None and qs.bids and qs.asks
    assert qs.reason


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_every_strategy_rejects_unknown_fields_and_requires_order_amount(name: str) -> None:
    with pytest.raises(ConfigError) as info:
        validate_params(name, {"bogus": 1})
    assert info.value.errors["bogus"].startswith("unknown field; accepted: order_amount")
    assert info.value.errors["order_amount"].startswith("required")


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_descriptions_are_json_with_help_for_every_field(name: str) -> None:
    schema = describe_strategy(name)
    json.dumps(schema)
    assert schema["strategy"] == name and schema["summary"]
    assert "order_amount" in schema["required"]
    for field, prop in schema["properties"].items():
        assert prop.get("description"), f"{name}.{field} has no help"


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_same_inputs_give_same_quotes(name: str) -> None:
    mids = [1_000_000 + ((i * 37) % 11 - 5) * 300 for i in range(40)]
    runs = [feed_mids(build_strategy(name, MINIMAL[name], INSTRUMENT), mids) for _ in range(2)]
    assert runs[0] == runs[1]
