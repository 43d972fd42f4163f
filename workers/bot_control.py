"""Lifecycle commands of a :class:`workers.botloop.BotRunner`: pause, resume, cancel one order,
stop, kill (and flatten), reload, and the stop a refused database write forces.

A stop cancels everything the engine holds, then fetches the venue's open orders with the bot's
prefix and cancels them until none remain (``STOP_CONFIRM_TIMEOUT_S``, else ``error`` with the
count, retried by the supervisor without an owner), records the fills that happened meanwhile,
and closes each order row with the status the venue reports.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

from apps.bots.risk_pause import bot_risk_hold
from apps.bots.services import bot_state_set
from apps.orders.services import open_orders_close, orders_update
from connectors.errors import AuthFailure
from trading import hedge_legs
from trading.events import CancelOrder, Liquidity, OrderEvent, OrderFilled, PlaceOrder, TimeInForce
from trading.instruments import Side
from trading.ports import OrderStatus
from workers import keys, manual_orders, records
from workers.paper_venue import LeaseLost

logger = logging.getLogger(__name__)
NS = 1_000_000_000
STOP_CONFIRM_TIMEOUT_S = 10.0
STOP_TRADES_MARGIN_NS = 10 * NS  # trades read at a stop: from a little before it began
FLATTEN_CROSS_BPS = 50  # a kill-switch flatten takes liquidity up to 0.5 % through the touch

# The order row status for what the venue reports once nothing is open any more.
VENUE_FINAL_STATUS = {
    OrderStatus.FILLED: "filled",
    OrderStatus.REJECTED: "rejected",
    OrderStatus.EXPIRED: "expired",
    OrderStatus.CANCELLED: "cancelled",
}


class StopLoop(Exception):
    """Leave the loop (stopped, lost the lease, or a fatal configuration error)."""


class BotControl:
    def check_desired_state(self, desired: str, kill: bool, risk_paused: bool) -> None:
        """Follow the desired state even if a control message was lost (Redis restart, ...).
        Called by the host every few seconds with what it read for all its bots at once;
        ``risk_paused``: the risk sweep holds the bot paused (``Bot.risk_paused_at``), so it
        pauses and is not resumed whatever its desired state."""
        if self.engine is None or self.state not in ("running", "paused"):
            return
        wanted = None
        if desired == "stopped" or kill:
            wanted = "kill" if kill else "stop"
        elif (desired == "paused" or risk_paused) and self.state == "running":
            wanted = "pause"
        elif desired == "running" and self.state == "paused" and not risk_paused:
            wanted = "resume"
        # Act only on a mismatch seen twice in a row: the control message (which may carry
        # more, e.g. flatten) normally arrives first.
        if wanted is not None and wanted == self._mismatch:
            self._event("lifecycle", "desired_state", f"{wanted}: following the desired state (no command came)")
            self.push_control(wanted)
            wanted = None
        self._mismatch = wanted

    async def _control(self, message: str) -> None:
        engine = self.engine
        ts = time.time_ns()
        if message == "pause":
            await self._send(engine.pause(ts, "paused"))
            self.state = "paused"
            self.host.db.submit(bot_state_set, self.bot_id, "paused", "")
        elif message == "liquidated":  # the paper venue liquidated the perpetual position
            reason = self.liquidated_reason or "liquidated"
            await self._flush(catch=False)  # the cancels of the pause made at the liquidation
            self.state = "paused"
            self.host.db.submit(bot_risk_hold, self.bot_id, reason, ts)  # the bot's row: a new owner starts paused
        elif message == "resume":
            engine.resume(ts, "resumed")
            self.state = "running"
            self.host.db.submit(bot_state_set, self.bot_id, "running", "")
        elif message.startswith("cancel:"):
            cid = message.partition(":")[2]
            if cid in engine.orders.orders:
                await self._send([CancelOrder(cid, "cancelled by user")])
            elif any(o.client_order_id == cid for o in await self.venue.fetch_open_orders()):
                if self.venue.matches(cid):
                    for ev in await self.venue.cancel(cid, "cancelled by user"):
                        await self._order_event_db(ev)
                else:
                    await self.venue.remove(cid, "cancel")
                if not self.venue.reports_later:  # the answer was the cancel (paper)
                    self.host.db.submit(
                        orders_update,
                        [(cid, "cancelled", "", None, "cancelled by user", self.setup.instrument)],
                    )
                else:  # it may have filled meanwhile (live): write what the venue says
                    await self._close_orders_from_venue("cancelled by user", [cid])
        elif message == "portfolio":  # the owner's net limit changed: re-read the blocked side
            await self._read_portfolio_block()
        elif message.startswith(manual_orders.PREFIX):
            await manual_orders.place(self, message)
        elif message in ("stop", "kill", "kill_flatten"):
            await self._stop(message)
        elif message == "reload":  # configuration changed: start again from the database
            await self._stop("reload")
        elif message == "write_refused":
            await self._stop("write_refused")

    async def _read_portfolio_block(self) -> None:
        """Apply the portfolio sweep's blocked side (``keys.portfolio_block``) to pre-trade risk."""
        raw = await self.host.redis.get(keys.portfolio_block(self.bot_id))
        block = None
        if raw:
            try:
                data = json.loads(raw)
                block = (Side.BUY if data["side"] == "buy" else Side.SELL, str(data["message"]))
            except (ValueError, KeyError, TypeError):
                logger.warning("bot %s: unreadable portfolio block %r ignored", self.bot_id, raw)
        if block != self.engine.risk.net_block:
            self.engine.risk.net_block = block
            if block is None:
                self._event("portfolio", "portfolio_net_cleared", "portfolio net back within its limit")
            else:
                self._event("portfolio", "portfolio_net_limit", f"{block[0].name.lower()} orders refused: {block[1]}")

    async def _stop(self, how: str) -> None:
        """Cancel everything (and place the flatten order first when asked), confirm with the venue
        that nothing with our prefix is open, record the fills that happened meanwhile, and close
        each order row with the status the venue reports."""
        engine, venue = self.engine, self.venue
        ts = time.time_ns()
        self.host.db.submit(bot_state_set, self.bot_id, "stopping", "")
        if how == "write_refused":
            self._event("error", "write_refused", self.refused_reason)
        commands = engine.kill(ts, "kill switch") if how.startswith("kill") else engine.stop(ts, how)
        await self._send(commands)
        if how == "kill_flatten":  # before the confirm loop: an IOC must be done before we check
            await self._flatten()
        deadline = time.monotonic() + STOP_CONFIRM_TIMEOUT_S
        left = await venue.fetch_open_orders()
        while left and time.monotonic() < deadline:
            for rep in left:
                await self._cancel_on_venue(rep.client_order_id, how)
            left = await venue.fetch_open_orders()
            if left:
                await asyncio.sleep(0.05)
        live = venue.reports_later  # events may still come (a live gateway's pump)
        traded: set[str] = set()  # orders with a fill read from the venue's trade list
        await self._drain_order_events(settle_s=venue.settle_s)
        if live:  # fills made while cancelling that the pump did not bring: the venue's trade list
            try:
                for f in await self._record_venue_trades(ts - STOP_TRADES_MARGIN_NS):
                    traded.add(f.client_order_id)
                    engine.portfolio.on_fill(
                        OrderFilled(
                            f.ts,
                            f.client_order_id,
                            f.side,
                            f.price,
                            f.qty,
                            0,
                            int(f.fee),
                            Liquidity.MAKER if f.maker else Liquidity.TAKER,
                            f.trade_id,
                        )
                    )
            except (LeaseLost, AuthFailure, asyncio.CancelledError):
                raise
            except Exception as exc:  # the next take-over reads the trade list again
                logger.warning("bot %s: trades not read at stop: %s", self.bot_id, exc)
            await self._drain_order_events()  # anything the pump brought meanwhile (not stored twice)
        if left:
            reason = (
                f"{records.STOP_UNCONFIRMED}: {len(left)} orders still open on the venue after "
                f"{STOP_CONFIRM_TIMEOUT_S:.0f}s; retried without an owner"
            )
            self._event("lifecycle", "stop_unconfirmed", reason)
            await self.host.db.call(bot_state_set, self.bot_id, "error", reason)
            await self.host.release_bot(self.bot_id)  # the supervisor retries the stop without an owner
            raise StopLoop(reason)
        if live:
            await self._close_orders_from_venue(how, extra=traded)
        await self.host.db.call(open_orders_close, self.bot_id, set(), "cancelled", how)
        if how == "reload":
            self._event("lifecycle", "reload", "configuration reloaded; no order left on the venue")
            await self.host.db.call(bot_state_set, self.bot_id, "starting", "")
            await self.host.release_bot(self.bot_id, keep_wanted=True)
            raise StopLoop("reload")
        self._event("lifecycle", how, "stopped; venue confirms no open order with the bot's prefix")
        self._snapshot(time.time_ns())
        if how == "write_refused":
            state, reason = "error", self.refused_reason
        else:
            state, reason = "stopped", "kill switch" if how != "stop" else ""
        await self.host.db.call(bot_state_set, self.bot_id, state, reason)
        await self.host.release_bot(self.bot_id)
        raise StopLoop(how)

    async def _drain_order_events(self, settle_s: float = 0.0) -> None:
        """Record the order events a live gateway delivered while stopping (cancels, late fills):
        keep draining until no event came for ``settle_s`` (paper: nothing comes this way)."""
        quiet_until = time.monotonic() + settle_s
        while True:
            await asyncio.sleep(0)
            if not self.inbox:
                if time.monotonic() >= quiet_until:
                    return
                await asyncio.sleep(0.05)
                continue
            while self.inbox:
                event, _published = self.inbox.popleft()
                if isinstance(event, OrderEvent):
                    await self._order_event_db(event)
                    self.engine.on_event(event)  # position/PnL only: commands are no longer sent
            quiet_until = time.monotonic() + settle_s

    async def _close_orders_from_venue(
        self, how: str, cids: list[str] | None = None, extra: set[str] | frozenset = frozenset()
    ) -> None:
        """Give each order row still open in the database (or each of ``cids``), and the orders
        in ``extra``, the venue's final status (filled, cancelled, ...) instead of assuming it was
        cancelled; an order the venue still has open, or cannot tell about, is left as it is (a
        closed row only ever changes to ``filled``)."""
        inst = self.setup.instrument
        updates = []
        if cids is None:
            cids = await self.host.db.call(records.open_order_ids, self.bot_id)
        for cid in sorted(set(cids) | set(extra)):
            try:
                rep = await self.venue.fetch_order(cid)
            except (LeaseLost, AuthFailure, asyncio.CancelledError):
                raise
            except Exception as exc:  # unknown: leave it to the blanket close below
                logger.info("bot %s: order %s not looked up at stop: %s", self.bot_id, cid, exc)
                continue
            if rep is None or rep.status not in VENUE_FINAL_STATUS:
                continue  # unknown to the venue (cancelled by the caller) or still open: left as is
            status = VENUE_FINAL_STATUS[rep.status]
            updates.append((cid, status, rep.venue_order_id, rep.filled_qty, how, inst))
        if updates:
            await self.host.db.call(orders_update, updates)

    async def _cancel_on_venue(self, cid: str, reason: str) -> None:
        """Cancel one order the venue holds (known to the matching engine or not)."""
        venue = self.venue
        try:
            if venue.matches(cid):
                for ev in await venue.cancel(cid, reason):
                    await self._order_event_db(ev)
            else:
                await venue.remove(cid, "cancel")
        except (LeaseLost, AuthFailure, asyncio.CancelledError):
            raise
        except Exception as exc:  # injected/temporary venue error: the confirm loop tries again
            self.place_errors += 1
            logger.info("bot %s: cancel %s failed (%s); retrying", self.bot_id, cid, exc)

    async def _flatten(self) -> None:
        """Close the position with reduce-only IOC orders priced at most ``FLATTEN_CROSS_BPS``
        through the touch: the net in one order, or in hedge position mode each open leg in its
        own order naming the leg (:func:`trading.hedge_legs.flatten_orders`)."""
        engine = self.engine
        pos = engine.portfolio.position
        hedge = None if engine.perp is None else engine.perp.hedge
        legs = None if hedge is None else engine.perp.position
        bid, ask = engine.book.best_bid(), engine.book.best_ask()
        if not (pos if legs is None else legs.is_open):
            self._event("lifecycle", "flatten", "flatten: the position is already flat")
            return
        if bid is None or ask is None:
            self._event("lifecycle", "flatten_failed", "flatten: no book to price the taker order; position kept")
            return
        cross = max(5, (bid + ask) * FLATTEN_CROSS_BPS // 20_000)  # ticks through the touch
        sell_price, buy_price = max(1, bid - cross), ask + cross
        inst = self.setup.instrument
        if legs is not None:  # hedge position mode: every open leg closed, each naming its leg
            commands = hedge_legs.flatten_orders(legs, engine.ids.next, sell_price, buy_price)
            text = " and ".join(f"the {c.position_side} leg ({inst.quantity(c.qty)})" for c in commands)
        else:
            side = Side.SELL if pos > 0 else Side.BUY
            price = sell_price if side is Side.SELL else buy_price
            commands = [PlaceOrder(engine.ids.next(), side, price, abs(pos), TimeInForce.IOC, reason="flatten",
                                   reduce_only=True)]  # fmt: skip
            text = f"{inst.quantity(abs(pos))}"
        now = time.time_ns()
        for cmd in commands:
            if hedge is not None:
                hedge.assign(legs, cmd)  # remembered: its fill books on the leg it names
            engine.orders.on_place_sent(cmd, now)
        what = "taker orders" if len(commands) > 1 else "a taker order"
        self._event("lifecycle", "flatten", f"flattening {text} with {what}")
        await self._send(commands)
