"""Ports: the interfaces every venue adapter implements (``connectors/``, ``workers/``).

``trading`` defines them; it never implements I/O. All are asyncio. A live ccxt venue, the
replay venue, the simulated venues and the paper venue all satisfy these protocols, so the
engine cannot tell them apart — that is what makes backtest, paper and live one engine.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol, runtime_checkable

from trading.events import (
    AmendOrder,
    CancelOrder,
    MarketEvent,
    OrderEvent,
    PlaceOrder,
)
from trading.instruments import Instrument, Side


class FeedHealth(enum.Enum):
    """What a feed is doing right now, for workers and the UI."""

    CONNECTING = "connecting"
    LIVE = "live"
    RESYNCING = "resyncing"
    STALE = "stale"
    RECONNECTING = "reconnecting"
    CLOSED = "closed"


class OrderStatus(enum.Enum):
    NEW = "new"
    OPEN = "open"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    EXPIRED = "expired"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class OrderReport:
    """The venue's view of one order (REST open orders / order status)."""

    client_order_id: str
    venue_order_id: str
    symbol: str
    side: Side
    price: int
    qty: int
    filled_qty: int
    status: OrderStatus
    ts: int = 0


@dataclass(frozen=True, slots=True)
class FillReport:
    """The venue's view of one of our trades (REST my trades)."""

    trade_id: str
    client_order_id: str
    venue_order_id: str
    symbol: str
    side: Side
    price: int
    qty: int
    fee: Decimal
    fee_currency: str
    maker: bool
    ts: int


@runtime_checkable
class MarketDataFeed(Protocol):
    """Streams normalized, validated market events for one symbol on one venue."""

    instrument: Instrument

    async def connect(self) -> None: ...

    async def close(self) -> None: ...

    def events(self) -> AsyncIterator[MarketEvent]:
        """Yield book snapshots/deltas, top-of-book and trades, in order, forever (until closed)."""
        ...

    @property
    def health(self) -> FeedHealth: ...


@runtime_checkable
class OrderGateway(Protocol):
    """Order entry and account state for one exchange account.

    ``place``/``cancel`` return once the venue has answered (or the retry budget is spent);
    the resulting lifecycle events (accepted, fills, cancels, rejects) arrive on ``events()``.
    """

    async def connect(self) -> None: ...

    async def close(self) -> None: ...

    async def fetch_markets(self) -> Sequence[Instrument]: ...

    async def fetch_balances(self) -> dict[str, Decimal]: ...

    async def fetch_open_orders(self, symbol: str) -> Sequence[OrderReport]: ...

    async def fetch_order(self, symbol: str, client_order_id: str) -> OrderReport | None: ...

    async def fetch_my_trades(self, symbol: str, since_ts: int = 0) -> Sequence[FillReport]: ...

    async def place(self, symbol: str, command: PlaceOrder) -> None: ...

    async def cancel(self, symbol: str, command: CancelOrder) -> None: ...

    async def cancel_all(self, symbol: str, client_id_prefix: str) -> int:
        """Cancel every open order whose client id starts with the prefix; return how many."""
        ...

    async def amend(self, symbol: str, command: AmendOrder) -> None: ...

    async def place_batch(self, symbol: str, commands: Sequence[PlaceOrder]) -> None: ...

    async def cancel_batch(self, symbol: str, commands: Sequence[CancelOrder]) -> None: ...

    def events(self) -> AsyncIterator[OrderEvent]: ...


@runtime_checkable
class BotVenue(Protocol):
    """One bot's order entry on one venue account and symbol, as a bot runner drives it: the
    same for a paper venue and a live exchange account, so the runner never asks which it holds.

    Commands: ``send_many`` (places and cancels, in order: the order events that result at once
    and the commands that failed, each with its error, for the runner to recover by client id
    with ``recover_place`` before any retry), ``place``, ``cancel``, ``remove`` (an order the
    venue holds that this process does not track). Reports: ``restore`` (open orders at
    take-over), ``fetch_open_orders``, ``fetch_order``, ``fetch_my_trades``, ``fetch_balances``;
    order events either answer the calls or, with ``reports_later``, arrive on their own (the
    runner's inbox). ``matching`` is the venue's synchronous matching side as
    ``trading.runner.Runner`` drives it per market event and timer (a paper venue's simulated
    exchange, its writes deferred; a live venue's ``NoMatching``); ``on_market``/``advance`` are
    the same, awaited with their writes (for callers outside a runner). ``confirm`` waits for writes the venue deferred (``unconfirmed``); nothing outside
    the venue may learn of their events first. ``close`` releases connections and tasks.

    ``holds_orders``: the venue itself keeps every order it took with everything its database
    row needs (paper: Redis), so the rows may follow the venue instead of preceding the place.
    ``settle_s``: how long a late report may take to arrive after the last command."""

    holds_orders: bool
    reports_later: bool
    settle_s: float
    round_trips: int
    matching: object  # trading.runner.Matching (trading.runner imports this module)

    @property
    def unconfirmed(self) -> bool: ...

    async def restore(self) -> list[OrderReport]: ...

    async def send_many(self, commands: list) -> tuple[list[OrderEvent], list[tuple[object, Exception]]]: ...

    async def place(self, command: PlaceOrder) -> list[OrderEvent]: ...

    async def recover_place(self, command: PlaceOrder) -> list[OrderEvent] | None: ...

    async def cancel(self, client_order_id: str, reason: str = "cancel") -> list[OrderEvent]: ...

    async def remove(self, client_order_id: str, action: str = "cancel") -> None: ...

    def matches(self, client_order_id: str) -> bool: ...

    async def fetch_open_orders(self) -> list[OrderReport]: ...

    async def fetch_order(self, client_order_id: str) -> OrderReport | None: ...

    async def fetch_my_trades(self, since_ts: int = 0) -> list[FillReport]: ...

    async def fetch_balances(self) -> dict[str, Decimal]: ...

    async def on_market(self, event: MarketEvent) -> list[OrderEvent]: ...

    async def advance(self) -> list[OrderEvent]: ...

    async def confirm(self) -> None: ...

    def scrub(self, text: str) -> str:
        """``text`` without any credential of the account (safe for logs and events)."""
        ...

    async def close(self) -> None: ...
