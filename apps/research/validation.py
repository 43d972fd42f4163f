"""Validation of an optimisation's inputs. Every problem is collected as ``{field: message}``
naming the value and what would be accepted (the API answers 400 with all of them)."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from trading.config import ConfigError
from trading.strategies import STRATEGIES, describe_strategy, validate_params

OBJECTIVES = {
    "net_pnl": "total PnL (quote currency)",
    "pnl_per_inventory_risk": "total PnL per unit of inventory standard deviation (quote per base)",
    "sharpe": "Sharpe ratio of the equity curve (annualised)",
    "markout_adjusted_spread_capture": "10 s markout total of the fills (quote currency)",
    "fill_ratio": "filled / placed quantity",
}
CONSTRAINTS = {
    "max_drawdown": "largest allowed drawdown (quote currency)",
    "max_inventory": "largest allowed absolute inventory (base)",
}
SAMPLERS = ("tpe", "grid")
MAX_GRID = 10_000
_PLAIN = re.compile(r"[+-]?(?:[0-9]{1,20}(?:\.[0-9]{0,18})?|\.[0-9]{1,18})", re.ASCII)


def plain_decimal(value: object) -> Decimal | None:
    """A plain ASCII decimal string or int (no exponent, underscore, NaN, other digits), or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Decimal(value) if abs(value) < 10**20 else None
    if isinstance(value, str) and _PLAIN.fullmatch(value.strip()):
        return Decimal(value.strip())
    return None


def _space_errors(strategy: str, space: object, sampler: str, base: dict) -> dict[str, str]:
    if not isinstance(space, dict) or not space:
        return {
            "search_space": 'give an object of parameter -> range, e.g. {"bid_spread": {"low": "0.0001", "high": "0.002"}}'
        }
    props = describe_strategy(strategy)["properties"]
    errors: dict[str, str] = {}
    combos = 1
    for name, spec in space.items():
        where = f"search_space.{name}"
        if name not in props:
            errors[where] = f"not a parameter of {strategy}; accepted: {', '.join(props)}"
            continue
        prop = props[name]
        if not isinstance(spec, dict):
            errors[where] = 'give {"low": ..., "high": ...}, {"choices": [...]} or, for grid, {"values": [...]}'
            continue
        if sampler == "grid" or "values" in spec or "choices" in spec:
            values = spec.get("values", spec.get("choices"))
            if not isinstance(values, list) or not 1 <= len(values) <= 50:
                errors[where] = f"{values!r} is not accepted; give a list of 1 to 50 values"
                continue
            combos *= len(values)
            try:
                for v in values:
                    validate_params(strategy, {**base, name: v})
            except ConfigError as exc:
                errors[where] = f"value refused: {exc.errors.get(name) or exc}"
            continue
        kind = prop.get("type")
        if kind not in ("integer", "number", "string") or (kind == "string" and prop.get("format") != "decimal"):
            errors[where] = f'a {kind} parameter takes {{"choices": [...]}}, not a range'
            continue
        low, high = plain_decimal(spec.get("low")), plain_decimal(spec.get("high"))
        if low is None or high is None:
            errors[where] = (
                f'low {spec.get("low")!r} / high {spec.get("high")!r}: give plain decimal strings, e.g. "0.001"'
            )
            continue
        if low >= high:
            errors[where] = f"empty range: low {low} is not below high {high}"
            continue
        if kind == "integer" and (low != int(low) or high != int(high)):
            errors[where] = f"{name} is a whole number; give whole low/high, not {low} / {high}"
            continue
        minimum, maximum = prop.get("minimum"), prop.get("maximum")
        if minimum is not None and (
            low < Decimal(str(minimum)) or (prop.get("exclusiveMinimum") and low <= Decimal(str(minimum)))
        ):
            errors[where] = f"low {low} is below {name}'s minimum {minimum}"
        elif maximum is not None and high > Decimal(str(maximum)):
            errors[where] = f"high {high} is above {name}'s maximum {maximum}"
        elif spec.get("log") and low <= 0:
            errors[where] = f"a log range needs low above 0, not {low}"
        unknown = set(spec) - {"low", "high", "log"}
        if unknown:
            errors[where] = f"unknown keys {sorted(unknown)}; accepted: low, high, log"
    if sampler == "grid" and combos > MAX_GRID:
        errors["search_space"] = f"the grid has {combos} points; at most {MAX_GRID}"
    return errors


def validate_optimisation(data: dict[str, Any], owner=None) -> dict[str, Any]:
    """``{}`` when the optimisation request is valid, else the errors by field."""
    from connectors.binance_recording import RECORDINGS

    errors: dict[str, Any] = {}
    strategy = data.get("strategy")
    if strategy not in STRATEGIES:
        return {"strategy": f"{strategy!r} is not a strategy; accepted: {', '.join(STRATEGIES)}"}
    base = data.get("params") or {}
    if not isinstance(base, dict):
        errors["params"] = "must be an object of strategy parameters"
    else:
        try:
            validate_params(strategy, base)
        except ConfigError as exc:
            errors["params"] = exc.errors
    sampler = data.get("sampler", "tpe")
    if sampler not in SAMPLERS:
        errors["sampler"] = f"{sampler!r} is not accepted; accepted: {', '.join(SAMPLERS)}"
    else:
        errors.update(
            _space_errors(strategy, data.get("search_space"), sampler, base if "params" not in errors else {})
        )
    objective = data.get("objective")
    if objective not in OBJECTIVES:
        errors["objective"] = f"{objective!r} is not a metric; accepted: {', '.join(OBJECTIVES)}"
    constraints = data.get("constraints") or {}
    if not isinstance(constraints, dict):
        errors["constraints"] = f"must be an object with any of: {', '.join(CONSTRAINTS)}"
    else:
        for key, value in constraints.items():
            if key not in CONSTRAINTS:
                errors[f"constraints.{key}"] = f"unknown constraint; accepted: {', '.join(CONSTRAINTS)}"
            elif (d := plain_decimal(value)) is None or d <= 0:
                errors[f"constraints.{key}"] = f"{value!r} is not accepted; give a plain decimal above 0"
    recording = data.get("recording")
    if isinstance(recording, str) and recording.startswith("user:"):
        from apps.backtests.validation import user_recording

        if user_recording(recording, owner) is None:
            errors["recording"] = (
                f"{recording!r} is not one of your recordings; accepted: user:<id> from /api/v1/recordings/"
            )
    elif recording not in RECORDINGS:
        errors["recording"] = (
            f"{recording!r} is not a recording; accepted: {', '.join(RECORDINGS)} or user:<id> (your uploaded recordings)"
        )
    for key, low, high, default in (
        ("n_trials", 1, 2_000, None),
        ("folds", 0, 12, 0),
        ("parallel", 1, 16, 2),
        ("max_events", 1_000, 50_000_000, 1_000),
    ):
        value = data.get(key, default)
        if key == "max_events" and data.get(key) is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            errors[key] = f"{value!r} is not accepted; give a whole number from {low} to {high}"
    if data.get("oos_min") is not None and plain_decimal(data.get("oos_min")) is None:
        errors["oos_min"] = f"{data.get('oos_min')!r} is not accepted; give a plain decimal in the objective's units"
    return errors
