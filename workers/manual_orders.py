"""A trader's manual order on a bot's market, placed by the bot's own loop so it goes through the
bot's pre-trade risk (limits, balance, reduce-only, kill switch) like the strategy's orders, and
is tracked, fenced, recorded and cancelled at stop like them (``reason`` ``manual``: quoting
never touches it). The request arrives as the control message ``order:<json>`` (sent by
``workers.bots.manual_order`` for ``apps.bots.services.bot_manual_order``)."""

from __future__ import annotations

import json
import time

from trading.events import PlaceOrder, TimeInForce
from trading.instruments import InstrumentError, Side

PREFIX = "order:"
TIFS = {"limit": TimeInForce.GTC, "post_only": TimeInForce.POST_ONLY}


async def place(runner, message: str) -> None:
    """Handle ``order:{"side", "price", "quantity", "type", "reduce_only", "by"}`` for ``runner``."""
    inst = runner.setup.instrument
    try:
        order = json.loads(message[len(PREFIX) :])
        side = Side.BUY if order["side"] == "buy" else Side.SELL
        price = inst.ticks(order["price"], field="price")
        qty = inst.lots(order["quantity"], field="quantity")
        tif = TIFS[order["type"]]
    except (ValueError, KeyError, TypeError, InstrumentError) as exc:
        runner._event("lifecycle", "manual_order_refused", f"manual order refused: {exc}")
        return
    engine = runner.engine
    cmd = PlaceOrder(
        engine.ids.next(), side, price, qty, tif, reason="manual", reduce_only=bool(order.get("reduce_only"))
    )
    what = (
        f"{order['side']} {inst.quantity(qty)} {inst.base} at {inst.price(price)} {order['type']}"
        f"{' reduce-only' if cmd.reduce_only else ''} by {order.get('by', '?')}"
    )
    approved = engine.submit(time.time_ns(), [cmd])
    if not approved:
        reason = engine.notes[-1].message if engine.notes else "refused by pre-trade risk"
        runner._event("lifecycle", "manual_order_refused", f"manual order refused ({what}): {reason}")
        return
    runner._event("lifecycle", "manual_order", f"manual order {cmd.client_order_id} sent: {what}")
    await runner._send(approved)
