"""The perpetual risk limits of one bot (``risk.perp.limits``), which
:class:`trading.perp_risk.PerpRisk` enforces (its module docstring says how)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import Any, Literal

from trading.config import ConfigBase, parse_config
from trading.risk_types import RiskDecision


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
    max_margin_usage: Decimal | None = field(
        default=None,
        metadata={
            "min": Decimal(0),
            "exclusive_min": True,
            "max": Decimal(1),
            "help": "refuse orders after which the initial margin held (position, working orders on that "
            "side, the other leg) would exceed this fraction of the margin balance, e.g. 0.5",
        },
    )
    max_funding_cost: Decimal | None = field(
        default=None,
        metadata={
            "min": Decimal(0),
            "exclusive_min": True,
            "unit": "settle currency",
            "help": "once the funding paid (net, since the bot started) reaches this, only orders that "
            "reduce the position are accepted",
        },
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


def funding_cost_refusal(limits: PerpRiskLimits, funding: Fraction, settle: str) -> RiskDecision | None:
    """``max_funding_cost``: an order that would grow the position is refused once the funding
    paid (``-funding``, net of funding received) reaches the limit."""
    cap = limits.max_funding_cost
    if cap is None or -funding < Fraction(cap):
        return None
    return RiskDecision(
        False,
        "max_funding_cost",
        f"max_funding_cost: {_money(-funding)} {settle} of funding paid reached the limit {_money(Fraction(cap))} "
        f"{settle}; only orders that reduce the position are accepted",
    )


def margin_usage_refusal(
    limits: PerpRiskLimits, held_after: Fraction, balance: Fraction, settle: str, what: str
) -> RiskDecision | None:
    """``max_margin_usage``: refused when ``held_after`` (the initial margin held once the order
    ``what`` is working) is above that fraction of the margin ``balance`` (or the balance is gone)."""
    cap = limits.max_margin_usage
    if cap is None or (balance > 0 and held_after <= Fraction(cap) * balance):
        return None
    usage = "all of" if balance <= 0 else f"{float(held_after / balance):.2%} of"
    return RiskDecision(
        False,
        "max_margin_usage",
        f"max_margin_usage: {what} would hold {_money(held_after)} {settle} of initial margin, {usage} the margin "
        f"balance {_money(balance)} {settle}; limit {float(cap):.2%}",
    )


def _money(value: Fraction) -> str:
    return f"{float(value):.2f}"
