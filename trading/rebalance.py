"""Inventory rebalancing: bring the base share of value back toward its target.

Quoting skews inventory slowly; when it has drifted too far anyway, the engine trades the
difference with an aggressive order (a limit crossing the spread by ``cross_ticks``, sent
immediate-or-cancel so nothing is left resting) and records why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from trading.config import parse_config
from trading.events import PlaceOrder, TimeInForce
from trading.instruments import FEE_SCALE, Instrument, Side


@dataclass(frozen=True)
class RebalanceConfig:
    """When and how to rebalance inventory toward ``target_base_ratio``."""

    enabled: bool = True
    threshold: float = field(
        default=0.2,
        metadata={
            "min": 0.0,
            "exclusive_min": True,
            "max": 1.0,
            "help": "|base ratio - target| that triggers",
        },
    )
    back_to: float = field(
        default=0.0,
        metadata={"min": 0.0, "max": 1.0, "help": "deviation left after rebalancing (0 = to the target)"},
    )
    mode: Literal["cross", "taker"] = field(
        default="cross",
        metadata={"help": "cross: IOC limit N ticks through the touch; taker: IOC at the band"},
    )
    cross_ticks: int = field(default=1, metadata={"min": 0, "max": 10_000})
    max_order_size: Decimal | None = field(
        default=None, metadata={"min": Decimal(0), "exclusive_min": True, "unit": "base"}
    )
    cooldown_s: float = field(default=5.0, metadata={"min": 0.0, "unit": "s"})

    def validate(self) -> dict[str, str]:
        if self.back_to >= self.threshold:
            return {"back_to": f"{self.back_to} must be below threshold {self.threshold}"}
        return {}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RebalanceConfig:
        """Parse and validate; raises :class:`trading.config.ConfigError` naming every bad field."""
        return parse_config(cls, data)


@dataclass(frozen=True, slots=True)
class RebalancePlan:
    """A rebalancing order and the reason, in words."""

    side: Side
    price: int
    qty: int
    message: str


class Rebalancer:
    """Decide when inventory needs a rebalancing order and size it."""

    def __init__(
        self,
        config: RebalanceConfig,
        instrument: Instrument,
        target_ratio: float,
        price_band: float | None = None,
    ) -> None:
        self.config = config
        self.instrument = instrument
        self.target = target_ratio
        self.price_band = price_band
        self.max_qty = (
            None
            if config.max_order_size is None
            else instrument.lots(config.max_order_size, field="max_order_size", round_down=True)
        )
        self.cooldown_ns = int(config.cooldown_s * 1e9)
        self.last_ts: int | None = None

    def plan(self, ts: int, base_lots: int, quote_units: int, best_bid: int, best_ask: int) -> RebalancePlan | None:
        """Return an order when inventory is beyond the threshold and the cooldown has passed."""
        cfg = self.config
        if not cfg.enabled or (self.last_ts is not None and ts - self.last_ts < self.cooldown_ns):
            return None
        mid2 = best_bid + best_ask
        base_value = base_lots * mid2 * (FEE_SCALE // 2)
        total = base_value + quote_units
        if total <= 0:
            return None
        ratio = base_value / total
        dev = ratio - self.target
        if abs(dev) <= cfg.threshold:
            return None
        # Trade enough to bring the deviation down to back_to (value at mid, in lots).
        goal = self.target + (cfg.back_to if dev > 0 else -cfg.back_to)
        lots_value = mid2 * (FEE_SCALE // 2)
        wanted = int(abs(goal * total - base_value) // lots_value)
        side = Side.SELL if dev > 0 else Side.BUY
        if side is Side.SELL:
            wanted = min(wanted, base_lots)
        if self.max_qty is not None:
            wanted = min(wanted, self.max_qty)
        if wanted <= 0:
            return None
        price = best_ask + cfg.cross_ticks if side is Side.BUY else max(1, best_bid - cfg.cross_ticks)
        if cfg.mode == "taker" and self.price_band:
            # Sweep as deep as risk's price band allows (90% of it), never less than crossing.
            far = int(mid2 * 0.9 * self.price_band) // 2
            price = max(price, mid2 // 2 + far) if side is Side.BUY else max(1, min(price, (mid2 + 1) // 2 - far))
        self.last_ts = ts
        verb = "buying" if side is Side.BUY else "selling"
        message = (
            f"base is {ratio:.1%} of value, target {self.target:.1%} (threshold {cfg.threshold:.1%}): "
            f"{verb} {self.instrument.quantity(wanted)} {self.instrument.base} at "
            f"{self.instrument.price(price)} IOC"
        )
        return RebalancePlan(side, price, wanted, message)

    @staticmethod
    def order(plan: RebalancePlan, client_order_id: str) -> PlaceOrder:
        return PlaceOrder(client_order_id, plan.side, plan.price, plan.qty, TimeInForce.IOC, reason="rebalance")
