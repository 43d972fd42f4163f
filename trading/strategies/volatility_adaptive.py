"""Volatility-adaptive spreads: quote wider when the mid moves more."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from trading.config import ConfigBase
from trading.instruments import Instrument
from trading.signals import MidVolatility
from trading.strategies._quoting import (
    Market,
    QuotingStrategy,
    amount_to_lots,
    build_quote_set,
    ladder,
)
from trading.strategy import QuoteSet, StrategyContext

_FRACTION = {"min": Decimal(0), "max": Decimal("0.5"), "unit": "fraction of mid"}


@dataclass(frozen=True)
class VolatilityAdaptiveConfig(ConfigBase):
    """Spread = base_spread + vol_multiplier x sigma, clamped to [min_spread, max_spread].

    ``sigma`` is the standard deviation of mid log-returns over ``volatility_interval`` seconds
    (a fraction of price), estimated online. The spread is each side's distance from the mid.
    Until sigma is known the strategy quotes at ``max_spread`` (the cautious choice).
    """

    order_amount: Decimal = field(
        metadata={"min": Decimal(0), "exclusive_min": True, "unit": "base", "help": "size per order"}
    )
    base_spread: Decimal = field(default=Decimal("0.001"), metadata={**_FRACTION, "help": "spread at zero volatility"})
    vol_multiplier: Decimal = field(
        default=Decimal(2), metadata={"min": Decimal(0), "max": Decimal(100), "help": "spread added per unit of sigma"}
    )
    min_spread: Decimal = field(default=Decimal("0.0005"), metadata={**_FRACTION, "help": "spread floor"})
    max_spread: Decimal = field(default=Decimal("0.02"), metadata={**_FRACTION, "help": "spread cap"})
    levels: int = field(default=1, metadata={"min": 1, "max": 50, "help": "orders per side"})
    level_spacing: Decimal = field(default=Decimal("0.001"), metadata={**_FRACTION, "help": "extra per level"})
    volatility_interval: float = field(
        default=1.0, metadata={"min": 0.0, "exclusive_min": True, "unit": "s", "help": "sigma horizon and sampling"}
    )
    volatility_halflife: float = field(
        default=120.0, metadata={"min": 0.0, "exclusive_min": True, "unit": "s", "help": "EWMA half-life"}
    )

    def validate(self) -> dict[str, str]:
        if self.min_spread > self.max_spread:
            return {"min_spread": f"{self.min_spread} must not exceed max_spread {self.max_spread}"}
        return {}


class VolatilityAdaptiveStrategy(QuotingStrategy):
    """Ladder around the mid whose spread follows the estimated volatility."""

    name = "volatility_adaptive"
    config: VolatilityAdaptiveConfig

    def __init__(self, config: VolatilityAdaptiveConfig, instrument: Instrument) -> None:
        super().__init__(config, instrument)
        self.order_lots = amount_to_lots(instrument, "order_amount", config.order_amount)
        self._spacing = float(config.level_spacing)
        self.volatility = MidVolatility(
            interval_s=config.volatility_interval, halflife_s=config.volatility_halflife, relative=True
        )

    @property
    def sigma(self) -> float | None:
        """Volatility of log-returns over ``volatility_interval`` (``None`` while warming up)."""
        return self.volatility.sigma_over(self.config.volatility_interval)

    def spread_for(self, sigma: float | None) -> Decimal:
        """The clamped per-side spread for a volatility (``max_spread`` when unknown)."""
        cfg = self.config
        if sigma is None:
            return cfg.max_spread
        raw = cfg.base_spread + cfg.vol_multiplier * Decimal(repr(sigma))
        return min(max(raw, cfg.min_spread), cfg.max_spread)

    def observe(self, ts: int, market: Market, ctx: StrategyContext) -> None:
        self.volatility.update(ts, market.mid_float)

    def quote(self, ctx: StrategyContext, market: Market) -> QuoteSet | None:
        sigma = self.sigma
        spread = self.spread_for(sigma)
        lots = [self.order_lots] * self.config.levels
        bids, asks = ladder(
            market,
            bid_offset=float(spread),
            ask_offset=float(spread),
            spacing=self._spacing,
            levels=self.config.levels,
            bid_lots=lots,
            ask_lots=lots,
        )
        vol = "sigma warming up, using max_spread" if sigma is None else f"sigma {sigma:.3g}"
        return build_quote_set(self.instrument, market, bids, asks, f"volatility adaptive: {vol}, spread {spread:.3g}")
