"""Order management inside the engine: working-order bookkeeping and quote diffing (client
order ids live in :mod:`trading.order_ids` and are re-exported here).

The bookkeeper is the engine's view of its own orders. It applies lifecycle events from any
gateway (live, paper, simulated) and copes with the races every venue produces: a fill that
arrives after we sent a cancel, a cancel acknowledgement for an order that already filled,
events for ids we do not know, and the same fill delivered twice. It never raises on an odd
event: it records a :class:`BookkeepingNote` and carries on, and it never drops a fill.

:func:`diff_quotes` turns the quotes a strategy wants into the smallest set of cancels and
places (or amends) against what is already working.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from operator import attrgetter

from trading import order_ids
from trading.events import (
    AmendOrder,
    CancelOrder,
    Command,
    OrderAccepted,
    OrderAmended,
    OrderCancelled,
    OrderEvent,
    OrderFilled,
    OrderRejected,
    PlaceOrder,
    TimeInForce,
)
from trading.instruments import Side
from trading.strategy import Quote, QuoteSet

# Client order ids, re-exported for the callers that import them from here.
ClientOrderIds = order_ids.ClientOrderIds
MAX_CLIENT_ORDER_ID_LENGTH = order_ids.MAX_CLIENT_ORDER_ID_LENGTH
to_base36 = order_ids.to_base36


class OrderState(enum.Enum):
    """Where one of our orders is in its life, as far as the engine knows."""

    PENDING_NEW = "pending_new"  # sent, not yet acknowledged
    OPEN = "open"  # acknowledged and resting
    PENDING_CANCEL = "pending_cancel"  # cancel sent, not yet acknowledged
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"


TERMINAL_STATES = frozenset({OrderState.FILLED, OrderState.CANCELLED, OrderState.REJECTED})
# Reject codes meaning "the venue no longer has this order" (cancel/amend of a finished order).
IN_DOUBT_CODE = "unknown_state"
GONE_AT_VENUE_CODES = frozenset({"unknown_order", "already_filled", "already_closed", "order_not_found"})


class WorkingOrder:
    """One of our orders that the venue may still hold. Mutable; owned by the bookkeeper."""

    __slots__ = (
        "accepted",
        "client_order_id",
        "filled",
        "placed_ts",
        "price",
        "qty",
        "reason",
        "reduce_only",
        "side",
        "status",
        "venue_order_id",
    )

    def __init__(
        self,
        client_order_id: str,
        side: Side,
        price: int,
        qty: int,
        placed_ts: int,
        *,
        status: OrderState = OrderState.PENDING_NEW,
        filled: int = 0,
        venue_order_id: str = "",
        reduce_only: bool = False,
        reason: str = "quote",
    ) -> None:
        self.client_order_id = client_order_id
        self.side = side
        self.price = price
        self.qty = qty
        self.filled = filled
        self.status = status
        self.placed_ts = placed_ts
        self.venue_order_id = venue_order_id
        self.reduce_only = reduce_only
        self.reason = reason
        self.accepted = status is not OrderState.PENDING_NEW  # the venue has acknowledged it

    @property
    def remaining(self) -> int:
        """Lots still working."""
        return self.qty - self.filled

    def as_dict(self) -> dict[str, object]:
        """Plain values for persistence and the UI."""
        return {
            "client_order_id": self.client_order_id,
            "side": self.side.name.lower(),
            "price": self.price,
            "qty": self.qty,
            "filled": self.filled,
            "status": self.status.value,
            "placed_ts": self.placed_ts,
            "venue_order_id": self.venue_order_id,
            "reason": self.reason,
        }

    def __repr__(self) -> str:
        return (
            f"WorkingOrder({self.client_order_id} {self.side.name} {self.remaining}/{self.qty}"
            f"@{self.price} {self.status.value})"
        )


@dataclass(frozen=True, slots=True)
class BookkeepingNote:
    """Something odd the bookkeeper saw and handled (unknown id, duplicate fill, late ack)."""

    ts: int
    code: str
    message: str


class OrderBookkeeper:
    """Track our working orders and apply order events to them, race-safe.

    ``apply`` returns the fill to book into the portfolio (``None`` when the event is not a
    new fill). Fills for unknown ids are still returned — a fill on our account is never lost.
    """

    def __init__(self, *, max_notes: int = 1000, trade_id_memory: int = 100_000) -> None:
        self.orders: dict[str, WorkingOrder] = {}
        self.notes: deque[BookkeepingNote] = deque(maxlen=max_notes)
        self._seen_trades: set[str] = set()
        self._seen_order: deque[str] = deque()
        self._trade_id_memory = trade_id_memory
        self.version = 0  # bumps on every change a quote diff reads (lets the engine skip diffs)
        self._done: deque[str] = deque(maxlen=256)  # ids of the orders done most recently
        self.late_rejects = 0  # rejects of a request on one of them (see ``apply``)

    # --- what we sent ------------------------------------------------------------------------
    def on_place_sent(self, command: PlaceOrder, ts: int) -> WorkingOrder:
        """Record an order we are sending; it counts as working from now on."""
        order = WorkingOrder(
            command.client_order_id,
            command.side,
            command.price,
            command.qty,
            ts,
            reduce_only=command.reduce_only,
            reason=command.reason,
        )
        self.orders[command.client_order_id] = order
        self.version += 1
        return order

    def on_cancel_sent(self, client_order_id: str, ts: int) -> None:
        """Mark an order pending cancel (it stays in the book until the venue confirms)."""
        order = self.orders.get(client_order_id)
        if order is None:
            self._note(ts, "cancel_unknown", f"cancel sent for {client_order_id}, which is not working")
            return
        order.status = OrderState.PENDING_CANCEL
        self.version += 1

    def on_amend_sent(self, command: AmendOrder, ts: int) -> None:
        """Apply an amend optimistically so the next diff sees the new price and size."""
        order = self.orders.get(command.client_order_id)
        if order is None:
            self._note(ts, "amend_unknown", f"amend sent for {command.client_order_id}, which is not working")
            return
        order.price = command.price
        order.qty = order.filled + command.qty
        order.placed_ts = ts
        self.version += 1

    def on_commands_sent(self, commands: Iterable[Command], ts: int) -> None:
        """Record a batch of commands handed to the gateway."""
        for cmd in commands:
            if isinstance(cmd, PlaceOrder):
                self.on_place_sent(cmd, ts)
            elif isinstance(cmd, CancelOrder):
                self.on_cancel_sent(cmd.client_order_id, ts)
            elif isinstance(cmd, AmendOrder):
                self.on_amend_sent(cmd, ts)
            else:  # CancelAll
                for order in self.orders.values():
                    order.status = OrderState.PENDING_CANCEL
                self.version += 1

    # --- what the venue said -----------------------------------------------------------------
    def apply(self, event: OrderEvent) -> OrderFilled | None:
        """Apply one order event; return the fill if it is new and must be booked."""
        if isinstance(event, OrderFilled):
            return self._on_fill(event)
        order = self.orders.get(event.client_order_id)
        if isinstance(event, OrderAccepted):
            if order is None:
                self._note(event.ts, "accept_unknown", f"accepted {event.client_order_id}, not ours or done")
            else:
                if order.status is OrderState.PENDING_NEW:
                    order.status = OrderState.OPEN
                order.accepted = True
                if event.venue_order_id:
                    order.venue_order_id = event.venue_order_id
                # No version bump: pending-new and open orders count alike everywhere the
                # version is read (quote diffs, live order counts).
        elif isinstance(event, OrderCancelled):
            if order is None:  # typically the order filled completely before the cancel reached the venue
                self._note(
                    event.ts, "cancel_ack_unknown", f"cancel confirmed for {event.client_order_id}, already done"
                )
            else:
                order.status = OrderState.CANCELLED
                self._remove(order)
        elif isinstance(event, OrderRejected):
            if order is None and event.client_order_id in self._done:
                # the answer to a cancel that met an order done meanwhile (filled, or its place
                # refused): expected with venue latency, counted, not noted
                self.late_rejects += 1
            elif order is None:
                self._note(event.ts, "reject_unknown", f"reject for {event.client_order_id}: {event.reason}")
            elif event.code == IN_DOUBT_CODE:
                # The venue never answered and a lookup could not tell: the order may be live.
                # Keep counting it as working (never place a duplicate); the gateway adopts it
                # with a late accept, or reports it gone, and reconciliation settles the rest.
                self._note(event.ts, "order_in_doubt", f"{event.client_order_id} state unknown: {event.reason}")
            elif not order.accepted or event.code in GONE_AT_VENUE_CODES:
                # Never acknowledged: this is the venue refusing the order itself (even if we
                # already asked to cancel it). Or the venue says the order no longer exists:
                # it is done there (a late fill, if any, is still booked when it arrives).
                order.status = OrderState.REJECTED
                self._remove(order)
                code = "order_rejected" if not order.accepted else "order_gone_at_venue"
                self._note(event.ts, code, f"{event.client_order_id} rejected: {event.reason}")
            else:
                # A cancel or amend was refused; the order is still live as far as we know.
                # Reopen it so the next diff decides again (reconciliation catches ghosts).
                order.status = OrderState.OPEN
                self.version += 1
                self._note(event.ts, "request_rejected", f"request on {event.client_order_id} refused: {event.reason}")
        elif isinstance(event, OrderAmended):
            if order is None:
                self._note(event.ts, "amend_ack_unknown", f"amend confirmed for {event.client_order_id}, done")
            else:
                order.price = event.price
                order.qty = max(event.qty, order.filled)
                order.accepted = True
                if order.status is OrderState.PENDING_NEW:
                    order.status = OrderState.OPEN
                self.version += 1
        return None

    def _on_fill(self, fill: OrderFilled) -> OrderFilled | None:
        tid = fill.trade_id
        if tid:
            if tid in self._seen_trades:
                self._note(fill.ts, "duplicate_fill", f"fill {tid} on {fill.client_order_id} already booked")
                return None
            self._seen_trades.add(tid)
            self._seen_order.append(tid)
            if len(self._seen_order) > self._trade_id_memory:
                self._seen_trades.discard(self._seen_order.popleft())
        order = self.orders.get(fill.client_order_id)
        if order is None:
            self._note(
                fill.ts,
                "fill_unknown_order",
                f"fill {tid} of {fill.qty} lots on {fill.client_order_id}: not a working order, booked anyway",
            )
            return fill
        order.filled += fill.qty
        order.accepted = True
        if fill.venue_order_id and not order.venue_order_id:
            order.venue_order_id = fill.venue_order_id
        if fill.leaves_qty == 0 or order.filled >= order.qty:
            order.status = OrderState.FILLED
            self._remove(order)
        else:
            if order.status is OrderState.PENDING_NEW:
                order.status = OrderState.OPEN
            # A fill racing our cancel keeps PENDING_CANCEL: the cancel will take the rest.
            self.version += 1
        return fill

    def _remove(self, order: WorkingOrder) -> None:
        del self.orders[order.client_order_id]
        self._done.append(order.client_order_id)
        self.version += 1

    def _note(self, ts: int, code: str, message: str) -> None:
        self.notes.append(BookkeepingNote(ts, code, message))

    # --- views -------------------------------------------------------------------------------
    def live(self) -> list[WorkingOrder]:
        """Orders that are working and not being cancelled."""
        return [o for o in self.orders.values() if o.status is not OrderState.PENDING_CANCEL]

    def count_live(self) -> tuple[int, int]:
        """Number of live (not pending-cancel) bids and asks."""
        bids = asks = 0
        for o in self.orders.values():
            if o.status is not OrderState.PENDING_CANCEL:
                if o.side is Side.BUY:
                    bids += 1
                else:
                    asks += 1
        return bids, asks


# --------------------------------------------------------------------------------------------
# Quote diffing
# --------------------------------------------------------------------------------------------
def _bid_key(order: WorkingOrder) -> int:
    return -order.price  # best (highest) bid first


def _ask_key(order: WorkingOrder) -> int:
    return order.price  # best (lowest) ask first


_PRICE = attrgetter("price")  # sort key of orders and quotes (C-level, same order as a lambda)


def _placement_key(q: Quote) -> tuple[int, int, int]:
    # best level first, bid before ask, then best price
    return (q.level, -q.side, -q.price if q.side == 1 else q.price)


def _match_side(
    quotes: Sequence[Quote],
    orders: list[WorkingOrder],
    ts: int,
    refresh_tolerance: float,
    size_tolerance: float,
    max_order_age: int,
) -> tuple[list[WorkingOrder], list[Quote]]:
    """Keep as many working orders as possible; return (orders to drop, quotes to place)."""
    drop: list[WorkingOrder] = []
    if max_order_age:
        fresh = []
        for o in orders:
            if ts - o.placed_ts >= max_order_age:
                drop.append(o)
            else:
                fresh.append(o)
        orders = fresh
    if not quotes:
        drop.extend(orders)
        return drop, []
    if not orders:
        return drop, list(quotes)
    orders.sort(key=_PRICE)  # lowest price first
    if len(orders) == len(quotes):
        # Fast path for the common case: pairing both sides in price order already keeps
        # every order (a perfect matching cannot be improved on).
        for o, q in zip(orders, sorted(quotes, key=_PRICE), strict=True):
            dp = o.price - q.price
            if (dp if dp >= 0 else -dp) > refresh_tolerance * q.price:
                break
            ds = o.qty - o.filled - q.qty
            if ds and (ds if ds > 0 else -ds) > size_tolerance * q.qty:
                break
        else:
            return drop, []
    # Each quote accepts orders priced within [price - slack, price + slack]. Walking the
    # orders from the lowest price and giving each to the open quote whose range ends first
    # keeps the largest possible number of orders (the classic points-to-intervals greedy).
    # With few levels (<= ~20) the quadratic scan is cheaper than anything clever.
    # The range test is the same as the fast path's (|price - quote| <= tolerance * quote), so
    # both paths agree at the edges; ``hi`` only orders quotes by where their range ends.
    open_q = [(q.price * (1.0 + refresh_tolerance), refresh_tolerance * q.price, q) for q in quotes]
    kept: dict[int, tuple[WorkingOrder, Quote]] = {}  # price of a kept order -> (order, its quote)
    for o in orders:
        p = o.price
        rem = o.qty - o.filled
        best = -1
        best_hi = 0.0
        for j, (hi, slack, q) in enumerate(open_q):
            dp = p - q.price
            if (dp if dp >= 0 else -dp) <= slack and (best < 0 or hi < best_hi):
                ds = rem - q.qty
                if ds == 0 or (ds if ds > 0 else -ds) <= size_tolerance * q.qty:
                    best, best_hi = j, hi
        if best >= 0:
            kept[p] = (o, open_q[best][2])
            del open_q[best]
        else:
            drop.append(o)
    unplaced = [q for _, _, q in open_q]
    if unplaced and refresh_tolerance and kept:
        unplaced = _avoid_same_price(unplaced, kept, size_tolerance)
    return drop, unplaced


def _avoid_same_price(
    unplaced: list[Quote], kept: dict[int, tuple[WorkingOrder, Quote]], size_tolerance: float
) -> list[Quote]:
    """Never place a second order at a price where a kept order already rests.

    If a kept order (serving another quote within tolerance) sits exactly at an unplaced
    quote's price, let it serve that quote instead and place the other one: the same number of
    commands, and exact matches only grow, so this ends within a few swaps.
    """
    out: list[Quote] = []
    todo = list(unplaced)
    while todo:
        q = todo.pop()
        hit = kept.get(q.price)
        if hit is not None:
            o, served = hit
            ds = o.qty - o.filled - q.qty
            if served.price != q.price and (ds if ds >= 0 else -ds) <= size_tolerance * q.qty:
                kept[q.price] = (o, q)
                todo.append(served)
                continue
        out.append(q)
    out.reverse()
    return out


def diff_quotes(
    desired: QuoteSet,
    working: Iterable[WorkingOrder],
    ts: int,
    refresh_tolerance: float,
    max_order_age: int,
    *,
    next_client_id: Callable[[], str],
    size_tolerance: float = 0.0,
    allow_amend: bool = False,
    time_in_force: TimeInForce | None = None,
) -> list[Command]:
    """Return the smallest list of commands that turns ``working`` into ``desired``.

    A working order is kept when its price is within ``refresh_tolerance`` (relative) of a
    desired quote on the same side and its remaining size within ``size_tolerance``
    (relative) of the quote's size, unless it is ``max_order_age`` ns old or older (0 = no
    age limit). Pending-new orders count as working; pending-cancel orders are ignored (never
    re-cancelled). Commands come cancels first (bids then asks, best price first), then
    amends, then places (best level first, bid before ask). ``next_client_id`` is called for
    every new order (e.g. ``ClientOrderIds.next``).
    """
    bids: list[WorkingOrder] = []
    asks: list[WorkingOrder] = []
    open_, pending_new = OrderState.OPEN, OrderState.PENDING_NEW
    for o in working:
        st = o.status
        if st is not open_ and st is not pending_new:  # pending cancel or finished
            continue
        if o.side == 1:
            bids.append(o)
        else:
            asks.append(o)
    drop_b, place_b = _match_side(desired.bids, bids, ts, refresh_tolerance, size_tolerance, max_order_age)
    drop_a, place_a = _match_side(desired.asks, asks, ts, refresh_tolerance, size_tolerance, max_order_age)
    commands: list[Command] = []
    if not (drop_b or drop_a or place_b or place_a):
        return commands
    amends: list[Command] = []
    placements: list[Quote] = []
    for key, drops, places in ((_bid_key, drop_b, place_b), (_ask_key, drop_a, place_a)):
        if len(drops) > 1:
            drops.sort(key=key)
        if allow_amend and drops and places:
            # Pair leftover orders with leftover quotes best-first: one amend replaces a
            # cancel plus a place.
            n = min(len(drops), len(places))
            for o, q in zip(drops[:n], places[:n], strict=True):
                amends.append(AmendOrder(o.client_order_id, q.price, q.qty, reason="requote"))
            drops, places = drops[n:], places[n:]
        for o in drops:
            stale = max_order_age and ts - o.placed_ts >= max_order_age
            commands.append(CancelOrder(o.client_order_id, "max_age" if stale else "requote"))
        placements.extend(places)
    if amends:
        commands.extend(amends)
    if len(placements) > 1:
        placements.sort(key=_placement_key)
    tif = TimeInForce.POST_ONLY if time_in_force is None else time_in_force
    for q in placements:
        commands.append(PlaceOrder(next_client_id(), q.side, q.price, q.qty, tif))
    return commands
