"""Grid quoting: fixed price lines inside a band; buys on the lines below the price, sells above."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import Literal

from trading.config import ConfigBase
from trading.instruments import Instrument, Side
from trading.strategies._quoting import (
    Market,
    QuotingStrategy,
    amount_to_lots,
    ask_ticks,
    bid_ticks,
    build_quote_set,
    frac,
    price_to_ticks,
    pulled,
)
from trading.strategy import QuoteSet, StrategyContext


@dataclass(frozen=True)
class GridConfig(ConfigBase):
    """A price grid between ``lower_price`` and ``upper_price``.

    Lines are ``lower * (1 + step)^j`` (``step_unit="fraction"``) or ``lower + j*step`` ticks
    (``step_unit="ticks"``). Without bounds, the band is ``band_width`` around the first mid.
    """

    order_amount: Decimal = field(
        metadata={"min": Decimal(0), "exclusive_min": True, "unit": "base", "help": "size per grid order"}
    )
    levels: int = field(default=5, metadata={"min": 1, "max": 100, "help": "orders per side"})
    step: Decimal = field(
        default=Decimal("0.002"),
        metadata={"min": Decimal(0), "exclusive_min": True, "help": "distance between lines"},
    )
    step_unit: Literal["fraction", "ticks"] = field(
        default="fraction", metadata={"help": "step as a fraction of price or a whole number of ticks"}
    )
    lower_price: Decimal | None = field(
        default=None, metadata={"min": Decimal(0), "exclusive_min": True, "unit": "quote", "help": "band bottom"}
    )
    upper_price: Decimal | None = field(
        default=None, metadata={"min": Decimal(0), "exclusive_min": True, "unit": "quote", "help": "band top"}
    )
    band_width: Decimal = field(
        default=Decimal("0.04"),
        metadata={"min": Decimal(0), "exclusive_min": True, "max": Decimal(1), "help": "band size when unbounded"},
    )
    recenter: bool = field(
        default=True, metadata={"help": "when the price leaves the band, move the band around it (else pull)"}
    )

    def validate(self) -> dict[str, str]:
        errors: dict[str, str] = {}
        if (self.lower_price is None) != (self.upper_price is None):
            errors["upper_price" if self.upper_price is None else "lower_price"] = (
                "give both lower_price and upper_price, or neither (band_width around the first mid)"
            )
        elif self.lower_price is not None and self.upper_price is not None and self.lower_price >= self.upper_price:
            errors["lower_price"] = f"{self.lower_price} must be below upper_price {self.upper_price}"
        if self.step_unit == "ticks" and self.step != self.step.to_integral_value():
            errors["step"] = f"{self.step} is not a whole number of ticks; give an integer with step_unit 'ticks'"
        return errors


class GridStrategy(QuotingStrategy):
    """Quote the ``levels`` grid lines nearest below (bids) and above (asks) the mid."""

    name = "grid"
    config: GridConfig

    def __init__(self, config: GridConfig, instrument: Instrument) -> None:
        super().__init__(config, instrument)
        self.order_lots = amount_to_lots(instrument, "order_amount", config.order_amount)
        self.lower: Fraction | None = None
        self.upper: Fraction | None = None
        if config.lower_price is not None and config.upper_price is not None:
            # Rounded inward so the band never grows past what the trader gave.
            self.lower = Fraction(price_to_ticks(instrument, "lower_price", config.lower_price, Side.SELL))
            self.upper = Fraction(price_to_ticks(instrument, "upper_price", config.upper_price, Side.BUY))
        self.recentered = 0

    def _center_band(self, mid: Fraction) -> None:
        if self.lower is not None and self.upper is not None:
            half = (self.upper - self.lower) / 2
        else:
            half = mid * frac(self.config.band_width) / 2
        self.lower, self.upper = mid - half, mid + half

    def _line(self, j: int) -> Fraction:
        assert self.lower is not None
        step = frac(self.config.step)
        if self.config.step_unit == "ticks":
            return self.lower + j * step
        return self.lower * (1 + step) ** j

    def _index_below(self, mid: Fraction) -> int:
        """Largest ``j`` with line ``j`` strictly below ``mid`` (may be -1)."""
        assert self.lower is not None
        step = frac(self.config.step)
        if self.config.step_unit == "ticks":
            j = math.ceil((mid - self.lower) / step) - 1
        else:
            j = math.ceil(math.log(float(mid / self.lower)) / math.log(1 + float(step))) - 1 if mid > 0 else -1
            # Correct float error in the logarithm against exact lines.
            while j + 1 >= 0 and self._line(j + 1) < mid:
                j += 1
            while j >= 0 and self._line(j) >= mid:
                j -= 1
        return j

    def quote(self, ctx: StrategyContext, market: Market) -> QuoteSet | None:
        mid = market.mid
        note = ""
        if self.lower is None or self.upper is None:
            self._center_band(mid)
            note = "; band set around the first mid"
        assert self.lower is not None and self.upper is not None
        if not self.lower <= mid <= self.upper:
            if not self.config.recenter:
                return pulled(
                    f"grid: mid {float(mid):.2f}t outside band {float(self.lower):.2f}-{float(self.upper):.2f}t"
                )
            self._center_band(mid)
            self.recentered += 1
            note = f"; re-centred band on mid (time {self.recentered})"
        j = self._index_below(mid)
        bids: list[tuple[int, int]] = []
        asks: list[tuple[int, int]] = []
        first_ask = j + 1 if self._line(j + 1) > mid else j + 2  # a line exactly at mid is skipped
        for i in range(self.config.levels):
            below = j - i
            if below >= 0:
                line = self._line(below)
                if line >= self.lower:
                    bids.append((bid_ticks(line), self.order_lots))
            line = self._line(first_ask + i)
            if line <= self.upper:
                asks.append((ask_ticks(line), self.order_lots))
        reason = (
            f"grid: mid {float(mid):.2f}t in band {float(self.lower):.2f}-{float(self.upper):.2f}t, "
            f"{len(bids)} buy and {len(asks)} sell lines{note}"
        )
        return build_quote_set(self.instrument, market, bids, asks, reason)
