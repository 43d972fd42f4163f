"""Paper trading on any venue's public data: :class:`PaperGateway` (an OrderGateway).

Orders are filled by :class:`trading.fillsim.SimulatedExchange` — the same fill model the
backtester uses (latency, queue position, post-only, fees) — fed with the market events of a
live, replay or simulated feed. Market events reach the simulator either through
:meth:`PaperGateway.on_market` (the bot loop forwards what it receives) or by handing the
gateway an event source (a feed or any async iterable) that it pumps itself.

The paper account (:class:`PaperAccount`, shareable by several gateways) holds balances per
currency (``Decimal``), moved exactly by fills and fees. Working orders reserve what they could spend (a buy: notional plus the taker fee in quote; a
sell: the base quantity); an order the free balance cannot cover is rejected with code
``insufficient_balance`` and a message naming both amounts. Time comes from an injected clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from decimal import Decimal
from typing import Any

from connectors.feed_support import EventQueue
from trading.clock import Clock
from trading.events import (
    AmendOrder,
    CancelOrder,
    Liquidity,
    MarketEvent,
    OrderCancelled,
    OrderEvent,
    OrderFilled,
    OrderRejected,
    PlaceOrder,
)
from trading.fillsim import SimulatedExchange
from trading.instruments import Instrument, Side
from trading.ports import FillReport, OrderReport


def _plain(amount: Decimal) -> str:
    return format(amount.normalize(), "f")


class PaperAccount:
    """A paper account's balances, shared by every paper gateway trading on it (one per bot
    or instrument): free balance is what no member's working orders have reserved."""

    def __init__(self, balances: dict[str, Decimal] | None = None) -> None:
        self.balances: dict[str, Decimal] = {k: Decimal(v) for k, v in (balances or {}).items()}
        self._members: list[PaperGateway] = []

    def join(self, gateway: PaperGateway) -> None:
        if gateway not in self._members:
            self._members.append(gateway)

    def leave(self, gateway: PaperGateway) -> None:
        if gateway in self._members:
            self._members.remove(gateway)

    def reserved(self, currency: str) -> Decimal:
        """Held back by working orders of all members."""
        return sum((m.reserved_in(currency) for m in self._members), Decimal(0))

    def free(self, currency: str) -> Decimal:
        return self.balances.get(currency, Decimal(0)) - self.reserved(currency)


class WallClock:
    """The system clock as a :class:`trading.clock.Clock`."""

    def now_ns(self) -> int:
        return time.time_ns()


