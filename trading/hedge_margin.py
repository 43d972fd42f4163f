"""The pre-trade check of a hedged maker's perpetual legs, one rule for hosted bots
(:mod:`workers.hedged_loop`) and backtests (:mod:`trading.hedge_backtest`).

A new order of a perpetual leg — a maker quote or a hedge — goes through the leg's
:class:`~trading.perp_risk.PerpRisk` (:meth:`~trading.perp_risk.PerpRisk.check`, a perp bot's
pre-trade check: position and notional limits, the leverage bracket and the initial margin
against the free margin) with the leg's position as the hedged maker keeps it and the orders the
bot still has working on that leg and side (the order itself left out: the hedger books it as
working when it makes it). So two quotes of one side, the one being replaced and its
replacement, are both held against the margin, as they can both fill.

A refused order is not sent; the caller answers it ``OrderRejected`` with :func:`reason`
and the decision's code (``insufficient_margin``, ``max_position_contracts``, ...) on the leg's
next pass, as an exchange refuses it: a refused hedge is a failed hedge for the hedger (quoting
stops, the retry budget), a refused quote is simply not resting. Until the leg's mark is known
(its book has had both sides once) nothing is refused.
"""

from __future__ import annotations

from trading.events import PlaceOrder
from trading.hedger import HEDGE, HedgedMaker
from trading.instruments import Side
from trading.perp_risk import PerpRisk
from trading.risk import RiskDecision
from trading.risk_types import RiskState


def leg_state(bot: HedgedMaker, venue: str, command: PlaceOrder) -> RiskState:
    """The leg's position and working lots per side, as the check reads them."""
    state = RiskState()
    if venue == HEDGE:
        state.position = bot.hedge_position
        orders = bot.hedge_orders
    else:
        state.position = bot.maker_position
        orders = bot.maker_orders
    for cid, order in orders.items():
        if cid == command.client_order_id or order.leaves <= 0:
            continue
        if order.side is Side.BUY:
            state.working_buy += order.leaves
        else:
            state.working_sell += order.leaves
    return state


def refusal(risk: PerpRisk | None, bot: HedgedMaker, venue: str, command: PlaceOrder) -> RiskDecision | None:
    """The decision refusing ``command`` on ``venue`` (``"maker"`` / ``"hedge"``), or ``None``
    when it may be sent (a spot leg, no mark yet, or within the leg's limits and margin)."""
    if risk is None or risk.mark is None:
        return None
    decision = risk.check(command, leg_state(bot, venue, command))
    return None if decision.allowed else decision


def reason(venue: str, decision: RiskDecision) -> str:
    """The rejection's text: the check's message and where it was refused."""
    return f"{decision.message} (not sent: the {venue} leg's pre-trade margin check)"


__all__ = ["leg_state", "reason", "refusal"]
