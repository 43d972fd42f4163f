"""Automatic strategy selection from market conditions (volatility, liquidity, trend).

Priority, checked in order: volatility above ``volatility_high`` -> volatility_adaptive;
liquidity below ``liquidity_low`` -> inventory_based; trend strength above ``trend_strong`` ->
trend_following; otherwise grid. To avoid flapping, a regime is left only when its condition
has cleared by ``hysteresis`` (e.g. sigma below ``volatility_high * (1 - hysteresis)``) and a
regime is held for at least ``min_dwell`` seconds (except the provisional choice made while the
signals warm up).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from trading.config import ConfigBase, ConfigError, parse_config, prefixed
from trading.instruments import Instrument
from trading.signals import MidVolatility, TrendSignal, liquidity
from trading.strategies._quoting import NS, QUOTE_EVENTS, amount_to_lots, pulled, read_market
from trading.strategies.grid import GridConfig, GridStrategy
from trading.strategies.inventory_based import InventoryBasedConfig, InventoryBasedStrategy
from trading.strategies.trend_following import TrendFollowingConfig, TrendFollowingStrategy
from trading.strategies.volatility_adaptive import VolatilityAdaptiveConfig, VolatilityAdaptiveStrategy
from trading.strategy import QuoteSet, StrategyContext

if TYPE_CHECKING:  # pragma: no cover
    from trading.events import Event

REGIMES: dict[str, tuple[type, type]] = {
    "volatility_adaptive": (VolatilityAdaptiveConfig, VolatilityAdaptiveStrategy),
    "inventory_based": (InventoryBasedConfig, InventoryBasedStrategy),
    "trend_following": (TrendFollowingConfig, TrendFollowingStrategy),
    "grid": (GridConfig, GridStrategy),
}
_POS = {"min": 0.0, "exclusive_min": True}


@dataclass(frozen=True)
class AutoConfig(ConfigBase):
    """Pick a strategy from market conditions; each sub-strategy's parameters are nested.

    ``sigma`` is the standard deviation of mid log-returns over ``volatility_interval`` seconds;
    liquidity is the thinner book side within ``liquidity_pct`` percent of mid (or in the top
    ``liquidity_levels`` levels) in base currency; trend strength is the absolute fractional trend.
    Sub-strategy dicts may leave out ``order_amount`` (this config's ``order_amount`` is used).
    """

    order_amount: Decimal = field(
        metadata={"min": Decimal(0), "exclusive_min": True, "unit": "base", "help": "default size for sub-strategies"}
    )
    volatility_high: float = field(default=0.002, metadata={**_POS, "help": "sigma above this -> volatility_adaptive"})
    liquidity_low: Decimal = field(
        default=Decimal(1), metadata={"min": Decimal(0), "unit": "base", "help": "liquidity below -> inventory_based"}
    )
    trend_strong: float = field(default=0.001, metadata={**_POS, "help": "trend strength above -> trend_following"})
    liquidity_measure: Literal["depth", "top_n"] = field(default="depth", metadata={"help": "how liquidity is read"})
    liquidity_pct: float = field(
        default=0.5, metadata={**_POS, "max": 50.0, "unit": "%", "help": "depth band around mid, in percent"}
    )
    liquidity_levels: int = field(default=5, metadata={"min": 1, "max": 100, "help": "levels for top_n"})
    liquidity_refresh: float = field(
        default=1.0, metadata={"min": 0.0, "unit": "s", "help": "re-measure liquidity at most this often"}
    )
    volatility_interval: float = field(default=1.0, metadata={**_POS, "unit": "s", "help": "sigma horizon"})
    volatility_halflife: float = field(default=120.0, metadata={**_POS, "unit": "s", "help": "EWMA half-life"})
    trend_method: Literal["ema", "regression"] = field(default="ema", metadata={"help": "trend measure"})
    ema_fast: float = field(default=10.0, metadata={**_POS, "unit": "s", "help": "fast EMA half-life"})
    ema_slow: float = field(default=60.0, metadata={**_POS, "unit": "s", "help": "slow EMA half-life"})
    regression_window: float = field(default=60.0, metadata={**_POS, "unit": "s", "help": "slope window"})
    hysteresis: float = field(default=0.1, metadata={"min": 0.0, "max": 0.9, "help": "margin to leave a regime"})
    min_dwell: float = field(default=30.0, metadata={"min": 0.0, "unit": "s", "help": "least time in a regime"})
    volatility_adaptive: dict[str, Any] = field(
        default_factory=dict,
        metadata={"help": "volatility_adaptive params (order_amount optional)", "schema": VolatilityAdaptiveConfig},
    )
    inventory_based: dict[str, Any] = field(
        default_factory=dict,
        metadata={"help": "inventory_based params (order_amount optional)", "schema": InventoryBasedConfig},
    )
    trend_following: dict[str, Any] = field(
        default_factory=dict,
        metadata={"help": "trend_following params (order_amount optional)", "schema": TrendFollowingConfig},
    )
    grid: dict[str, Any] = field(
        default_factory=dict, metadata={"help": "grid params (order_amount optional)", "schema": GridConfig}
    )

    def sub_config(self, regime: str) -> Any:
        """Parse the nested parameters of ``regime`` (raises ConfigError with ``regime.field`` keys)."""
        cfg_cls = REGIMES[regime][0]
        params = {"order_amount": self.order_amount, **getattr(self, regime)}
        try:
            return parse_config(cfg_cls, params)
        except ConfigError as exc:
            raise ConfigError(prefixed(regime, exc.errors)) from None

    def validate(self) -> dict[str, str]:
        errors: dict[str, str] = {}
        for regime in REGIMES:
            try:
                self.sub_config(regime)
            except ConfigError as exc:
                errors.update(exc.errors)
        if self.trend_method == "ema" and self.ema_fast >= self.ema_slow:
            errors["ema_fast"] = f"{self.ema_fast} must be shorter than ema_slow {self.ema_slow}"
        return errors


@dataclass(frozen=True, slots=True)
class Conditions:
    """Market conditions the selection looked at (``None`` = still warming up)."""

    sigma: float | None
    liquidity_lots: int
    trend_strength: float | None


class AutoStrategy:
    """Feed every sub-strategy every event (so their signals stay warm), let the one the current
    regime selects quote, and return its quotes with the regime and its cause in ``reason``."""

    name = "auto"

    def __init__(self, config: AutoConfig, instrument: Instrument) -> None:
        self.config = config
        self.instrument = instrument
        self.subs = {name: cls(config.sub_config(name), instrument) for name, (_, cls) in REGIMES.items()}
        self.liquidity_low_lots = instrument.lots(config.liquidity_low, field="liquidity_low", round_down=True)
        amount_to_lots(instrument, "order_amount", config.order_amount)  # fail early if below one lot
        self.volatility = MidVolatility(
            interval_s=config.volatility_interval, halflife_s=config.volatility_halflife, relative=True
        )
        self.trend = TrendSignal(
            method=config.trend_method,
            fast_s=config.ema_fast,
            slow_s=config.ema_slow,
            window_s=config.regression_window,
        )
        self.regime: str | None = None
        self.regime_since: int = 0
        self.regime_cause = ""
        self._provisional = True
        self.switches = 0
        self.conditions: Conditions | None = None
        self._liquidity_lots = 0
        self._next_liquidity_ts: int | None = None

    def sigma(self) -> float | None:
        return self.volatility.sigma_over(self.config.volatility_interval)

    def _wanted(self, c: Conditions) -> tuple[str, str]:
        """The regime the conditions call for, with hysteresis relative to the current one."""
        cfg = self.config
        h = cfg.hysteresis
        vol_line = cfg.volatility_high * (1 - h if self.regime == "volatility_adaptive" else 1)
        if c.sigma is not None and c.sigma > vol_line:
            if c.sigma > cfg.volatility_high:
                return "volatility_adaptive", f"sigma {c.sigma:.3g} > volatility_high {cfg.volatility_high:g}"
            return "volatility_adaptive", f"sigma {c.sigma:.3g} still above exit level {vol_line:.3g} (hysteresis)"
        liq_line = self.liquidity_low_lots * (1 + h if self.regime == "inventory_based" else 1)
        if c.liquidity_lots < liq_line:
            liq = self.instrument.quantity(c.liquidity_lots)
            if c.liquidity_lots < self.liquidity_low_lots:
                return "inventory_based", f"liquidity {liq} < liquidity_low {cfg.liquidity_low}"
            exit_level = self.instrument.quantity(self.liquidity_low_lots) * Decimal(repr(1 + h))
            return "inventory_based", f"liquidity {liq} still below exit level {exit_level} (hysteresis)"
        trend_line = cfg.trend_strong * (1 - h if self.regime == "trend_following" else 1)
        if c.trend_strength is not None and c.trend_strength > trend_line:
            if c.trend_strength > cfg.trend_strong:
                return "trend_following", f"trend strength {c.trend_strength:.3g} > trend_strong {cfg.trend_strong:g}"
            return "trend_following", (
                f"trend strength {c.trend_strength:.3g} still above exit level {trend_line:.3g} (hysteresis)"
            )
        sigma = "warming up" if c.sigma is None else f"{c.sigma:.3g}"
        trend = "warming up" if c.trend_strength is None else f"{c.trend_strength:.3g}"
        return "grid", f"calm: sigma {sigma}, trend strength {trend}, liquidity ok"

    def select(self, ts: int, c: Conditions) -> str:
        """Update and return the regime for conditions ``c`` at ``ts`` (honours ``min_dwell``)."""
        wanted, cause = self._wanted(c)
        provisional = self._provisional
        # Until every signal has warmed up the choice is provisional and not held for min_dwell.
        self._provisional = c.sigma is None or c.trend_strength is None
        if self.regime is None or provisional:
            if self.regime is not None and wanted != self.regime:
                self.switches += 1
            self.regime, self.regime_since, self.regime_cause = wanted, ts, cause
        elif wanted == self.regime:
            self.regime_cause = cause
        else:
            held = (ts - self.regime_since) / NS
            if held >= self.config.min_dwell:
                self.regime, self.regime_since, self.regime_cause = wanted, ts, cause
                self.switches += 1
            else:
                self.regime_cause = (
                    f"held {held:.0f}s of min_dwell {self.config.min_dwell:g}s; conditions call for {wanted} ({cause})"
                )
        return self.regime

    def on_event(self, event: Event, ctx: StrategyContext) -> QuoteSet | None:
        """Feed every sub-strategy, pick the regime on book/timer events, return its quotes."""
        if not isinstance(event, QUOTE_EVENTS):
            for sub in self.subs.values():
                sub.observe_event(event, ctx)
            return None
        market = read_market(ctx.book)
        if market is None:
            for sub in self.subs.values():
                sub.on_event(event, ctx)
            return pulled("auto: the book has no bid or no ask (or is crossed)")
        mid = market.mid_float
        self.volatility.update(ctx.ts, mid)
        self.trend.update(ctx.ts, mid)
        if self._next_liquidity_ts is None or ctx.ts >= self._next_liquidity_ts:
            # Walking the depth band is the costliest signal; liquidity moves slowly, so throttle it.
            self._liquidity_lots = liquidity(
                ctx.book,
                measure=self.config.liquidity_measure,
                pct=self.config.liquidity_pct,
                levels=self.config.liquidity_levels,
            )
            self._next_liquidity_ts = ctx.ts + int(self.config.liquidity_refresh * NS)
        c = Conditions(sigma=self.sigma(), liquidity_lots=self._liquidity_lots, trend_strength=self.trend.strength)
        self.conditions = c
        regime = self.select(ctx.ts, c)
        # Only the selected sub-strategy quotes; the others just keep their signals warm.
        chosen = None
        for name, sub in self.subs.items():
            if name == regime:
                chosen = sub.on_event(event, ctx)
            else:
                sub.observe_event(event, ctx)
        if chosen is None:
            return None
        return QuoteSet(chosen.bids, chosen.asks, f"regime={regime}: {self.regime_cause}; {chosen.reason}")