class PaperGateway:
    """Paper order entry for one instrument and one paper account (see the module docstring)."""

    def __init__(
        self,
        instrument: Instrument,
        market: AsyncIterable[MarketEvent] | Any | None,
        balances: dict[str, Decimal] | PaperAccount,
        *,
        exchange: SimulatedExchange | None = None,
        clock: Clock | None = None,
        advance_interval_s: float = 0.05,
    ) -> None:
        self.instrument = instrument
        self._market = market
        self.account = balances if isinstance(balances, PaperAccount) else PaperAccount(balances)
        self.account.join(self)
        self.sim = exchange or SimulatedExchange(instrument, venue_prefix="paper")
        self.clock: Clock = clock or WallClock()
        self.advance_interval_s = advance_interval_s
        self._queue = EventQueue(maxsize=0)  # unbounded: order events are never dropped
        self._reserved_lots: dict[str, tuple[Side, int, int]] = {}  # cid -> (side, price, lots left)
        self._fills: list[FillReport] = []
        self._tasks: list[asyncio.Task] = []
        self.market_events = 0

    # --- lifecycle --------------------------------------------------------------------------
    async def connect(self) -> None:
        """Start pumping the market source (if any) and the simulator's clock."""
        if self._tasks:
            return
        if self._market is not None:
            connect = getattr(self._market, "connect", None)
            if callable(connect):
                await connect()
            self._tasks.append(asyncio.create_task(self._pump(), name="paper-market"))
        self._tasks.append(asyncio.create_task(self._tick(), name="paper-clock"))

    async def close(self) -> None:
        self.account.leave(self)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        close = getattr(self._market, "close", None)
        if callable(close):
            with contextlib.suppress(Exception):
                await close()
        self._queue.close()

    def events(self) -> AsyncIterator[OrderEvent]:
        return self._queue.iterate()

    async def _pump(self) -> None:
        source = self._market.events() if hasattr(self._market, "events") else self._market
        async for event in source:
            self.on_market(event)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.advance_interval_s)
            self.advance()

    def advance(self, ts: int | None = None) -> None:
        """Release the simulator's answers due by ``ts`` (default: the clock's now). The gateway
        does this by itself every ``advance_interval_s`` once connected; a driver that paces
        time itself (replay at its own speed, a parity test) calls it directly."""
        self._handle(self.sim.advance(self.clock.now_ns() if ts is None else ts))

    def drain(self) -> list[OrderEvent]:
        """Take every order event queued so far without waiting (the same events ``events()``
        would yield next, in order)."""
        return self._queue.drain()

    # --- market data ------------------------------------------------------------------------
    def on_market(self, event: MarketEvent) -> None:
        """Feed one market event to the simulator (in time order)."""
        self.market_events += 1
        self._handle(self.sim.on_market(event))

    # --- balances ---------------------------------------------------------------------------
    @property
    def balances(self) -> dict[str, Decimal]:
        """The paper account's balances (shared with other gateways on the account)."""
        return self.account.balances

    def reserved_in(self, currency: str) -> Decimal:
        """What this gateway's working orders hold back in ``currency``."""
        inst = self.instrument
        total = Decimal(0)
        for side, price, lots in self._reserved_lots.values():
            if side is Side.BUY and currency == inst.quote:
                units = inst.notional_units(price, lots) + max(0, inst.fee_units(price, lots, maker=False))
                total += inst.cash(units)
            elif side is Side.SELL and currency == inst.base:
                total += inst.quantity(lots)
        return total

    def free(self, currency: str) -> Decimal:
        """Account balance not reserved by any working order on the account."""
        return self.account.free(currency)

    def _check_funds(self, side: Side, price: int, lots: int) -> str | None:
        inst = self.instrument
        if side is Side.BUY:
            need = inst.cash(inst.notional_units(price, lots) + max(0, inst.fee_units(price, lots, maker=False)))
            have = self.free(inst.quote)
            currency = inst.quote
        else:
            need = inst.quantity(lots)
            have = self.free(inst.base)
            currency = inst.base
        if need > have:
            return f"insufficient paper balance: needs {_plain(need)} {currency}, {_plain(have)} free"
        return None

    # --- order entry ------------------------------------------------------------------------
    def _check_symbol(self, symbol: str) -> None:
        if symbol != self.instrument.symbol:
            raise ValueError(
                f"symbol: {symbol!r} is not traded by this paper gateway; it trades {self.instrument.symbol!r}"
            )

    async def place(self, symbol: str, command: PlaceOrder) -> None:
        self._check_symbol(symbol)
        now = self.clock.now_ns()
        problem = self._check_funds(command.side, command.price, command.qty)
        if problem:
            self._queue.put(OrderRejected(now, command.client_order_id, problem, "insufficient_balance"))
            return
        self._reserved_lots[command.client_order_id] = (command.side, command.price, command.qty)
        self.sim.submit(command, now)
        self._handle(self.sim.advance(now))

    async def place_batch(self, symbol: str, commands: Sequence[PlaceOrder]) -> None:
        for command in commands:
            await self.place(symbol, command)

    async def cancel(self, symbol: str, command: CancelOrder) -> None:
        self._check_symbol(symbol)
        now = self.clock.now_ns()
        self.sim.submit(command, now)
        self._handle(self.sim.advance(now))

    async def cancel_batch(self, symbol: str, commands: Sequence[CancelOrder]) -> None:
        for command in commands:
            await self.cancel(symbol, command)

    async def cancel_all(self, symbol: str, client_id_prefix: str) -> int:
        self._check_symbol(symbol)
        ours = [o for o in self.sim.open_orders() if o.client_order_id.startswith(client_id_prefix)]
        for report in ours:
            await self.cancel(symbol, CancelOrder(report.client_order_id, reason="cancel all"))
        return len(ours)

    async def amend(self, symbol: str, command: AmendOrder) -> None:
        self._check_symbol(symbol)
        now = self.clock.now_ns()
        held = self._reserved_lots.get(command.client_order_id)
        if held is not None:
            side, _, _ = held
            previous = self._reserved_lots.pop(command.client_order_id)
            problem = self._check_funds(side, command.price, command.qty)
            self._reserved_lots[command.client_order_id] = previous
            if problem:
                self._queue.put(OrderRejected(now, command.client_order_id, problem, "insufficient_balance"))
                return
            self._reserved_lots[command.client_order_id] = (side, command.price, command.qty)
        self.sim.submit(command, now)
        self._handle(self.sim.advance(now))

    # --- simulator answers ------------------------------------------------------------------
    def _handle(self, events: list[OrderEvent]) -> None:
        for event in events:
            if isinstance(event, OrderFilled):
                self._apply_fill(event)
            elif isinstance(event, OrderCancelled | OrderRejected):
                self._reserved_lots.pop(event.client_order_id, None)
            self._queue.put(event)

    def _apply_fill(self, fill: OrderFilled) -> None:
        inst = self.instrument
        base_qty = inst.quantity(fill.qty)
        notional = inst.cash(inst.notional_units(fill.price, fill.qty))
        fee = inst.cash(fill.fee)
        zero = Decimal(0)
        if fill.side is Side.BUY:
            self.balances[inst.base] = self.balances.get(inst.base, zero) + base_qty
            self.balances[inst.quote] = self.balances.get(inst.quote, zero) - notional - fee
        else:
            self.balances[inst.base] = self.balances.get(inst.base, zero) - base_qty
            self.balances[inst.quote] = self.balances.get(inst.quote, zero) + notional - fee
        held = self._reserved_lots.get(fill.client_order_id)
        if held is not None:
            if fill.leaves_qty <= 0:
                del self._reserved_lots[fill.client_order_id]
            else:
                self._reserved_lots[fill.client_order_id] = (held[0], held[1], fill.leaves_qty)
        self._fills.append(
            FillReport(
                trade_id=fill.trade_id,
                client_order_id=fill.client_order_id,
                venue_order_id=fill.venue_order_id,
                symbol=inst.symbol,
                side=fill.side,
                price=fill.price,
                qty=fill.qty,
                fee=fee,
                fee_currency=inst.quote,
                maker=fill.liquidity is Liquidity.MAKER,
                ts=fill.ts,
            )
        )

    # --- reads ------------------------------------------------------------------------------
    async def fetch_markets(self) -> Sequence[Instrument]:
        return [self.instrument]

    async def fetch_balances(self) -> dict[str, Decimal]:
        return dict(self.balances)

    async def fetch_open_orders(self, symbol: str) -> Sequence[OrderReport]:
        self._check_symbol(symbol)
        return self.sim.open_orders()

    async def fetch_order(self, symbol: str, client_order_id: str) -> OrderReport | None:
        self._check_symbol(symbol)
        return self.sim.order(client_order_id)

    async def fetch_my_trades(self, symbol: str, since_ts: int = 0) -> Sequence[FillReport]:
        self._check_symbol(symbol)
        return [f for f in self._fills if f.ts >= since_ts]
