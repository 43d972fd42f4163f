"""Validation of a backtest's inputs: strategy params, risk limits and data-source parameters.

Every problem is collected as ``{field: message}`` (nested under ``params``, ``risk`` or
``data_params``) so the API answers 400 naming each bad field at once.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta
from typing import Any

from django.utils.dateparse import parse_datetime

from apps.backtests.models import DataSource
from apps.exchanges.models import Market
from trading.config import ConfigError
from trading.risk import RiskLimits
from trading.strategies import STRATEGIES, validate_params

MAX_STORED_RANGE = timedelta(days=31)
# Plain ASCII decimals only: no exponent, underscores, other scripts' digits, NaN or Infinity.
_PLAIN_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)", re.ASCII)
MAX_MONTE_CARLO_PATHS = 2_000
AS_FLOAT_FIELDS = ("s0", "horizon", "sigma", "dt", "arrival_a", "decay_k", "gamma")


class BacktestInputError(ValueError):
    """Invalid backtest input; ``errors`` maps fields (nested per section) to messages."""

    def __init__(self, errors: dict[str, Any]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))


def _int(data: dict, key: str, errors: dict, *, default: int | None, low: int, high: int) -> int | None:
    value = data.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        errors[key] = f"{value!r} is not accepted; give a whole number from {low} to {high}"
        return None
    return value


def _float(data: dict, key: str, errors: dict, *, default: float, low: float, high: float, strict_low=False):
    value = data.get(key, default)
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > low if strict_low else value >= low) and value <= high
    if not ok:
        bound = ">" if strict_low else ">="
        errors[key] = f"{value!r} is not accepted; give a number {bound} {low} and <= {high}"
        return None
    return float(value)


def _unknown(data: dict, accepted: tuple[str, ...], errors: dict) -> None:
    for key in data:
        if key not in accepted:
            errors[key] = f"unknown parameter; accepted: {', '.join(accepted)}"


def _recording(data: dict, owner=None) -> dict:
    from connectors.binance_recording import RECORDINGS

    errors: dict[str, Any] = {}
    _unknown(data, ("recording", "max_events", "perp"), errors)
    name = data.get("recording")
    if isinstance(name, str) and name.startswith("user:"):
        if user_recording(name, owner) is None:
            errors["recording"] = (
                f"{name!r} is not one of your recordings; accepted: user:<id> from /api/v1/recordings/"
            )
        if "perp" in data:
            errors["perp"] = "perpetual settings apply to the shipped perpetual recordings only"
        _int(data, "max_events", errors, default=None, low=1, high=50_000_000)
        return errors
    if name not in RECORDINGS:
        errors["recording"] = (
            f"{name!r} is not a recording; accepted: {', '.join(RECORDINGS)} or user:<id> (your uploaded recordings)"
        )
    _int(data, "max_events", errors, default=None, low=1, high=50_000_000)
    if "perp" in data and name in RECORDINGS:
        recording = RECORDINGS[name]
        if not recording.contract.is_perpetual:
            perps = ", ".join(k for k, r in RECORDINGS.items() if r.contract.is_perpetual)
            errors["perp"] = f"{name} is a spot market; perpetual settings apply to: {perps}"
        else:
            perp_errors = validate_perp(data["perp"], recording.contract)
            if perp_errors:
                errors["perp"] = perp_errors
    return errors


PERP_FIELDS = ("leverage", "wallet", "margin_mode", "position_mode", "funding_rate", "limits")


def validate_perp(data: object, contract, position_modes: tuple[str, ...] = ("one_way", "hedge")) -> dict[str, str]:
    """Perpetual settings of a backtest: leverage (1 to the market's maximum), wallet (the
    margin, in the settle currency), margin mode, position mode (``one_way``, the default, or
    ``hedge``: a long and a short leg, :mod:`trading.hedge_legs`; ``position_modes`` are those
    accepted), funding rate per 8 h (constant) and the perpetual risk limits (``limits``:
    :class:`trading.perp_risk.PerpRiskLimits`)."""
    from trading.config import ConfigError
    from trading.contracts import frac
    from trading.instruments import InstrumentError
    from trading.perp_risk import PerpRiskLimits

    if not isinstance(data, dict):
        return {"perp": f"must be an object with any of: {', '.join(PERP_FIELDS)}"}
    errors: dict[str, str] = {}
    _unknown(data, PERP_FIELDS, errors)
    _int(data, "leverage", errors, default=10, low=1, high=contract.max_leverage)
    for key, low, high, default in (
        ("wallet", "0", "1000000000", "10000"),
        ("funding_rate", "-0.03", "0.03", "0.0001"),
    ):
        raw = data.get(key, default)
        text = raw if isinstance(raw, str) else None
        try:
            if text is None or not _PLAIN_DECIMAL.fullmatch(text.strip()):
                raise InstrumentError("not a plain decimal")
            value = frac(text.strip(), key)
            if not (value > frac(low) if key == "wallet" else value >= frac(low)) or value > frac(high):
                raise InstrumentError("out of range")
        except InstrumentError:
            bound = f"above {low}" if key == "wallet" else f"from {low}"
            errors[key] = (
                f"{raw!r} is not accepted; give a decimal string {bound} up to {high} ({contract.settle or 'per 8 h'})"
            )
    if data.get("margin_mode", "isolated") not in ("isolated", "cross"):
        errors["margin_mode"] = f"{data.get('margin_mode')!r} is not accepted; accepted: isolated, cross"
    if data.get("position_mode", "one_way") not in position_modes:
        errors["position_mode"] = (
            f"{data.get('position_mode')!r} is not accepted; accepted: {', '.join(position_modes)}"
        )
    if "limits" in data:
        try:
            PerpRiskLimits.from_dict(data["limits"])
        except ConfigError as exc:
            errors.update({f"limits.{k}": v for k, v in exc.errors.items()})
    return errors


def _stored(data: dict) -> dict:
    errors: dict[str, str] = {}
    _unknown(data, ("market", "start", "end"), errors)
    market = data.get("market")
    if isinstance(market, bool) or not isinstance(market, int) or not Market.objects.filter(pk=market).exists():
        errors["market"] = f"{market!r} is not a market id; accepted: an id from /api/v1/markets/"
    times: dict[str, datetime] = {}
    for key in ("start", "end"):
        raw = data.get(key)
        parsed = parse_datetime(raw) if isinstance(raw, str) else None
        if parsed is None or parsed.tzinfo is None:
            errors[key] = f"{raw!r} is not accepted; give an ISO 8601 time with a zone, e.g. 2026-11-20T09:00:00Z"
        else:
            times[key] = parsed
    if len(times) == 2:
        if times["start"] >= times["end"]:
            errors["start"] = f"{data['start']} is not before end {data['end']}"
        elif times["end"] - times["start"] > MAX_STORED_RANGE:
            errors["end"] = f"range is longer than the maximum {MAX_STORED_RANGE.days} days"
    return errors


def _synthetic_as(data: dict) -> dict:
    errors: dict[str, str] = {}
    _unknown(data, (*AS_FLOAT_FIELDS, "q0", "seed", "monte_carlo_paths", "mc_strategy"), errors)
    for key in AS_FLOAT_FIELDS:
        if key in data:
            _float(data, key, errors, default=1.0, low=0.0, high=1e9, strict_low=True)
    if "dt" not in errors and "horizon" not in errors and data.get("dt", 0.005) > data.get("horizon", 1.0):
        errors["dt"] = f"{data.get('dt')!r} is longer than the horizon; give dt <= horizon"
    _int(data, "q0", errors, default=0, low=-1_000_000, high=1_000_000)
    _int(data, "seed", errors, default=0, low=0, high=2**63 - 1)
    _int(data, "monte_carlo_paths", errors, default=0, low=0, high=MAX_MONTE_CARLO_PATHS)
    if data.get("mc_strategy", "inventory") not in ("inventory", "symmetric"):
        errors["mc_strategy"] = f"{data.get('mc_strategy')!r} is not accepted; accepted: inventory, symmetric"
    return errors


def _synthetic_multivenue(data: dict) -> dict:
    errors: dict[str, str] = {}
    _unknown(data, ("venues", "seed", "duration_s", "volatility", "correlation", "s0"), errors)
    _int(data, "venues", errors, default=2, low=2, high=10)
    _int(data, "seed", errors, default=0, low=0, high=2**63 - 1)
    _int(data, "duration_s", errors, default=600, low=1, high=7 * 86_400)
    _float(data, "volatility", errors, default=0.5, low=0.0, high=10.0, strict_low=True)
    _float(data, "correlation", errors, default=0.9, low=-1.0, high=1.0)
    _float(data, "s0", errors, default=100.0, low=0.0, high=1e9, strict_low=True)
    return errors


DATA_VALIDATORS = {
    DataSource.RECORDING: _recording,
    DataSource.STORED: _stored,
    DataSource.SYNTHETIC_AS: _synthetic_as,
    DataSource.SYNTHETIC_MULTIVENUE: _synthetic_multivenue,
}


def user_recording(name: str, owner):
    """The uploaded recording ``user:<id>`` when ``owner`` may use it (operators: any), else None."""
    from apps.research.selectors import recording_get

    return None if owner is None else recording_get(user=owner, rec_id=name.removeprefix("user:"))


def validate_backtest_input(
    *, strategy: str, params: dict, risk: dict, data_source: str, data_params: dict, owner=None
) -> dict[str, Any]:
    """Return ``{}`` when everything is valid, else the errors per section and field."""
    from apps.backtests import hedged

    if data_source == DataSource.HEDGED_RECORDINGS or strategy == hedged.STRATEGY:
        if data_source != DataSource.HEDGED_RECORDINGS:
            return {
                "data_source": f"{data_source!r} is not accepted for {hedged.STRATEGY}; accepted: hedged_recordings"
            }
        errors = hedged.validate(strategy, params, data_params) if isinstance(data_params, dict) else {}
        if not isinstance(data_params, dict):
            errors["data_params"] = "must be an object"
        limits = {k: v for k, v in risk.items() if v not in (None, False, "")} if isinstance(risk, dict) else risk
        if limits:  # the form sends kill_switch: false; any limit actually set is refused
            errors["risk"] = f"{limits!r}: {hedged.STRATEGY} has its own limits in data_params.bot; give risk {{}}"
        return errors
    errors: dict[str, Any] = {}
    if strategy not in STRATEGIES:
        errors["strategy"] = f"{strategy!r} is not a strategy; accepted: {', '.join(STRATEGIES)}"
    elif not isinstance(params, dict):
        errors["params"] = "must be an object of strategy parameters"
    else:
        try:
            validate_params(strategy, params)
        except ConfigError as exc:
            errors["params"] = exc.errors
    if not isinstance(risk, dict):
        errors["risk"] = "must be an object of risk limits"
    else:
        try:
            RiskLimits.from_dict(risk)
        except ConfigError as exc:
            errors["risk"] = exc.errors
    validator = DATA_VALIDATORS.get(data_source)
    if validator is None:
        errors["data_source"] = f"{data_source!r} is not a data source; accepted: {', '.join(DataSource.values)}"
    elif not isinstance(data_params, dict):
        errors["data_params"] = "must be an object"
    else:
        data_params, profile_errors = _profile(data_source, data_params, owner)
        data_errors = validator(data_params, owner) if validator is _recording else validator(data_params)
        data_errors = {**data_errors, **profile_errors}
        if data_errors:
            errors["data_params"] = data_errors
    return errors


PROFILE_KEYS = ("profile", "profile_seed")
PROFILE_SOURCES = (DataSource.RECORDING, DataSource.STORED)


def _profile(data_source: str, data_params: dict, owner) -> tuple[dict, dict[str, str]]:
    """Check the simulator profile fields (``profile``: an id from /api/v1/simulator-profiles/,
    ``profile_seed``: the seed of its latency draws); return the other fields and the errors."""
    from apps.research.profiles import profile_get

    rest = {k: v for k, v in data_params.items() if k not in PROFILE_KEYS}
    errors: dict[str, str] = {}
    if not any(k in data_params for k in PROFILE_KEYS):
        return rest, errors
    if data_source not in PROFILE_SOURCES:
        errors["profile"] = f"a simulator profile applies to these data sources only: {', '.join(PROFILE_SOURCES)}"
        return rest, errors
    profile = data_params.get("profile")
    if owner is None or profile_get(user=owner, profile_id=profile) is None:
        errors["profile"] = (
            f"{profile!r} is not one of your simulator profiles; accepted: an id from /api/v1/simulator-profiles/"
        )
    _int(data_params, "profile_seed", errors, default=0, low=0, high=2**63 - 1)
    return rest, errors
