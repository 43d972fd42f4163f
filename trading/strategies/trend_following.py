"""Trend-following quoting: shift the quote ladder toward the trend of the mid."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

from trading.config import ConfigBase
from trading.instruments import Instrument
from trading.signals import TrendSignal
from trading.strategies._quoting import (
    Market,
    QuotingStrategy,
    amount_to_lots,
    build_quote_set,
    ladder,
)
from trading.strategy import QuoteSet, StrategyContext

_FRACTION = {"min": Decimal(0), "max": Decimal("0.5"), "unit": "fraction of mid"}
_SECONDS = {"min": 0.0, "exclusive_min": True, "unit": "s"}


@dataclass(frozen=True)
class TrendFollowingConfig(ConfigBase):
    """Quotes centred on ``mid * (1 + skew)`` with ``skew = clamp(skew_strength * trend, +-max_skew)``.

    ``trend`` is a signed fraction of price: ``(ema_fast - ema_slow) / ema_slow`` or the
    regression line's move over ``regression_window``. In an uptrend both quotes move up: the bid
    gets more aggressive (buy with the trend) and the ask backs off.
    """

    order_amount: Decimal = field(
        metadata={"min": Decimal(0), "exclusive_min": True, "unit": "base", "help": "size per order"}
    )
    spread: Decimal = field(default=Decimal("0.001"), metadata={**_FRACTION, "help": "distance from the centre"})
    levels: int = field(default=1, metadata={"min": 1, "max": 50, "help": "orders per side"})
    level_spacing: Decimal = field(default=Decimal("0.001"), metadata={**_FRACTION, "help": "extra per level"})
    trend_method: Literal["ema", "regression"] = field(default="ema", metadata={"help": "how trend is measured"})
    ema_fast: float = field(default=10.0, metadata={**_SECONDS, "help": "fast EMA half-life"})
    ema_slow: float = field(default=60.0, metadata={**_SECONDS, "help": "slow EMA half-life"})
    regression_window: float = field(default=60.0, metadata={**_SECONDS, "help": "window for the slope"})
    skew_strength: Decimal = field(
        default=Decimal(1), metadata={"min": Decimal(0), "max": Decimal(100), "help": "skew per unit of trend"}
    )
    max_skew: Decimal = field(default=Decimal("0.002"), metadata={**_FRACTION, "help": "largest centre shift"})

    def validate(self) -> dict[str, str]:
        if self.trend_method == "ema" and self.ema_fast >= self.ema_slow:
            return {"ema_fast": f"{self.ema_fast} must be shorter than ema_slow {self.ema_slow}"}
        return {}


class TrendFollowingStrategy(QuotingStrategy):
    """Ladder around a centre moved toward the trend."""

    name = "trend_following"
    config: TrendFollowingConfig

    def __init__(self, config: TrendFollowingConfig, instrument: Instrument) -> None:
        super().__init__(config, instrument)
        self.order_lots = amount_to_lots(instrument, "order_amount", config.order_amount)
        self._spread, self._spacing = float(config.spread), float(config.level_spacing)
        self.trend = TrendSignal(
            method=config.trend_method,
            fast_s=config.ema_fast,
            slow_s=config.ema_slow,
            window_s=config.regression_window,
        )

    def skew(self) -> Decimal:
        """Current centre shift as a fraction of mid (0 while the trend warms up)."""
        t = self.trend.trend
        if t is None:
            return Decimal(0)
        raw = self.config.skew_strength * Decimal(repr(t))
        return max(-self.config.max_skew, min(self.config.max_skew, raw))

    def observe(self, ts: int, market: Market, ctx: StrategyContext) -> None:
        self.trend.update(ts, market.mid_float)

    def quote(self, ctx: StrategyContext, market: Market) -> QuoteSet | None:
        skew = self.skew()
        lots = [self.order_lots] * self.config.levels
        bids, asks = ladder(
            market,
            bid_offset=self._spread,
            ask_offset=self._spread,
            spacing=self._spacing,
            levels=self.config.levels,
            bid_lots=lots,
            ask_lots=lots,
            center=market.mid_float * (1.0 + float(skew)),
        )
        t = self.trend.trend
        trend = "trend warming up" if t is None else f"trend {t:+.3g}"
        return build_quote_set(self.instrument, market, bids, asks, f"trend following: {trend}, skew {skew:+.3g}")
