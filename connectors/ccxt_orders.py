"""Our orders as the live gateway tracks them: the bookkeeping that turns venue order updates
and trades (ccxt structures) into ``trading`` order events. No I/O here.

- every order we place (or find at the venue after a restart) is a :class:`TrackedOrder`;
- venue trades map back to our client id through the venue order id;
- a trade id is processed once, whichever source (stream, poll, order reply) saw it first;
- a venue-side close (cancel, expiry, reject) is reported once.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from connectors import ccxt_normalize as norm
from connectors.ccxt_venue import ClientIdCodec
from trading.events import (
    Liquidity,
    OrderAccepted,
    OrderCancelled,
    OrderEvent,
    OrderFilled,
    OrderRejected,
    PlaceOrder,
    TimeInForce,
)
from trading.instruments import Instrument
from trading.ports import OrderReport

CLOSED_STATUSES = ("canceled", "cancelled", "expired", "rejected")


@dataclass
class TrackedOrder:
    """Our view of one order: enough to turn venue trades into OrderFilled."""

    symbol: str
    command: PlaceOrder
    venue_order_id: str = ""
    filled: int = 0
    done: bool = False
    unknown: bool = False  # placement never got an answer; the next poll settles it

    @property
    def client_order_id(self) -> str:
        return self.command.client_order_id

    @property
    def leaves(self) -> int:
        return max(0, self.command.qty - self.filled)


class OrderTracker:
    """Tracked orders of one gateway; ``emit`` receives the resulting order events."""

    def __init__(
        self,
        codec: ClientIdCodec,
        clock_ns: Callable[[], int],
        emit: Callable[[OrderEvent], None],
        *,
        keep_done: int = 10_000,
        keep_trade_ids: int = 100_000,
    ) -> None:
        self.codec = codec
        self._clock_ns = clock_ns
        self._emit = emit
        self.orders: dict[str, TrackedOrder] = {}
        self.by_venue_id: dict[str, str] = {}
        self.seen_trades: set[str] = set()
        self.errors: list[str] = []
        # Finished orders and seen trade ids are remembered for a while (late duplicates from a
        # poll or a stream), then forgotten so a long-running bot does not grow without bound.
        self._done: deque[str] = deque()
        self._trade_ids: deque[str] = deque()
        self._keep_done = keep_done
        self._keep_trade_ids = keep_trade_ids

    def _finish(self, tracked: TrackedOrder) -> None:
        if tracked.done:
            return
        tracked.done = True
        self._done.append(tracked.client_order_id)
        while len(self._done) > self._keep_done:
            old = self.orders.get(self._done.popleft())
            if old is not None and old.done:
                self.orders.pop(old.client_order_id, None)
                self.by_venue_id.pop(old.venue_order_id, None)

    def _remember_trade(self, trade_id: str) -> None:
        self.seen_trades.add(trade_id)
        self._trade_ids.append(trade_id)
        while len(self._trade_ids) > self._keep_trade_ids:
            self.seen_trades.discard(self._trade_ids.popleft())

    # --- lookups ----------------------------------------------------------------------------
    def client_id_of_order(self, order: dict) -> str:
        cid = self.codec.decode(order.get("clientOrderId"))
        return cid or self.by_venue_id.get(str(order.get("id") or ""), "")

    def client_id_of_trade(self, trade: dict) -> str:
        cid = self.codec.decode(trade.get("clientOrderId"))
        return cid or self.by_venue_id.get(str(trade.get("order") or ""), "")

    def symbols(self) -> list[str]:
        return sorted({o.symbol for o in self.orders.values()})

    def working(self, symbol: str) -> list[TrackedOrder]:
        return [o for o in self.orders.values() if o.symbol == symbol and not o.done]

    def unknown(self, symbol: str) -> list[TrackedOrder]:
        return [o for o in self.orders.values() if o.symbol == symbol and o.unknown]

    # --- our actions --------------------------------------------------------------------------
    def track(self, symbol: str, command: PlaceOrder) -> TrackedOrder:
        tracked = TrackedOrder(symbol, command)
        self.orders[command.client_order_id] = tracked
        return tracked

    def adopt(self, symbol: str, report: OrderReport) -> TrackedOrder:
        """Track an order found at the venue (after a restart) so its fills map back to it."""
        command = PlaceOrder(report.client_order_id, report.side, report.price, report.qty)
        tracked = TrackedOrder(symbol, command, report.venue_order_id, report.filled_qty)
        self.orders[report.client_order_id] = tracked
        self.by_venue_id[report.venue_order_id] = report.client_order_id
        return tracked

    def set_venue_id(self, tracked: TrackedOrder, venue_order_id: str) -> None:
        tracked.venue_order_id = venue_order_id
        if venue_order_id:
            self.by_venue_id[venue_order_id] = tracked.client_order_id

    # --- venue answers ------------------------------------------------------------------------
    def on_placed(self, inst: Instrument, tracked: TrackedOrder, order: dict) -> None:
        """The venue acknowledged an order (create reply, or found by client id)."""
        self.set_venue_id(tracked, str(order.get("id") or ""))
        tracked.unknown = False
        self._emit(OrderAccepted(self._clock_ns(), tracked.client_order_id, tracked.venue_order_id))
        status = str(order.get("status") or "")
        if status in CLOSED_STATUSES:
            self.on_order_closed(tracked.client_order_id, status, order)
        for trade in order.get("trades") or []:
            self.on_trade(inst, trade)

    def on_trade(self, inst: Instrument, trade: dict) -> None:
        """One of the account's trades; emits OrderFilled once if it is one of ours."""
        trade_id = str(trade.get("id") or "")
        if not trade_id or trade_id in self.seen_trades:
            return
        cid = self.client_id_of_trade(trade)
        tracked = self.orders.get(cid)
        if tracked is None:
            return  # not ours (another bot or a manual trade on the account)
        try:
            fill = norm.fill_report(inst, trade, client_order_id=cid)
        except norm.RejectedMessage as exc:
            self.errors.append(f"fill {trade_id}: {exc}")
            return
        self._remember_trade(trade_id)
        if trade.get("takerOrMaker") is None:
            # the venue did not say: a post-only order can only have made liquidity
            fill = dataclasses.replace(fill, maker=tracked.command.time_in_force is TimeInForce.POST_ONLY)
        tracked.filled += fill.qty
        if tracked.leaves == 0:
            self._finish(tracked)
        self._emit(
            OrderFilled(
                ts=self._clock_ns(),
                client_order_id=cid,
                side=fill.side,
                price=fill.price,
                qty=fill.qty,
                leaves_qty=tracked.leaves,
                fee=norm.fee_cash_units(inst, fill),
                liquidity=Liquidity.MAKER if fill.maker else Liquidity.TAKER,
                trade_id=trade_id,
                venue_order_id=fill.venue_order_id,
            )
        )

    def on_order_closed(self, cid: str, status: str, order: dict) -> None:
        tracked = self.orders.get(cid)
        if tracked is None or tracked.done:
            return
        self._finish(tracked)
        if status == "rejected":
            reason = str((order.get("info") or {}).get("r") or status)
            self._emit(OrderRejected(self._clock_ns(), cid, reason, status))
        else:
            self._emit(OrderCancelled(self._clock_ns(), cid, f"venue: {status}"))

    def on_order(self, order: dict) -> None:
        """An order update (watch_orders / poll): reports venue-side closes."""
        cid = self.client_id_of_order(order)
        status = str(order.get("status") or "")
        if cid and status in CLOSED_STATUSES:
            self.on_order_closed(cid, status, order)

    def cancelled(self, cid: str, reason: str) -> None:
        """Our cancel succeeded (or the order was already gone): report once."""
        tracked = self.orders.get(cid)
        if tracked is not None:
            if tracked.done:
                return
            self._finish(tracked)
        self._emit(OrderCancelled(self._clock_ns(), cid, reason))

    def forget(self, tracked: TrackedOrder) -> None:
        """The venue confirmed it never got this order: it is finished without an event."""
        tracked.unknown = False
        self._finish(tracked)
