"""The verdicts of pre-trade and running risk: actions by severity, one command's decision,
breaches and the combined status, and the mutable state pre-trade checks read.

Split from :mod:`trading.risk` (which re-exports every name) so the limits' arithmetic stays
readable on its own.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class RiskAction(enum.IntEnum):
    """What running risk wants the engine to do, by increasing severity."""

    NONE = 0
    WIDEN = 1
    REDUCE_ONLY = 2
    PAUSE = 3
    FLATTEN = 4
    KILL = 5


_ACTION_BY_NAME = {
    "widen": RiskAction.WIDEN,
    "reduce_only": RiskAction.REDUCE_ONLY,
    "pause": RiskAction.PAUSE,
    "flatten": RiskAction.FLATTEN,
}


@dataclass(frozen=True, slots=True)
class RiskDecision:
    """The verdict on one command: allowed, or rejected with a reason code and message."""

    allowed: bool
    code: str = ""
    message: str = ""


ALLOWED = RiskDecision(True)


@dataclass(frozen=True, slots=True)
class Breach:
    """One running limit that is breached, with what to do about it."""

    code: str
    action: RiskAction
    message: str


@dataclass(frozen=True, slots=True)
class RiskStatus:
    """The combined verdict of running limits: the most severe action wins."""

    action: RiskAction = RiskAction.NONE
    spread_multiplier: float = 1.0
    breaches: tuple[Breach, ...] = ()

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(b.code for b in self.breaches)


NORMAL = RiskStatus()


class RiskState:
    """What pre-trade checks look at; the engine keeps it current (mutable, reused)."""

    __slots__ = (
        "action",
        "base",
        "cash",
        "mid2",
        "open_orders",
        "position",
        "ts",
        "working_buy",
        "working_buy_cost",
        "working_sell",
    )

    def __init__(self) -> None:
        self.ts = 0
        self.position = 0  # lots, signed
        self.mid2: int | None = None  # best bid + best ask
        self.open_orders = 0
        self.working_buy = 0  # lots still working on our bids
        self.working_sell = 0
        self.action = RiskAction.NONE
        # Spot balances, when known (None: not checked): quote cash units and base lots held,
        # and what our working bids would cost (notional plus taker fee, cash units).
        self.cash: int | None = None
        self.base: int | None = None
        self.working_buy_cost = 0
