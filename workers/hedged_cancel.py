"""One order of a hosted hedged bot cancelled on request (the ``cancel:<client id>`` control that
a user's cancel and reconciliation's orphan cancel send to the bot's owner)."""

from __future__ import annotations

from trading.events import CancelOrder
from workers import records


async def cancel_one(loop, cid: str) -> None:
    """Cancel one order of either leg of ``loop`` (a :class:`workers.hedged_loop.HedgedLoop`),
    found by its client-id family. An order the hedged maker works goes through the kernel (a
    maker quote is replaced; a hedge cancelled short counts as failed and is retried within the
    budget, so its exposure is never dropped silently); any other (an orphan) is taken off the
    venue and its row closed (paper; a live leg's order report closes it)."""
    r, bot = loop.r, loop.bot
    leg = next((g for g in loop.legs.values() if cid.startswith(g.setup.prefix + "-")), None)
    if leg is None:
        return
    if cid in bot.maker_orders or cid in bot.hedge_orders:
        leg.runner.send([CancelOrder(cid, "cancelled by user")], r.clock())
        await loop._flush()
        return
    loop._use(leg)
    if any(o.client_order_id == cid for o in await leg.venue.fetch_open_orders()):
        await r._cancel_on_venue(cid, "cancelled by user")
        if not leg.venue.reports_later:  # paper: the answer was the cancel (live: its report follows)
            r.host.db.submit(
                records.orders_update, [(cid, "cancelled", "", None, "cancelled by user", leg.setup.instrument)]
            )
