"""What a :class:`workers.botloop.BotRunner` writes: order rows and fills from its order events,
bot events from the engine's notes, a PnL snapshot every second (all on the host's database
writer ``db``, in order, with the bot as their owner: a row the database refuses puts the bot
into ``error``) and its live status for the UI (``Host.set_bot_status``).

The bot stamps its own order traffic: when each place and cancel request left for the venue
(the first attempt; ``_stamp_sent``) and when the venue's answer to it came back
(``_stamp_answered``). They are written with the order's updates (``sent_at``, ``acked_at``,
``cancel_requested_at``, ``closed_at``), so place->ack and cancel->ack are measured round trips
of the bot's own requests, which the simulator profiles fit (``apps.research.profiles``).
"""

from __future__ import annotations

import time

from apps.bots.services import bot_events_record
from apps.orders.services import fills_record, orders_update
from apps.portfolio.services import pnl_snapshots_record
from trading.events import (
    CancelOrder,
    Liquidity,
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    PlaceOrder,
)
from trading.instruments import Side
from workers import metrics as bot_metrics
from workers import perp_hosting, records

MAX_STAMPED = 100_000  # requests waiting for an answer; past it (answers lost) the stamps restart


class BotRecords:
    def _stamps(self) -> tuple[dict[str, int], dict[str, int], dict[str, int], dict[str, int]]:
        """(place sent, place answered, cancel sent, cancel answered) in ns, by client order id."""
        stamps = self.__dict__.get("_order_stamps")
        if stamps is None:
            stamps = self.__dict__["_order_stamps"] = ({}, {}, {}, {})
        return stamps

    def _stamp_sent(self, commands) -> None:
        """Stamp when each place and cancel request is sent (retries keep the first stamp)."""
        places, _, cancels, _ = self._stamps()
        if len(places) > MAX_STAMPED or len(cancels) > MAX_STAMPED:
            for d in self._stamps():
                d.clear()
        now = time.time_ns()
        for c in commands:
            t = type(c)
            if t is PlaceOrder:
                places.setdefault(c.client_order_id, now)
            elif t is CancelOrder:
                cancels.setdefault(c.client_order_id, now)

    def _stamp_answered(self, events) -> None:
        """Stamp when the venue's answers to stamped requests came back."""
        places, placed, cancels, cancelled = self._stamps()
        now = time.time_ns()
        for ev in events:
            t, cid = type(ev), ev.client_order_id
            if t is OrderAccepted and cid in places:
                placed.setdefault(cid, now)
            elif t is OrderCancelled and cid in cancels:
                cancelled.setdefault(cid, now)

    def _place_stamps(self, cid: str, ack_ts: int) -> tuple[int, int | None]:
        """(acknowledged at, sent at) of a place: the stamped answer, else the event's own time."""
        places, placed, _, _ = self._stamps()
        return placed.pop(cid, ack_ts), places.pop(cid, None)

    def _forget_stamps(self, cid: str) -> None:
        for d in self._stamps():
            d.pop(cid, None)

    async def _order_event_db(self, ev) -> None:
        self._record(ev)

    def _record(self, ev) -> None:
        """Record one order event (the runner's ``record`` hook; held while the venue has not
        confirmed its writes): rows on the database writer, a fill pushed to the bot's group."""
        t = type(ev)
        cid = ev.client_order_id
        if t is OrderAccepted and cid in self._acked:
            self._acked.discard(cid)  # its row was written acknowledged
            return
        bot_metrics.order_event(self, ev)
        setup = self.setup
        inst = setup.instrument
        if t is OrderAccepted:
            acked, sent = self._place_stamps(cid, ev.ts)
            self.host.db.submit(
                orders_update,
                [(cid, "open", ev.venue_order_id, None, "", inst, acked, sent)],
                owner=self.bot_id,
            )
        elif t is OrderFilled:
            self.fills += 1
            filled = self.filled.get(cid, 0) + ev.qty
            self.filled[cid] = filled
            status = "filled" if ev.leaves_qty <= 0 else "partially_filled"
            if ev.leaves_qty <= 0:
                self._forget_stamps(cid)
            row = records.fill_row(
                setup, ev.ts, cid, ev.side, ev.price, ev.qty, ev.fee, ev.liquidity is Liquidity.MAKER, ev.trade_id
            )
            if ev.trade_id not in self.recorded_trade_ids:  # else stored from the venue's trade list
                self.host.db.submit(fills_record, [row], owner=self.bot_id)
            self.host.db.submit(orders_update, [(cid, status, ev.venue_order_id, filled, "", inst)], owner=self.bot_id)
            self.host.publish_bot(
                self.bot_id,
                {
                    "type": "fill",
                    "side": row["side"],
                    "price": str(row["price"]),
                    "qty": str(row["quantity"]),
                    "fee": str(row["fee"]),
                    "cid": cid,
                },
            )
        elif t is OrderCancelled:
            if self.filled.get(cid, 0) or cid not in self.filled:
                self.filled.pop(cid, None)
            _, _, cancels, cancelled = self._stamps()
            cancel_sent = cancels.pop(cid, None)
            answered = cancelled.pop(cid, ev.ts) if cancel_sent is not None else None
            acked, sent = self._place_stamps(cid, 0)
            self.host.db.submit(
                orders_update,
                [(cid, "cancelled", "", None, ev.reason, inst, acked or None, sent, cancel_sent, answered)],
                owner=self.bot_id,
            )
        elif t is OrderRejected and ev.code in ("unknown_order", "already_filled", "already_closed"):
            _, _, cancels, cancelled = self._stamps()
            cancels.pop(cid, None)  # a cancel that found nothing to cancel measures nothing
            cancelled.pop(cid, None)
        elif t is OrderRejected:
            self._forget_stamps(cid)
            self.host.db.submit(orders_update, [(cid, "rejected", "", None, ev.reason, inst)], owner=self.bot_id)

    def _event(self, kind: str, code: str, message: str, data: dict | None = None) -> None:
        self.host.db.submit(bot_events_record, [(self.bot_id, time.time_ns(), kind, code, message, data)])

    def _flush_notes(self) -> None:
        notes = self.engine.notes
        if not notes:
            return
        rows = []
        while notes:
            n = notes.popleft()
            rows.append((self.bot_id, n.ts, n.kind, n.code, n.message, None))
        self.host.db.submit(bot_events_record, rows)

    def _snapshot(self, ts: int) -> None:
        """PnL snapshot (every second) and the live status for the UI."""
        engine, inst = self.engine, self.setup.instrument
        snap = engine.portfolio.snapshot(ts)
        perp = None if engine.perp is None else perp_hosting.hosting(self).step(ts)  # its own PnL row
        if perp is None:
            self.host.db.submit(
                pnl_snapshots_record,
                [(ts, self.bot_id, inst, snap.position, snap.cash, snap.mid, snap.realized, snap.unrealized,
                  snap.fees, snap.equity, snap.peak, snap.drawdown)],
                owner=self.bot_id,
            )  # fmt: skip
        quotes = [
            {
                "side": "buy" if o.side is Side.BUY else "sell",
                "price": str(inst.price(o.price)),
                "qty": str(inst.quantity(o.remaining)),
            }
            for o in engine.orders.orders.values()
        ]
        status = {
            "type": "status",
            "state": self.state,
            "owner": self.host.host_id,
            "token": self.lease.token,
            "position": str(inst.quantity(snap.position)),
            "equity": str(inst.cash(snap.equity)),
            "realized": str(inst.cash(snap.realized)),
            "unrealized": str(inst.cash(snap.unrealized)),
            "drawdown": str(inst.cash(snap.drawdown)),
            "orders": quotes,
            "risk": engine.status.action.name.lower(),
            "ts": ts,
        }
        if perp is not None:  # a perpetual's figures are its exact position's, in the settle currency
            status["perp"] = perp
            status.update(position=perp["position_contracts"], equity=perp["margin_balance"])
            status.update(realized=perp["realized"], unrealized=perp["unrealized"] or "0")
        self.host.set_bot_status(self.bot_id, status)
