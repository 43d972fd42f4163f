"""The hosted paper venue's perpetual position in hedge mode (``position_mode: hedge``): a long
and a short leg (:mod:`trading.hedge_legs`), beside :mod:`workers.paper_perp` (one-way).

- **stored state**: the legs (``legs.long`` / ``legs.short``, as one-way stores ``legs.both``), the
  funding booked on each (``leg_funding``, part of an isolated leg's wallet) and the leg of each
  order working at the save (``order_legs``). A new owner puts them back before it applies the
  fills after the stored position, so each books on the leg its order named; a fill of an order
  placed after the last save books by the close-first rule against the legs as they stand.
- **liquidation**, checked as in one-way mode against every mark since the last check (the
  lowest and the highest book mid, or the venue's mark): an isolated leg whose own liquidation price the mark reached is closed alone at its
  bankruptcy price (its wallet is lost, the other leg stays); on cross margin the account's
  liquidation price closes both legs at the account's bankruptcy price. As in one-way mode the
  loss is booked as realized PnL, an incident and a ``risk_breach`` notification are written,
  the engine's portfolio gets the closes as fills, and the bot pauses with the reason.
"""

from __future__ import annotations

from fractions import Fraction

from trading import hedge_legs
from trading.contracts import to_decimal
from trading.instruments import Side
from workers import liquidation_fills


def dump(perp, working) -> dict:
    legs = perp.hedge
    return {
        "leg_funding": {name: str(value) for name, value in sorted(perp.leg_funding.items())},
        "order_legs": {cid: legs.leg_of(cid) for cid in sorted(working) if legs.leg_of(cid)},
    }


def restore(perp, state: dict) -> None:
    perp.leg_funding = {name: Fraction(value) for name, value in (state.get("leg_funding") or {}).items()}
    for cid, name in (state.get("order_legs") or {}).items():
        perp.hedge.remember(cid, name)


def check(paper, ts: int) -> None:
    """Liquidate what the marks since the last check have reached (module docstring): the lowest
    reaches a long leg (or a long-like cross account), the highest a short one."""
    perp = paper.runner.engine.perp
    found = perp.leg_liquidations
    if perp.venue_mark2 is not None:
        paper.marks.take()
        low = high = perp.venue_mark2
    else:
        low, high = paper.marks.take(perp.mark2)
    if not found or low is None:
        return
    marks = [m2 * perp.tick / 2 for m2 in ((low,) if low == high else (low, high))]
    if not any(hedge_legs.crossed(side, mark, liq) for side, liq in found.values() for mark in marks):
        return
    before = {name: (leg.lots, perp.position.entry_price(name)) for name, leg in perp.position.legs.items()}
    done = []
    for mark in marks:
        done += [(mark, *d) for d in hedge_legs.liquidate_crossed(perp.position, perp.table, perp.wallet, mark,
                                                                 perp.leg_funding)]  # fmt: skip
    perp._refresh_liquidation()
    if done:
        liquidated(paper, ts, done, before)


def liquidated(paper, ts: int, done: list, before: dict) -> None:
    """Book and tell ``done``: ``(mark, leg or "account", liquidation price, close price, PnL,
    lots closed)`` per liquidation."""
    from workers.paper_perp import _num, close_fill, liquidation_record

    runner = paper.runner
    perp = runner.engine.perp
    setup = runner.setup
    settle, places = perp.spec.settle, perp.places
    parts, legs, rows = [], {}, []
    for mark, name, liq, price, pnl, closed in done:
        what = "the account (both legs, cross)" if name == "account" else f"the {name} leg (isolated)"
        closed_text = ", ".join(
            f"{perp._contracts(abs(lots))} {leg} from {_num(before[leg][1])}" for leg, lots in closed.items() if lots
        )
        parts.append(
            f"mark {_num(mark)} reached the liquidation price {_num(liq)} of {what}; {closed_text} closed at the "
            f"bankruptcy price {_num(price)}, {to_decimal(pnl, places):f} {settle}"
        )
        legs[name] = {
            "mark": f"{to_decimal(mark, 8):f}",
            "liquidation_price": f"{to_decimal(liq, 8):f}",
            "bankruptcy_price": f"{to_decimal(price, 8):f}",
            "contracts": {leg: f"{to_decimal(perp.position.contracts(lots), 8):f}" for leg, lots in closed.items()},
            "pnl": f"{to_decimal(pnl, 18):f}",
        }
        for leg, lots in closed.items():
            if lots:  # the engine's own position, which the strategy's inventory reads, closes too
                side = Side.SELL if lots > 0 else Side.BUY
                ticks = setup.instrument.ticks(to_decimal(price, 18), side=side)
                leg_pnl = perp.spec.pnl(perp.position.contracts(lots), before[leg][1], price)
                close = [ts, side.name.lower(), ticks, abs(lots), f"{to_decimal(price, 8):f}",
                         f"{to_decimal(leg_pnl, 18):f}", settle, leg]  # fmt: skip
                paper.closes.append(close)
                runner.engine.portfolio.on_fill(close_fill(close))
                rows.append(close)
    reason = "liquidated: " + "; ".join(parts)
    first = legs[done[0][1]]
    paper.liquidated = {
        "ts": ts,
        "mark": first["mark"],
        "liquidation_price": first["liquidation_price"],
        "bankruptcy_price": first["bankruptcy_price"],
        "pnl": f"{to_decimal(sum((d[4] for d in done), Fraction(0)), 18):f}",
        "settle": settle,
        "position_mode": "hedge",
        "legs": legs,
    }
    paper.save()
    for close in rows:  # each leg's close as a Fill row with that leg's loss (workers.liquidation_fills)
        liquidation_fills.record(runner, close)
    runner.liquidated_reason = reason
    runner.runner.command(runner.engine.pause(ts, reason))
    runner.host.db.submit(liquidation_record, setup.bot_id, ts, reason, paper.liquidated)
    runner.push_control("liquidated")
