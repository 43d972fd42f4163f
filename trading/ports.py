"""Ports: the two interfaces every venue adapter implements (in ``connectors/``).

``trading`` defines them; it never implements I/O. Both are asyncio. A live ccxt venue, the
replay venue, the simulated venues and the paper gateway all satisfy these protocols, so the
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
