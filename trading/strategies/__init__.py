"""Strategy registry: names, validated configs, construction and descriptions for forms/API.

``STRATEGIES[name] = (ConfigClass, StrategyClass)``. Configs hold prices and amounts as
``Decimal`` in quote/base currency; strategies convert them to ticks and lots with the
instrument when built (bids and ceilings round down, asks and floors up, sizes down).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from trading.amounts import instrument_errors
from trading.config import ConfigError, describe, parse_config
from trading.instruments import Instrument, InstrumentError
from trading.strategies.auto import AutoConfig, AutoStrategy
from trading.strategies.avellaneda_stoikov import AvellanedaStoikovConfig, AvellanedaStoikovStrategy
from trading.strategies.fixed_spread import FixedSpreadConfig, FixedSpreadStrategy
from trading.strategies.grid import GridConfig, GridStrategy
from trading.strategies.inventory_based import InventoryBasedConfig, InventoryBasedStrategy
from trading.strategies.trend_following import TrendFollowingConfig, TrendFollowingStrategy
from trading.strategies.volatility_adaptive import VolatilityAdaptiveConfig, VolatilityAdaptiveStrategy
from trading.strategy import Strategy

STRATEGIES: dict[str, tuple[type, type]] = {
    "fixed_spread": (FixedSpreadConfig, FixedSpreadStrategy),
    "avellaneda_stoikov": (AvellanedaStoikovConfig, AvellanedaStoikovStrategy),
    "grid": (GridConfig, GridStrategy),
    "volatility_adaptive": (VolatilityAdaptiveConfig, VolatilityAdaptiveStrategy),
    "trend_following": (TrendFollowingConfig, TrendFollowingStrategy),
    "inventory_based": (InventoryBasedConfig, InventoryBasedStrategy),
    "auto": (AutoConfig, AutoStrategy),
}


def _lookup(name: str) -> tuple[type, type]:
    if name not in STRATEGIES:
        raise ConfigError({"strategy": f"{name!r} is not a strategy; accepted: {', '.join(STRATEGIES)}"})
    return STRATEGIES[name]


def validate_params(name: str, params: Mapping[str, Any]) -> Any:
    """Parse ``params`` into the named strategy's frozen config; raises ConfigError with every bad field."""
    config_cls, _ = _lookup(name)
    return parse_config(config_cls, params)


def build_strategy(name: str, params: Mapping[str, Any], instrument: Instrument) -> Strategy:
    """Validate ``params`` and build the strategy for ``instrument``.

    Values that cannot be represented on the instrument (an amount below one lot, or beyond
    int64 lots or ticks: :func:`trading.amounts.instrument_errors`) raise ConfigError naming
    the field.
    """
    config = validate_params(name, params)
    errors = instrument_errors(config, instrument)
    if errors:
        raise ConfigError(errors)
    _, strategy_cls = STRATEGIES[name]
    try:
        return strategy_cls(config, instrument)
    except InstrumentError as exc:
        message = str(exc)
        field, _, rest = message.partition(": ")
        raise ConfigError({field if rest else "__all__": rest or message}) from None


def describe_strategy(name: str) -> dict[str, Any]:
    """JSON-schema-like description of a strategy's parameters (see ``trading.config.describe``)."""
    config_cls, strategy_cls = _lookup(name)
    schema = describe(config_cls)
    schema["strategy"] = name
    doc = (strategy_cls.__doc__ or "").strip().split("\n\n")[0]
    schema["summary"] = " ".join(doc.split())
    return schema


__all__ = [
    "STRATEGIES",
    "AutoConfig",
    "AvellanedaStoikovConfig",
    "ConfigError",
    "FixedSpreadConfig",
    "GridConfig",
    "InventoryBasedConfig",
    "TrendFollowingConfig",
    "VolatilityAdaptiveConfig",
    "build_strategy",
    "describe_strategy",
    "validate_params",
]
