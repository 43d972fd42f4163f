"""The figures a perpetual bot's page shows (:meth:`trading.perp_risk.PerpRisk.snapshot`),
JSON-ready: decimal strings in the settle currency, prices in the quote, ``None`` when unknown.

``position_mode`` says how the position is kept. In hedge mode ``legs`` lists the long and the
short leg, each with its contracts (signed), entry, unrealized PnL and initial margin at the
mark, the funding booked on it (isolated: part of its wallet), and its liquidation price when
the legs are isolated; ``position_contracts`` is the net (long - short), ``entry_price`` is
``None`` (two entries) and ``liquidation_price`` is the one the liquidation-distance pause
watches (cross: the account's; isolated: the larger leg's).
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from trading import hedge_legs
from trading.contracts import PositionMode, to_decimal


def dec(value: Fraction | None, places: int = 8) -> str | None:
    return None if value is None else f"{to_decimal(value, places):f}"


def snapshot(risk) -> dict[str, Any]:
    pos = risk.position
    mark, liq = risk.mark, risk.liquidation
    hedge = pos.mode is PositionMode.HEDGE
    out = {
        "position_mode": pos.mode.value,
        "position_contracts": f"{to_decimal(pos.contracts(pos.net_lots), 8).normalize():f}",
        "entry_price": None if hedge else dec(pos.entry_price()),
        "mark_price": dec(mark),
        "unrealized": dec(pos.unrealized(mark) if mark is not None else None),
        "realized": dec(pos.realized),
        "funding": dec(pos.funding),
        "fees": dec(pos.fees),
        "margin_balance": dec(risk.margin_balance()),
        "margin_used": dec(pos.margin_used(mark) if mark is not None else None),
        "leverage": risk.leverage,
        "liquidation_price": dec(liq),
        "liquidation_distance": None if liq is None or not mark else float(abs(mark - liq) / mark),
        "liquidation_paused": risk.too_close,
        "funding_rate": dec(risk.funding_rate),
        "next_funding_ts": risk.next_funding_ts if risk.funding_rate is not None else None,
        "settle": risk.spec.settle,
    }
    if hedge:
        out["legs"] = legs(risk)
    return out


def legs(risk) -> dict[str, dict[str, Any]]:
    """Each leg's figures (module docstring)."""
    pos, mark = risk.position, risk.mark
    per_leg = risk.leg_liquidations
    out = {}
    for name in hedge_legs.LEGS:
        leg = pos.legs[name]
        found = per_leg.get(name)
        out[name] = {
            "contracts": f"{to_decimal(pos.contracts(leg.lots), 8).normalize():f}",
            "entry_price": dec(pos.entry_price(name)),
            "unrealized": None if mark is None else dec(hedge_legs.leg_unrealized(pos, name, mark)),
            "margin_used": None if mark is None else dec(hedge_legs.leg_margin(pos, name, mark)),
            "funding": dec(risk.leg_funding.get(name, Fraction(0))),
            "liquidation_price": None if found is None else dec(found[1]),
        }
    return out
