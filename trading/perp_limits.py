"""The perpetual risk limits of one bot (``risk.perp.limits``), which
:class:`trading.perp_risk.PerpRisk` enforces (its module docstring says how)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from trading.config import ConfigBase, parse_config


@dataclass(frozen=True)
class PerpRiskLimits(ConfigBase):
    """Perpetual risk limits of one bot; ``None`` switches a limit off."""

    max_position_contracts: Decimal | None = field(
        default=None, metadata={"min": Decimal(0), "exclusive_min": True, "unit": "contracts"}
    )
    max_position_notional: Decimal | None = field(
        default=None, metadata={"min": Decimal(0), "exclusive_min": True, "unit": "settle currency"}
    )
    min_liquidation_distance: Decimal | None = field(
        default=None,
        metadata={
            "min": Decimal(0),
            "exclusive_min": True,
            "max": Decimal("0.9"),
            "help": "pause when |mark - liquidation| / mark is below this fraction",
        },
    )
    liquidation_resume_distance: Decimal | None = field(
        default=None,
        metadata={
            "min": Decimal(0),
            "exclusive_min": True,
            "max": Decimal("0.95"),
            "help": "resume above this fraction; empty = 1.5 x min_liquidation_distance",
        },
    )
    min_liquidation_ticks: int | None = field(
        default=None, metadata={"min": 1, "help": "pause when the mark is within this many ticks of liquidation"}
    )
    liquidation_resume_ticks: int | None = field(
        default=None, metadata={"min": 1, "help": "resume beyond this many ticks; empty = 1.5 x min_liquidation_ticks"}
    )
    on_liquidation_distance: Literal["pause", "reduce_only", "flatten"] = "pause"
    margin_check: bool = field(
        default=True, metadata={"help": "refuse orders whose initial margin exceeds free margin"}
    )

    def validate(self) -> dict[str, str]:
        errors = {}
        lo, hi = self.min_liquidation_distance, self.liquidation_resume_distance
        if hi is not None and lo is None:
            errors["liquidation_resume_distance"] = "given without min_liquidation_distance; give that too"
        elif hi is not None and lo is not None and hi < lo:
            errors["liquidation_resume_distance"] = (
                f"{hi} is below min_liquidation_distance {lo}; accepted: at least min_liquidation_distance"
            )
        lo_t, hi_t = self.min_liquidation_ticks, self.liquidation_resume_ticks
        if hi_t is not None and lo_t is None:
            errors["liquidation_resume_ticks"] = "given without min_liquidation_ticks; give that too"
        elif hi_t is not None and lo_t is not None and hi_t < lo_t:
            errors["liquidation_resume_ticks"] = (
                f"{hi_t} is below min_liquidation_ticks {lo_t}; accepted: at least min_liquidation_ticks"
            )
        return errors

    @classmethod
    def from_dict(cls, data: Any) -> PerpRiskLimits:
        return parse_config(cls, data)
