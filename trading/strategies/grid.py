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
        self.lower: int | None = None  # band bounds in ticks
        self.upper: int | None = None
        if config.lower_price is not None and config.upper_price is not None:
            # Rounded inward so the band never grows past what the trader gave.
            self.lower = price_to_ticks(instrument, "lower_price", config.lower_price, Side.SELL)
            self.upper = price_to_ticks(instrument, "upper_price", config.upper_price, Side.BUY)
        self.recentered = 0
        self._step = frac(config.step)
        self._log_growth = math.log1p(float(config.step))
        # line j -> (floor(2*line), ceil(2*line), floor(line), ceil(line)); exact, cached per band
        self._lines: dict[int, tuple[int, int, int, int]] = {}

    def _center_band(self, mid: Fraction) -> None:
        if self.lower is not None and self.upper is not None:
            half = Fraction(self.upper - self.lower, 2)
        else:
            half = mid * frac(self.config.band_width) / 2
        # A band wider than the price (after a crash) is cut at one tick: lines must stay positive.
        self.lower, self.upper = max(math.ceil(mid - half), 1), math.floor(mid + half)
        self._lines.clear()

    def _line(self, j: int) -> tuple[int, int, int, int]:
        cached = self._lines.get(j)
        if cached is not None:
            return cached
        assert self.lower is not None
        ticks = self.config.step_unit == "ticks"
        line = self.lower + j * self._step if ticks else self.lower * (1 + self._step) ** j
        values = (math.floor(2 * line), math.ceil(2 * line), math.floor(line), math.ceil(line))
        if len(self._lines) > 4096:  # a band far wider than any quoting needs; keep memory flat
            self._lines.clear()
        self._lines[j] = values
        return values

    def _index_below(self, mid2: int) -> int:
        """Largest ``j`` with line ``j`` strictly below the mid (``mid2`` = twice the mid); may be -1."""
        assert self.lower is not None
        if self.config.step_unit == "ticks":
            step = int(self._step)
            return -((2 * self.lower - mid2) // (2 * step)) - 1
        j = math.ceil(math.log(mid2 / (2 * self.lower)) / self._log_growth) - 1
        # Correct float error in the logarithm against the exact lines (line < mid <=> floor(2 line) < mid2).
        while self._line(j + 1)[0] < mid2:
            j += 1
        while j >= 0 and self._line(j)[0] >= mid2:
            j -= 1
        return max(j, -1)

    def quote(self, ctx: StrategyContext, market: Market) -> QuoteSet | None:
        mid2 = market.mid2
        note = ""
        if self.lower is None or self.upper is None:
            self._center_band(market.mid)
            note = "; band set around the first mid"
        assert self.lower is not None and self.upper is not None
        if not 2 * self.lower <= mid2 <= 2 * self.upper:
            if not self.config.recenter:
                return pulled(f"grid: mid {mid2 / 2:.2f}t outside band {self.lower}-{self.upper}t")
            self._center_band(market.mid)
            self.recentered += 1
            note = f"; re-centred band on mid (time {self.recentered})"
        j = self._index_below(mid2)
        bids: list[tuple[int, int]] = []
        asks: list[tuple[int, int]] = []
        # line > mid <=> ceil(2 line) > mid2; a line exactly at the mid is skipped
        first_ask = j + 1 if self._line(j + 1)[1] > mid2 else j + 2
        for i in range(self.config.levels):
            if j - i >= 0:
                bids.append((self._line(j - i)[2], self.order_lots))
            ask = self._line(first_ask + i)[3]
            if ask <= self.upper:  # ceil(line) <= upper <=> line <= upper
                asks.append((ask, self.order_lots))
        reason = (
            f"grid: mid {mid2 / 2:.2f}t in band {self.lower}-{self.upper}t, "
            f"{len(bids)} buy and {len(asks)} sell lines{note}"
        )
        return build_quote_set(self.instrument, market, bids, asks, reason)
