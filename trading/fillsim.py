"""Fill simulation: a simulated matching venue for our orders against real or synthetic data.

The one fill model used by both the backtester (``trading.backtest``) and the hosted paper
venue (``workers.paper_venue``, which records its state in Redis). It never changes the market it is fed; it decides when *our* orders
would have been filled:

* Time: a command sent at ``ts`` reaches the venue after the latency model's entry (or cancel)
  delay; every answer takes the response delay to come back. Commands and answers each travel
  on one ordered channel (like one websocket session), so they never overtake each other.
  Order events are stamped with the time *we* receive them.
* Queue: a resting order joins its level behind the displayed size (``queue_ahead``); trades at
  our price eat the queue ahead first and only the rest fills us (partially if it is short);
  book changes at our level move the queue as the injected :mod:`trading.queue` model says.
* Through: a trade printed at a price better than ours for the taker, or the opposite best
  crossing our price, fills the whole remainder at our price (maker).
* Arrival: post-only orders that would cross are rejected (``post_only_would_cross``), or with
  ``post_only_reject=False`` slid to one tick inside the opposite best (reported as
  ``OrderAmended``); IOC and crossing GTC orders walk the book as takers up to their limit; IOC
  remainders are cancelled. Amendments keep queue priority only when the price is unchanged and
  the size does not grow.
* Races: a fill that happens before a cancel arrives is reported; the cancel then cancels the
  remainder, or is rejected with code ``already_filled``.
* Fees: maker/taker rates from the instrument, exact integer cash units (negative = rebate).

Deterministic: the venue itself draws no random numbers; randomness lives in the injected models
(``RecordedLatency(seed=...)``), so the same models, seeds and input give identical output.
``seed`` is kept on the venue for reports. Our own orders never match each other (no self-trade
simulation); ``reduce_only`` is the engine's business, not the venue's, and so is an order's
``position_side`` in hedge position mode (the engine's perpetual risk books each fill on the leg
its order named, :mod:`trading.hedge_legs`).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass

from trading.book import OrderBook
from trading.events import (
    AmendOrder,
    BookDelta,
    BookSnapshot,
    CancelAll,
    CancelOrder,
    Command,
    Event,
    Liquidity,
    OrderAccepted,
    OrderAmended,
    OrderCancelled,
    OrderEvent,
    OrderFilled,
    OrderRejected,
    PlaceOrder,
    TimeInForce,
    TopOfBook,
    TradeTick,
)
from trading.fillsim_market import MarketMatching
from trading.instruments import Instrument, Side
from trading.latency import ConstantLatency, LatencyModel
from trading.ports import OrderReport, OrderStatus
from trading.queue import QueueModel, RestingOrders, RiskAverseQueueModel, SimOrder

BUY = Side.BUY
SELL = Side.SELL


@dataclass(slots=True)
class ExchangeStats:
    """Counters for reports: what we sent and what the venue did with it."""

    orders_placed: int = 0
    qty_placed: int = 0
    cancels_sent: int = 0
    amends_sent: int = 0
    rejects: int = 0
    fills: int = 0
    qty_filled: int = 0
    maker_qty: int = 0
    taker_qty: int = 0
    fees: int = 0


class SimulatedExchange(MarketMatching):
    """A venue that fills our orders from the market events it is fed (see the module docstring).

    ``latency`` defaults to no delay and ``queue`` (alias ``queue_model``) to the risk-averse
    model. ``book`` lets a backtest share one order book between venue and engine.
    """

    def __init__(
        self,
        instrument: Instrument,
        *,
        latency: LatencyModel | None = None,
        queue: QueueModel | None = None,
        post_only_reject: bool = True,
        seed: int = 0,
        venue_prefix: str = "sim",
        keep_closed: int = 10_000,
        book: OrderBook | None = None,
        queue_model: QueueModel | None = None,
    ) -> None:
        if queue is not None and queue_model is not None and queue is not queue_model:
            raise ValueError("queue/queue_model: give one queue model, not two (queue_model is an alias)")
        queue = queue if queue is not None else queue_model
        self.instrument = instrument
        self.latency: LatencyModel = latency if latency is not None else ConstantLatency()
        self.queue: QueueModel = queue if queue is not None else RiskAverseQueueModel()
        self.post_only_reject = post_only_reject
        self.seed = seed
        self.book = book if book is not None else OrderBook()
        self.gaps = 0  # deltas dropped because updates were missing
        self.bad_events = 0  # market events skipped because the book refused them
        self.bad_event_samples: list[str] = []  # the first few, readable
        self.stats = ExchangeStats()
        self._prefix = venue_prefix
        self._keep_closed = keep_closed
        self._orders: dict[str, SimOrder] = {}  # live at the venue
        self._closed: OrderedDict[str, SimOrder] = OrderedDict()  # recently done, bounded
        self._resting = RestingOrders(self.queue)
        self._inbound: deque[tuple[int, Command]] = deque()
        self._outbound: deque[tuple[int, OrderEvent]] = deque()
        self._last_arrival = 0
        self._last_delivery = 0
        self._order_seq = 0
        self._trade_seq = 0
        self._has_depth = False
        self.venue_ts = 0  # the venue's clock: the last time it processed anything
        self._shared: OrderBook | None = None  # a book kept by someone else (use_shared_book)
        self._seen: dict[tuple[Side, int], int] = {}  # shared book: size last seen at our levels

    # -------------------------------------------------------------------------------------
    # Our side of the wire
    # -------------------------------------------------------------------------------------
    def submit(self, command: Command, ts: int) -> None:
        """Send ``command`` at ``ts``; it reaches the venue after the latency model's delay."""
        if isinstance(command, CancelOrder | CancelAll):
            delay = self.latency.cancel_ns(ts)
            self.stats.cancels_sent += 1
        elif isinstance(command, PlaceOrder | AmendOrder):
            delay = self.latency.entry_ns(ts)
        else:
            raise TypeError(
                f"command: {type(command).__name__} is not accepted; give PlaceOrder, CancelOrder, "
                "AmendOrder or CancelAll"
            )
        arrival = max(ts + delay, self._last_arrival)
        self._last_arrival = arrival
        self._inbound.append((arrival, command))

    def advance(self, ts: int) -> list[OrderEvent]:
        """Let the venue work until ``ts``; return the answers that have reached us by then."""
        self._run_venue_until(ts)
        return self._deliver(ts)

    def on_market(self, event: Event) -> list[OrderEvent]:
        """Feed one market event (in time order); return the answers that have reached us."""
        ts = event.ts
        inbound = self._inbound
        if inbound and inbound[0][0] <= ts:
            self._run_venue_until(ts)
        if ts > self.venue_ts:
            self.venue_ts = ts
        kind = type(event)
        if kind is BookDelta:
            self._on_delta(event)  # type: ignore[arg-type]
        elif kind is TradeTick:
            if self._resting.count:
                self._on_trade(event)  # type: ignore[arg-type]
        elif kind is BookSnapshot:
            self._on_snapshot(event)  # type: ignore[arg-type]
        elif kind is TopOfBook:
            self._on_top(event)  # type: ignore[arg-type]
        out = self._outbound
        return self._deliver(ts) if out and out[0][0] <= ts else []

    def answers_due(self, ts: int) -> bool:
        """Whether anything is due by ``ts``: a command reaching the venue or an answer reaching us."""
        inbound = self._inbound
        outbound = self._outbound
        return bool((inbound and inbound[0][0] <= ts) or (outbound and outbound[0][0] <= ts))

    def next_due(self) -> int | None:
        """When something is next due (a command reaching the venue or an answer reaching us)."""
        inbound = self._inbound
        outbound = self._outbound
        if inbound:
            return min(inbound[0][0], outbound[0][0]) if outbound else inbound[0][0]
        return outbound[0][0] if outbound else None

    # -------------------------------------------------------------------------------------
    # Queries for the paper venue and reports
    # -------------------------------------------------------------------------------------
    def open_orders(self) -> list[OrderReport]:
        """Our orders working at the venue now, oldest first."""
        return [o.report(self.instrument.symbol) for o in self._orders.values()]

    def order(self, client_order_id: str) -> OrderReport | None:
        """The venue's view of one order (live or recently done), or ``None`` if unknown."""
        o = self._orders.get(client_order_id) or self._closed.get(client_order_id)
        return o.report(self.instrument.symbol) if o is not None else None

    def queue_ahead(self, client_order_id: str) -> float | None:
        """Estimated lots ahead of a resting order at its level (``None`` if not resting)."""
        o = self._orders.get(client_order_id)
        return o.queue_ahead if o is not None and o.resting else None

    def our_best(self, side: Side) -> int | None:
        """Our best resting price on ``side`` at the venue (``None`` when we rest nothing there)."""
        return self._resting.best(side)

    def share_book(self, book: OrderBook) -> None:
        """Use ``book`` (e.g. the engine's) as the venue's book, so one book is kept per backtest.

        The venue applies each market event first; the engine then sees the same delta as
        already applied (its sequence check skips it). Only allowed before any order is sent.
        """
        if self._orders or self._inbound or self._outbound:
            raise RuntimeError("share_book: orders are already working; share the book before trading starts")
        self.book = book

    def use_shared_book(self, book: OrderBook) -> None:
        """Match against ``book``, kept up to date by its owner (e.g. one book per feed shared by
        every paper bot of a process), instead of applying market events to a book of our own.

        Book events then only make the venue look at the book again: queue positions move by the
        size change at our levels since we last looked, and orders the opposite best now crosses
        fill. A taker order of ours takes liquidity off a private copy of the book (never off
        the shared one) until the next book event. Allowed with orders working (after a restore):
        their levels count as last seen in the current book.
        """
        self._seen = {
            (side, price): self.book.qty_at(side, price) for side in (BUY, SELL) for price in self._resting.prices(side)
        }
        self._shared = book
        self.book = book

    def pending_commands(self) -> int:
        """Commands still travelling to the venue."""
        return len(self._inbound)

    # -------------------------------------------------------------------------------------
    # Venue internals: time
    # -------------------------------------------------------------------------------------
    def _run_venue_until(self, ts: int) -> None:
        inbound = self._inbound
        while inbound and inbound[0][0] <= ts:
            arrival, command = inbound.popleft()
            if arrival > self.venue_ts:
                self.venue_ts = arrival
            self._on_command(command, arrival)

    def _deliver(self, ts: int) -> list[OrderEvent]:
        out = self._outbound
        ready: list[OrderEvent] = []
        while out and out[0][0] <= ts:
            ready.append(out.popleft()[1])
        return ready

    def _emit(self, venue_ts: int, make: type, *args: object, **kwargs: object) -> None:
        delivery = max(venue_ts + self.latency.response_ns(venue_ts), self._last_delivery)
        self._last_delivery = delivery
        self._outbound.append((delivery, make(delivery, *args, **kwargs)))

    # -------------------------------------------------------------------------------------
    # Venue internals: commands
    # -------------------------------------------------------------------------------------
    def _on_command(self, command: Command, ts: int) -> None:
        if isinstance(command, PlaceOrder):
            self._place(command, ts)
        elif isinstance(command, CancelOrder):
            self._cancel(command.client_order_id, ts, command.reason or "cancelled")
        elif isinstance(command, AmendOrder):
            self._amend(command, ts)
        else:  # CancelAll
            if not command.symbol or command.symbol == self.instrument.symbol:
                for client_order_id in list(self._orders):
                    self._cancel(client_order_id, ts, command.reason or "cancel all")

    def _reject(self, ts: int, client_order_id: str, code: str, reason: str) -> None:
        self.stats.rejects += 1
        self._emit(ts, OrderRejected, client_order_id, reason, code)

    def _would_cross(self, side: Side, price: int) -> bool:
        if side is BUY:
            ask = self.book.best_ask()
            return ask is not None and price >= ask
        bid = self.book.best_bid()
        return bid is not None and price <= bid

    def _place(self, cmd: PlaceOrder, ts: int) -> None:
        cid = cmd.client_order_id
        if cid in self._orders:
            self._reject(ts, cid, "duplicate_client_order_id", f"client_order_id {cid!r} is already working")
            return
        if cmd.qty <= 0 or cmd.price <= 0:
            field, value = ("qty", cmd.qty) if cmd.qty <= 0 else ("price", cmd.price)
            self._reject(ts, cid, "invalid_order", f"{field}: {value} must be greater than 0")
            return
        if not self.instrument.min_notional_ok(cmd.price, cmd.qty):
            self._reject(ts, cid, "below_min_notional", f"notional below the minimum {self.instrument.min_notional}")
            return
        tif = cmd.time_in_force
        crosses = self._would_cross(cmd.side, cmd.price)
        post_only = tif is TimeInForce.POST_ONLY
        if post_only and crosses and self.post_only_reject:
            self._reject(ts, cid, "post_only_would_cross", "post_only_would_cross")
            return
        self._order_seq += 1
        order = SimOrder(cid, f"{self._prefix}-{self._order_seq}", cmd.side, cmd.price, cmd.qty, tif, ts)
        self.stats.orders_placed += 1
        self.stats.qty_placed += cmd.qty
        self._orders[cid] = order
        self._emit(ts, OrderAccepted, cid, order.venue_order_id)
        if crosses:
            if post_only:
                # post_only_reject=False: the venue slides the order to the best price that
                # does not cross (one tick inside the opposite best) and says so.
                book = self.book
                order.price = book.best_ask() - 1 if order.side is BUY else book.best_bid() + 1  # type: ignore[operator]
                self._emit(ts, OrderAmended, cid, order.price, order.qty)
            else:
                self._take(order, ts)
                if order.leaves <= 0:
                    return
        if tif is TimeInForce.IOC:
            self._close(order, OrderStatus.CANCELLED)
            self._emit(ts, OrderCancelled, cid, "ioc remainder not filled")
            return
        self._rest(order)

    def _rest(self, order: SimOrder) -> None:
        qty = self.book.qty_at(order.side, order.price)
        self._resting.add(order, qty)
        if self._shared is not None:
            self._seen[(order.side, order.price)] = qty

    def _take(self, order: SimOrder, ts: int) -> None:
        """Walk the opposite side as a taker up to the order's limit."""
        book = self.book
        if book is self._shared:  # never change a shared book: take from a copy of it
            book = self.book = _copy_book(book, ts)
        opposite = order.side.opposite
        bids, asks = book.top(50)
        levels = asks if order.side is BUY else bids
        if len(levels) == 50:
            within = levels[-1][0] <= order.price if order.side is BUY else levels[-1][0] >= order.price
            if within:  # a big order: walk the whole side
                levels = book.levels(opposite)
        for price, qty in levels:
            if (order.side is BUY and price > order.price) or (order.side is SELL and price < order.price):
                break
            take = min(qty, order.leaves)
            # Our liquidity taken is gone until the venue's next update says otherwise.
            book.set_level(opposite, price, qty - take)
            self._fill(order, take, price, False, ts)
            if order.leaves <= 0:
                break

    def _cancel(self, cid: str, ts: int, reason: str) -> None:
        order = self._orders.get(cid)
        if order is None:
            done = self._closed.get(cid)
            if done is not None and done.status is OrderStatus.FILLED:
                self._reject(ts, cid, "already_filled", "already filled")
            elif done is not None:
                self._reject(ts, cid, "already_closed", f"already {done.status.value}")
            else:
                self._reject(ts, cid, "unknown_order", f"unknown order {cid!r}")
            return
        self._close(order, OrderStatus.CANCELLED)
        self._emit(ts, OrderCancelled, cid, reason)

    def _amend(self, cmd: AmendOrder, ts: int) -> None:
        cid = cmd.client_order_id
        order = self._orders.get(cid)
        if order is None:
            self._cancel(cid, ts, "")  # produces the right rejection for unknown/filled orders
            return
        if cmd.qty <= order.filled or cmd.price <= 0:
            self._reject(
                ts,
                cid,
                "invalid_amend",
                f"qty: {cmd.qty} must exceed the filled {order.filled} and price > 0",
            )
            return
        if cmd.price != order.price and order.tif is TimeInForce.POST_ONLY and self._would_cross(order.side, cmd.price):
            self._reject(ts, cid, "post_only_would_cross", "post_only_would_cross")
            return
        self.stats.amends_sent += 1
        keeps_priority = cmd.price == order.price and cmd.qty <= order.qty
        queue_ahead = order.queue_ahead
        self._resting.remove(order)
        self.stats.qty_placed += max(cmd.qty - order.qty, 0)
        order.price, order.qty = cmd.price, cmd.qty
        self._emit(ts, OrderAmended, cid, cmd.price, cmd.qty)
        if self._would_cross(order.side, order.price):  # a GTC order repriced through the book
            self._take(order, ts)
            if order.leaves <= 0:
                return
        self._rest(order)
        if keeps_priority:
            order.queue_ahead = queue_ahead

    # -------------------------------------------------------------------------------------
    # Venue internals: fills
    # -------------------------------------------------------------------------------------
    def _fill(self, order: SimOrder, qty: int, price: int, maker: bool, ts: int) -> None:
        if qty <= 0:
            return
        order.filled += qty
        fee = self.instrument.fee_units(price, qty, maker=maker)
        self._trade_seq += 1
        stats = self.stats
        stats.fills += 1
        stats.qty_filled += qty
        stats.fees += fee
        if maker:
            stats.maker_qty += qty
        else:
            stats.taker_qty += qty
        leaves = order.leaves
        if leaves <= 0:
            self._close(order, OrderStatus.FILLED)
        else:
            order.status = OrderStatus.PARTIALLY_FILLED
        self._emit(
            ts,
            OrderFilled,
            order.client_order_id,
            order.side,
            price,
            qty,
            leaves,
            fee,
            Liquidity.MAKER if maker else Liquidity.TAKER,
            f"{self._prefix}-t{self._trade_seq}",
            order.venue_order_id,
        )

    def _close(self, order: SimOrder, status: OrderStatus) -> None:
        order.status = status
        self._resting.remove(order)
        self._orders.pop(order.client_order_id, None)
        closed = self._closed
        closed[order.client_order_id] = order
        if len(closed) > self._keep_closed:
            closed.popitem(last=False)


def _copy_book(book: OrderBook, ts: int) -> OrderBook:
    copy = OrderBook(book.depth_limit)
    copy.apply_snapshot(book.snapshot(ts))
    return copy
