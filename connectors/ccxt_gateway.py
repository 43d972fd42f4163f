"""Order entry and account state on any ccxt exchange: :class:`CcxtGateway` (an OrderGateway).

Guarantees:

- every order carries our client order id (mapped per exchange by :class:`ClientIdCodec`);
- every REST call first takes its weight from the account's :class:`RateLimiter` (shared by all
  bots on the account, across processes with Redis);
- temporary errors (timeouts, 5xx, 429/418, dropped connections) are retried with backoff
  within a budget, and **before re-sending an order the gateway looks it up by client id**:
  if the first attempt reached the venue, that order is adopted and nothing is sent again;
- permanent refusals become ``OrderRejected`` carrying the exchange's reason; authentication
  failures raise :class:`AuthFailure` (the bot loop stops the bot with its message);
- lifecycle events (accepted, fills, cancels, rejects) arrive on :meth:`events`: fills from
  ``watch_my_trades`` / order updates from ``watch_orders`` when the exchange streams them,
  else from polling ``fetch_my_trades`` and ``fetch_open_orders``. Fills are deduplicated by
  trade id, so a stream and a poll may overlap without double counting.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from decimal import Decimal
from typing import Any

import ccxt

from connectors import ccxt_normalize as norm
from connectors.ccxt_orders import OrderTracker, TrackedOrder
from connectors.ccxt_venue import ClientIdCodec
from connectors.errors import (
    AuthFailure,
    PermanentVenueError,
    RetryBudgetExhausted,
    RetryPolicy,
    describe,
    retry,
)
from connectors.feed_support import EventQueue
from connectors.markets import MarketCache
from connectors.ratelimit import LocalRateLimiter, RateLimiter
from trading.events import (
    AmendOrder,
    CancelOrder,
    OrderAmended,
    OrderEvent,
    OrderRejected,
    PlaceOrder,
    TimeInForce,
)
from trading.instruments import Instrument
from trading.ports import FillReport, OrderReport, OrderStatus

_DONE = {OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED, OrderStatus.EXPIRED}


class CcxtGateway:
    """Order entry and account state for one exchange account (see the module docstring)."""

    def __init__(
        self,
        exchange: Any,
        *,
        limiter: RateLimiter | None = None,
        retry_policy: RetryPolicy | None = None,
        codec: ClientIdCodec | None = None,
        markets: MarketCache | None = None,
        streaming: bool | None = None,
        poll_interval_s: float = 2.0,
        clock_ns: Callable[[], int] = time.time_ns,
        close_exchange: bool = True,
    ) -> None:
        self.exchange = exchange
        self.venue = str(getattr(exchange, "id", "venue"))
        self.limiter = limiter or LocalRateLimiter(rate=10, burst=20)
        self.policy = retry_policy or RetryPolicy()
        self.codec = codec or ClientIdCodec(self.venue)
        self.markets = markets or MarketCache(exchange)
        has = getattr(exchange, "has", {}) or {}
        if streaming is None:
            streaming = bool(has.get("watchMyTrades")) and hasattr(exchange, "watch_my_trades")
        self.streaming = streaming
        self.poll_interval_s = poll_interval_s
        self._clock_ns = clock_ns
        self._close_exchange = close_exchange
        self._queue = EventQueue(maxsize=0)  # unbounded: order events are never dropped
        self.tracker = OrderTracker(self.codec, clock_ns, self._emit)
        self._tasks: list[asyncio.Task] = []
        self._since_ms = 0
        self.errors: list[str] = []

    # --- lifecycle --------------------------------------------------------------------------
    async def connect(self) -> None:
        """Load markets and start listening for our order updates and fills."""
        await self._rest("load markets", lambda: self.markets.instruments(), cost=1)
        self._since_ms = self._clock_ns() // 1_000_000
        if not self._tasks:
            self._tasks.append(asyncio.create_task(self._poll_loop(), name=f"gateway-poll-{self.venue}"))
            if self.streaming:
                self._tasks.append(asyncio.create_task(self._stream_loop(), name=f"gateway-ws-{self.venue}"))
                if (self.exchange.has or {}).get("watchOrders"):
                    self._tasks.append(asyncio.create_task(self._orders_loop(), name=f"gateway-ws-orders-{self.venue}"))

    async def close(self) -> None:
        """Stop listening, close connections and end :meth:`events`."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self._close_exchange:
            try:
                await self.exchange.close()
            except Exception as exc:
                self.errors.append(describe(exc))
        self._queue.close()

    def events(self) -> AsyncIterator[OrderEvent]:
        return self._queue.iterate()

    # --- helpers ----------------------------------------------------------------------------
    async def _rest(self, what: str, call: Callable[[], Any], *, cost: float = 1, lookup: Any = None) -> Any:
        async def limited() -> Any:
            await self.limiter.acquire(cost)
            return await call()

        limited_lookup = None
        if lookup is not None:

            async def limited_lookup(attempt: int, exc: BaseException | None) -> Any:
                await self.limiter.acquire(cost)
                return await lookup(attempt, exc)

        return await retry(what, limited, self.policy, venue=self.venue, before_retry=limited_lookup)

    async def instrument(self, symbol: str) -> Instrument:
        """The instrument for ``symbol`` (markets cached)."""
        return await self.markets.instrument(symbol)

    def _emit(self, event: OrderEvent) -> None:
        self._queue.put(event)

    # --- reads ------------------------------------------------------------------------------
    async def fetch_markets(self) -> Sequence[Instrument]:
        instruments = await self._rest("load markets", lambda: self.markets.instruments())
        return list(instruments.values())

    async def fetch_balances(self) -> dict[str, Decimal]:
        """Total balance per currency (free + used)."""
        balance = await self._rest("fetch balance", lambda: self.exchange.fetch_balance())
        return norm.balances(balance)

    async def fetch_balance_amounts(self) -> dict[str, dict[str, Decimal]]:
        """Free and total balance per currency (``ccxt_normalize.balance_amounts``)."""
        balance = await self._rest("fetch balance", lambda: self.exchange.fetch_balance())
        return norm.balance_amounts(balance)

    async def fetch_open_orders(self, symbol: str) -> Sequence[OrderReport]:
        inst = await self.instrument(symbol)
        orders = await self._rest("fetch open orders", lambda: self.exchange.fetch_open_orders(symbol))
        return [norm.order_report(inst, o, decode_client_id=self.codec.decode) for o in orders]

    async def fetch_order(self, symbol: str, client_order_id: str) -> OrderReport | None:
        """The venue's view of our order by client id, or None when the venue does not know it."""
        inst = await self.instrument(symbol)
        order = await self._rest("fetch order", lambda: self._find_by_client_id(symbol, client_order_id))
        return norm.order_report(inst, order, decode_client_id=self.codec.decode) if order else None

    async def fetch_my_trades(self, symbol: str, since_ts: int = 0) -> Sequence[FillReport]:
        inst = await self.instrument(symbol)
        since = since_ts // 1_000_000 if since_ts else None
        trades = await self._rest("fetch my trades", lambda: self.exchange.fetch_my_trades(symbol, since))
        return [norm.fill_report(inst, t, client_order_id=self.tracker.client_id_of_trade(t)) for t in trades]

    async def _find_by_client_id(self, symbol: str, client_order_id: str) -> dict | None:
        """Look an order up by client id: directly where ccxt supports it, else among open and
        recent orders. Temporary errors propagate (the caller must not assume absence)."""
        encoded = self.codec.encode(client_order_id)
        if self.venue.startswith("binance"):
            try:
                return await self.exchange.fetch_order(None, symbol, {"origClientOrderId": encoded})
            except ccxt.OrderNotFound:
                return None
        has = self.exchange.has or {}
        fetches = []
        if has.get("fetchOpenOrders"):
            fetches.append(self.exchange.fetch_open_orders)
        if has.get("fetchOrders"):
            fetches.append(self.exchange.fetch_orders)
        elif has.get("fetchClosedOrders"):
            fetches.append(self.exchange.fetch_closed_orders)
        for fetch in fetches:
            try:
                orders = await fetch(symbol)
            except ccxt.NotSupported:
                continue
            for order in orders:
                if str(order.get("clientOrderId")) == str(encoded):
                    return order
        return None

    # --- order entry ------------------------------------------------------------------------
    def _order_args(self, inst: Instrument, command: PlaceOrder) -> tuple[str, dict[str, Any]]:
        params: dict[str, Any] = {self.codec.order_param: self.codec.encode(command.client_order_id)}
        order_type = "limit"
        if command.time_in_force is TimeInForce.POST_ONLY:
            params["postOnly"] = True
        elif command.time_in_force is TimeInForce.IOC:
            params["timeInForce"] = "IOC"
        if command.position_side:  # hedge position mode: the leg, and never reduceOnly (Binance)
            params["positionSide"] = command.position_side.upper()
        elif command.reduce_only:
            params["reduceOnly"] = True
        return order_type, params

    async def place(self, symbol: str, command: PlaceOrder) -> None:
        """Place a limit order; returns once the venue answered. Raises AuthFailure only; every
        other outcome is an event (accepted, rejected with the reason, or unknown_state)."""
        cid = command.client_order_id
        try:
            inst = await self.instrument(symbol)
            order_type, params = self._order_args(inst, command)
        except (KeyError, ValueError) as exc:
            self._emit(OrderRejected(self._clock_ns(), cid, str(exc).strip("'\""), "invalid_order"))
            return
        tracked = self.tracker.track(symbol, command)
        amount = float(inst.quantity(command.qty))
        price = float(inst.price(command.price))
        side = "buy" if command.side > 0 else "sell"

        async def send() -> dict:
            return await self.exchange.create_order(symbol, order_type, side, amount, price, dict(params))

        async def adopt_if_placed(attempt: int, exc: BaseException | None) -> dict | None:
            return await self._find_by_client_id(symbol, cid)

        try:
            order = await self._rest("place order", send, lookup=adopt_if_placed)
        except PermanentVenueError as exc:
            self.tracker.forget(tracked)
            self._emit(OrderRejected(self._clock_ns(), cid, exc.reason, exc.code))
            return
        except RetryBudgetExhausted as exc:
            tracked.unknown = True
            self._emit(
                OrderRejected(
                    self._clock_ns(),
                    cid,
                    f"no answer from {self.venue} ({describe(exc.last)}); the order's state is unknown "
                    "until reconciliation checks it",
                    "unknown_state",
                )
            )
            return
        self.tracker.on_placed(inst, tracked, order)

    async def place_batch(self, symbol: str, commands: Sequence[PlaceOrder]) -> None:
        await asyncio.gather(*(self.place(symbol, c) for c in commands))

    async def cancel(self, symbol: str, command: CancelOrder) -> None:
        """Cancel by venue id when known, else by client id; an order the venue no longer has is
        looked up: cancelled/expired -> OrderCancelled, filled -> its fills arrive as trades."""
        cid = command.client_order_id
        tracked = self.tracker.orders.get(cid)
        venue_id = tracked.venue_order_id if tracked else ""
        params = {} if venue_id else {"origClientOrderId": self.codec.encode(cid)}
        if not venue_id and not self.venue.startswith("binance"):
            found = await self._rest("find order", lambda: self._find_by_client_id(symbol, cid))
            venue_id = str(found.get("id")) if found else ""
            params = {}
            if not venue_id:
                self.tracker.cancelled(cid, "not open at the venue")
                return
        try:
            await self._rest("cancel order", lambda: self.exchange.cancel_order(venue_id or None, symbol, dict(params)))
        except RetryBudgetExhausted as exc:
            # No event: the order may still be working; the poll and reconciliation settle it.
            self.errors.append(f"cancel {cid}: {exc}")
            return
        except PermanentVenueError as exc:
            if exc.code != "OrderNotFound":
                self.errors.append(f"cancel {cid}: {exc.reason}")
                return
            found = await self._rest("find order", lambda: self._find_by_client_id(symbol, cid))
            if found is not None and found.get("status") == "closed":
                return  # filled: the fills arrive from the trade stream / poll
        self.tracker.cancelled(cid, command.reason)

    async def cancel_batch(self, symbol: str, commands: Sequence[CancelOrder]) -> None:
        await asyncio.gather(*(self.cancel(symbol, c) for c in commands))

    async def cancel_all(self, symbol: str, client_id_prefix: str) -> int:
        """Cancel every open order on ``symbol`` whose client id starts with the prefix."""
        open_orders = await self.fetch_open_orders(symbol)
        ours = [o for o in open_orders if o.client_order_id.startswith(client_id_prefix)]
        for report in ours:
            if report.client_order_id not in self.tracker.orders:
                self.tracker.adopt(symbol, report)
            await self.cancel(symbol, CancelOrder(report.client_order_id, reason="cancel all"))
        return len(ours)

    async def amend(self, symbol: str, command: AmendOrder) -> None:
        """Amend price/size in place where the exchange supports ``editOrder``; otherwise reject
        the amend (code ``amend_unsupported``) so the engine cancels and replaces instead."""
        cid = command.client_order_id
        tracked = self.tracker.orders.get(cid)
        if tracked is None or not (self.exchange.has or {}).get("editOrder"):
            self._emit(OrderRejected(self._clock_ns(), cid, f"{self.venue}: amend not supported", "amend_unsupported"))
            return
        inst = await self.instrument(symbol)
        side = "buy" if tracked.command.side > 0 else "sell"
        try:
            order = await self._rest(
                "amend order",
                lambda: self.exchange.edit_order(
                    tracked.venue_order_id,
                    symbol,
                    "limit",
                    side,
                    float(inst.quantity(command.qty)),
                    float(inst.price(command.price)),
                ),
            )
        except (PermanentVenueError, RetryBudgetExhausted) as exc:
            self._emit(OrderRejected(self._clock_ns(), cid, str(exc), "amend_failed"))
            return
        if order.get("id"):
            self.tracker.set_venue_id(tracked, str(order["id"]))
        tracked.command = PlaceOrder(cid, tracked.command.side, command.price, command.qty)
        self._emit(OrderAmended(self._clock_ns(), cid, command.price, command.qty))

    # --- order updates and fills ------------------------------------------------------------
    async def _stream_loop(self) -> None:
        """Fills from ``watch_my_trades`` as they happen (the poll loop is the safety net)."""
        await self._guarded_loop(self._stream_once, pause_s=0.0)

    async def _orders_loop(self) -> None:
        """Venue-side cancels, expiries and rejects from ``watch_orders``."""
        await self._guarded_loop(self._orders_once, pause_s=0.0)

    async def _orders_once(self) -> None:
        for order in await self.exchange.watch_orders():
            self.tracker.on_order(order)

    async def _poll_loop(self) -> None:
        """Poll trades and open orders: the only source without streams, a catch-up with them."""
        interval = self.poll_interval_s * (5 if self.streaming else 1)
        await self._guarded_loop(self.poll_once, pause_s=interval)

    async def _stream_once(self) -> None:
        for trade in await self.exchange.watch_my_trades():
            symbol = trade.get("symbol")
            if symbol:
                self.tracker.on_trade(await self.instrument(symbol), trade)

    async def _guarded_loop(self, once: Callable[[], Any], *, pause_s: float) -> None:
        while True:
            try:
                if pause_s:
                    await asyncio.sleep(pause_s)
                await once()
            except asyncio.CancelledError:
                raise
            except AuthFailure as exc:
                self._queue.put(exc)
                return
            except ccxt.AuthenticationError as exc:
                self._queue.put(AuthFailure(self.venue, describe(exc)))
                return
            except Exception as exc:
                self.errors.append(describe(exc))
                await asyncio.sleep(max(pause_s, self.poll_interval_s))

    async def _settle_unknown(self, symbol: str, tracked: TrackedOrder) -> None:
        """An order whose placement never got an answer: adopt it if the venue has it (so its
        fills map back to it), forget it if the venue says it does not exist."""
        cid = tracked.command.client_order_id
        order = await self._rest("settle unknown order", lambda: self._find_by_client_id(symbol, cid))
        if order is None:
            self.tracker.forget(tracked)
            return
        self.tracker.on_placed(await self.instrument(symbol), tracked, order)

    async def poll_once(self) -> None:
        """Poll our trades and open orders on every symbol with working orders."""
        tracker = self.tracker
        for symbol in tracker.symbols():
            for tracked in tracker.unknown(symbol):
                await self._settle_unknown(symbol, tracked)
            working = tracker.working(symbol)
            if not working:
                continue
            inst = await self.instrument(symbol)
            since = self._since_ms or None
            trades = await self._rest("poll my trades", lambda s=symbol, t=since: self.exchange.fetch_my_trades(s, t))
            for trade in trades:
                tracker.on_trade(inst, trade)
            open_orders = await self._rest("poll open orders", lambda s=symbol: self.exchange.fetch_open_orders(s))
            open_ids = {tracker.client_id_of_order(o) for o in open_orders}
            for tracked in working:
                cid = tracked.client_order_id
                if tracked.done or cid in open_ids or not tracked.venue_order_id:
                    continue
                order = await self._rest("poll order", lambda s=symbol, c=cid: self._find_by_client_id(s, c))
                if order is not None:
                    tracker.on_order(order)
