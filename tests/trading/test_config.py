"""Config framework: parsing, every bad field reported at once, round trip, description."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

import pytest

from trading.config import ConfigError, config_to_dict, describe, parse_config


class Mode(enum.Enum):
    FAST = "fast"
    SLOW = "slow"


@dataclass(frozen=True)
class SampleConfig:
    """A sample config.

    Second paragraph is not part of the description.
    """

    amount: Decimal = field(metadata={"min": Decimal(0), "exclusive_min": True, "help": "size", "unit": "base"})
    levels: int = field(default=2, metadata={"min": 1, "max": 10, "help": "orders per side"})
    ratio: float = field(default=0.5, metadata={"min": 0.0, "max": 1.0})
    enabled: bool = False
    label: str = "x"
    side: Literal["buy", "sell", "both"] = "both"
    mode: Mode = Mode.FAST
    ceiling: Decimal | None = field(default=None, metadata={"min": Decimal(0)})
    nested: dict = field(default_factory=dict)

    def validate(self) -> dict[str, str]:
        if self.ceiling is not None and self.ceiling < self.amount:
            return {"ceiling": f"{self.ceiling} must be at least amount {self.amount}"}
        return {}


def errors_of(data: dict) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        parse_config(SampleConfig, data)
    return info.value.errors


def test_valid_mapping_builds_frozen_config_with_defaults() -> None:
    cfg = parse_config(SampleConfig, {"amount": "0.5", "levels": 3, "mode": "slow", "side": "buy"})
    assert cfg.amount == Decimal("0.5")
    assert cfg.levels == 3
    assert cfg.mode is Mode.SLOW
    assert cfg.side == "buy"
    assert cfg.ratio == 0.5
    with pytest.raises(AttributeError):
        cfg.levels = 4  # type: ignore[misc]


def test_float_for_decimal_uses_shortest_repr_not_binary_expansion() -> None:
    cfg = parse_config(SampleConfig, {"amount": 0.1})
    assert cfg.amount == Decimal("0.1")


def test_numeric_string_accepted_for_float_field() -> None:
    assert parse_config(SampleConfig, {"amount": 1, "ratio": "0.25"}).ratio == 0.25


def test_all_bad_fields_are_reported_together() -> None:
    errors = errors_of(
        {
            "amount": "abc",
            "levels": True,
            "ratio": 1.5,
            "enabled": "yes",
            "label": 5,
            "side": "up",
            "mode": "medium",
            "ceiling": "-1",
            "nested": [1],
            "colour": "red",
        }
    )
    assert set(errors) == {
        "amount",
        "levels",
        "ratio",
        "enabled",
        "label",
        "side",
        "mode",
        "ceiling",
        "nested",
        "colour",
    }
    assert "'abc' is not a number" in errors["amount"]
    assert "True is not an integer" in errors["levels"]
    assert errors["ratio"] == "1.5 is too large; accepted: 1.0 or less"
    assert errors["side"] == "'up' is not accepted; accepted: 'buy', 'sell', 'both'"
    assert "'medium'" in errors["mode"] and "'fast', 'slow'" in errors["mode"]
    assert "too small" in errors["ceiling"]


def test_unknown_field_message_lists_accepted_fields() -> None:
    errors = errors_of({"amount": 1, "colour": "red"})
    assert errors == {
        "colour": "unknown field; accepted: amount, levels, ratio, enabled, label, side, mode, ceiling, nested"
    }


def test_missing_required_field_is_named() -> None:
    assert errors_of({}) == {"amount": "required; give a decimal"}


def test_bool_is_not_accepted_as_a_number() -> None:
    assert "boolean" in errors_of({"amount": True})["amount"]


def test_exclusive_minimum_rejects_the_bound_itself() -> None:
    assert errors_of({"amount": 0}) == {"amount": "0 is too small; accepted: greater than 0"}


def test_non_finite_numbers_are_rejected() -> None:
    assert "not finite" in errors_of({"amount": "NaN"})["amount"]
    assert "not finite" in errors_of({"amount": 1, "ratio": float("inf")})["ratio"]


def test_null_accepted_only_for_optional_fields() -> None:
    assert parse_config(SampleConfig, {"amount": 1, "ceiling": None}).ceiling is None
    assert "null is not accepted" in errors_of({"amount": 1, "levels": None})["levels"]


def test_cross_field_validate_hook_reports_after_field_checks() -> None:
    assert errors_of({"amount": 5, "ceiling": 1}) == {"ceiling": "1 must be at least amount 5"}


def test_non_mapping_input_is_rejected() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(SampleConfig, ["amount", 1])  # type: ignore[arg-type]
    assert "__all__" in info.value.errors


def test_config_error_is_a_value_error_with_readable_message() -> None:
    with pytest.raises(ValueError, match="amount: required"):
        parse_config(SampleConfig, {})


def test_config_to_dict_is_json_safe_and_round_trips() -> None:
    cfg = parse_config(SampleConfig, {"amount": "0.010", "mode": "slow", "ceiling": "5", "nested": {"a": Decimal(1)}})
    data = config_to_dict(cfg)
    assert data["amount"] == "0.010"
    assert data["mode"] == "slow"
    assert data["nested"] == {"a": "1"}
    text = json.dumps(data)
    again = parse_config(SampleConfig, {**json.loads(text), "nested": {"a": Decimal(1)}})
    assert again == cfg


def test_describe_lists_type_default_bounds_and_help_in_order() -> None:
    schema = describe(SampleConfig)
    assert schema["title"] == "SampleConfig"
    assert schema["description"] == "A sample config."
    assert schema["required"] == ["amount"]
    assert schema["additionalProperties"] is False
    props = schema["properties"]
    assert list(props)[:3] == ["amount", "levels", "ratio"]
    assert props["amount"] == {
        "type": "string",
        "format": "decimal",
        "title": "amount",
        "minimum": "0",
        "exclusiveMinimum": True,
        "description": "size",
        "unit": "base",
    }
    assert props["levels"]["default"] == 2 and props["levels"]["maximum"] == 10
    assert props["side"]["enum"] == ["buy", "sell", "both"]
    assert props["mode"]["enum"] == ["fast", "slow"]
    assert props["ceiling"]["nullable"] is True
    assert props["nested"] == {"type": "object", "title": "nested", "default": {}}
    json.dumps(schema)


def test_config_base_from_dict_and_to_dict_round_trip() -> None:
    from trading.strategies import GridConfig

    cfg = GridConfig.from_dict({"order_amount": "0.01", "levels": 4})
    assert GridConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError) as info:
        GridConfig.from_dict({"order_amount": "0.01", "levels": "4"})
    assert set(info.value.errors) == {"levels"}
