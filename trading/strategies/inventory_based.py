"""Inventory-based quoting: size and distance follow the inventory's deviation from target."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from trading.config import ConfigBase
from trading.instruments import Instrument, InstrumentError
from trading.strategies._funding import (
    funding_note,
    funding_shift,
    funding_skew_field,
    funding_skew_minutes_field,
    is_perpetual,
)
from trading.strategies._quoting import (
    Market,
    QuotingStrategy,
    amount_to_lots,
    build_quote_set,
    inventory_base_ratio,
    ladder,
    scaled_lots,
)
from trading.strategy import QuoteSet, StrategyContext

_FRACTION = {"min": Decimal(0), "max": Decimal("0.5"), "unit": "fraction of mid"}


@dataclass(frozen=True)
class InventoryBasedConfig(ConfigBase):
    """Quotes that work the inventory back toward ``target_base_ratio``.

    ``deviation = clamp((base_ratio - target) / inventory_range, -1, 1)``. The side that reduces
    the deviation gets ``order_amount * (1 + size_skew * |deviation|)``, the other side
    ``order_amount * (1 - size_skew * |deviation|)`` and a spread widened by
    ``spread * spread_skew * |deviation|``.

    On a perpetual there is no base balance: the inventory is the position in contracts and
    ``deviation = clamp((position - target_position) / position_range, -1, 1)``
    (``position_range`` is required there, ``target_base_ratio`` / ``inventory_range`` unused);
    ``funding_skew`` leans the quotes against paying funding (``trading.strategies._funding``).
    """

    order_amount: Decimal = field(
        metadata={"min": Decimal(0), "exclusive_min": True, "unit": "base", "help": "size at target"}
    )
    spread: Decimal = field(default=Decimal("0.001"), metadata={**_FRACTION, "help": "distance from mid at target"})
    levels: int = field(default=1, metadata={"min": 1, "max": 50, "help": "orders per side"})
    level_spacing: Decimal = field(default=Decimal("0.001"), metadata={**_FRACTION, "help": "extra per level"})
    target_base_ratio: Decimal = field(
        default=Decimal("0.5"), metadata={"min": Decimal(0), "max": Decimal(1), "help": "wanted share of value in base"}
    )
    inventory_range: Decimal = field(
        default=Decimal("0.2"),
        metadata={"min": Decimal(0), "exclusive_min": True, "max": Decimal(1), "help": "deviation at full skew"},
    )
    size_skew: Decimal = field(
        default=Decimal("0.8"), metadata={"min": Decimal(0), "max": Decimal(1), "help": "size change at full skew"}
    )
    spread_skew: Decimal = field(
        default=Decimal(1), metadata={"min": Decimal(0), "max": Decimal(20), "help": "spread widening at full skew"}
    )
    target_position: Decimal = field(
        default=Decimal(0),
        metadata={"unit": "base", "help": "perpetuals: the position the quotes work toward, in contracts"},
    )
    position_range: Decimal | None = field(
        default=None,
        metadata={
            "min": Decimal(0),
            "exclusive_min": True,
            "unit": "base",
            "help": "perpetuals: contracts from target_position at full skew (required there)",
        },
    )
    funding_skew: float = funding_skew_field()
    funding_skew_minutes: float = funding_skew_minutes_field()


class InventoryBasedStrategy(QuotingStrategy):
    """Ladder whose sizes and spreads lean against the inventory deviation."""

    name = "inventory_based"
    config: InventoryBasedConfig

    def __init__(self, config: InventoryBasedConfig, instrument: Instrument) -> None:
        super().__init__(config, instrument)
        self.order_lots = amount_to_lots(instrument, "order_amount", config.order_amount)
        self.perpetual = is_perpetual(instrument)
        if self.perpetual:
            if config.position_range is None:
                raise InstrumentError(
                    f"position_range: required on a perpetual ({instrument.symbol}); give the position in "
                    "contracts at which the skew is full"
                )
            self.target_lots = instrument.lots(config.target_position, field="target_position", round_down=True)
            self.range_lots = amount_to_lots(instrument, "position_range", config.position_range)
        elif config.position_range is not None or config.target_position:
            field_name = "position_range" if config.position_range is not None else "target_position"
            raise InstrumentError(
                f"{field_name}: applies to perpetual markets; {instrument.symbol} is spot, "
                "use target_base_ratio and inventory_range"
            )

    def deviation(self, ctx: StrategyContext, market: Market) -> float:
        """Signed deviation in -1..1 (positive = more base than wanted, or on a perpetual a
        position above target); 0 with no value."""
        if self.perpetual:
            return max(-1.0, min(1.0, (ctx.position - self.target_lots) / self.range_lots))
        ratio = inventory_base_ratio(ctx, market.mid_float)
        if ratio is None:
            return 0.0
        d = (ratio - float(self.config.target_base_ratio)) / float(self.config.inventory_range)
        return max(-1.0, min(1.0, round(d, 9)))  # rounding drops float noise from the value ratio

    def quote(self, ctx: StrategyContext, market: Market) -> QuoteSet | None:
        cfg = self.config
        dev = self.deviation(ctx, market)
        size_skew = float(cfg.size_skew) * abs(dev)
        spread = float(cfg.spread)
        widen = spread * float(cfg.spread_skew) * abs(dev)
        larger = scaled_lots(self.order_lots, 1.0 + size_skew)
        smaller = scaled_lots(self.order_lots, 1.0 - size_skew)
        if dev > 0:  # long base: sell more, buy less and further away
            bid_lots, ask_lots, bid_extra, ask_extra = smaller, larger, widen, 0.0
        elif dev < 0:
            bid_lots, ask_lots, bid_extra, ask_extra = larger, smaller, 0.0, widen
        else:
            bid_lots = ask_lots = self.order_lots
            bid_extra = ask_extra = 0.0
        shift = funding_shift(cfg, ctx, market.mid_float)  # in ticks
        bids, asks = ladder(
            market,
            center=market.mid_float + shift if shift else None,
            bid_offset=spread + bid_extra,
            ask_offset=spread + ask_extra,
            spacing=float(cfg.level_spacing),
            levels=cfg.levels,
            bid_lots=[bid_lots] * cfg.levels,
            ask_lots=[ask_lots] * cfg.levels,
        )
        reason = f"inventory based: deviation {dev:+.2f}, bid {bid_lots} lots, ask {ask_lots} lots"
        if shift:
            reason += funding_note(ctx, shift, "ticks")
        return build_quote_set(self.instrument, market, bids, asks, reason)
