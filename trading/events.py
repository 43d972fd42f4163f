"""Events the engine reacts to and commands it emits.

All are immutable value types. Prices are integer ticks, sizes integer lots, times integer
nanoseconds since the epoch (``ts``), supplied by whoever produces the event — the core never
reads the wall clock. Money on events is integer cash units (see ``trading.instruments``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from trading.instruments import Side

Level = tuple[int, int]  # (price_ticks, qty_lots); qty 0 in a delta removes the level


# --------------------------------------------------------------------------------------------
# Market data
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class BookSnapshot:
    """Full L2 book. ``sequence`` is the venue's update id (0 when the venue has none)."""

    ts: int
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    sequence: int = 0
    venue_ts: int = 0


@dataclass(frozen=True, slots=True)
class BookDelta:
    """Changed levels. ``first_sequence``..``last_sequence`` is the span of venue update ids it
    covers; ``prev_sequence`` is the last id of the previous delta when the venue sends one
    (Binance futures ``pu``), else 0."""

    ts: int
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    first_sequence: int = 0
    last_sequence: int = 0
    prev_sequence: int = 0
    venue_ts: int = 0


@dataclass(frozen=True, slots=True)
class TradeTick:
    """A public trade print. ``aggressor`` is the taker's side."""

    ts: int
    price: int
    qty: int
    aggressor: Side
    trade_id: str = ""
    venue_ts: int = 0


@dataclass(frozen=True, slots=True)
class TopOfBook:
    """Best bid/ask as the venue reported it (e.g. Binance bookTicker)."""

    ts: int
    bid_price: int
    bid_qty: int
    ask_price: int
    ask_qty: int
    sequence: int = 0
    venue_ts: int = 0


@dataclass(frozen=True, slots=True)
class Timer:
    """A clock tick for time-driven logic (refresh, horizons, sweeps)."""

    ts: int


MarketEvent = BookSnapshot | BookDelta | TradeTick | TopOfBook


# --------------------------------------------------------------------------------------------
# Order lifecycle events (from a gateway: live, paper or simulated)
# --------------------------------------------------------------------------------------------
class Liquidity(enum.Enum):
    MAKER = "maker"
    TAKER = "taker"


@dataclass(frozen=True, slots=True)
class OrderAccepted:
    ts: int
    client_order_id: str
    venue_order_id: str = ""


@dataclass(frozen=True, slots=True)
class OrderFilled:
    """A fill, partial or final. ``leaves_qty`` is what is still working after this fill;
    ``fee`` is in cash units (negative for a rebate)."""

    ts: int
    client_order_id: str
    side: Side
    price: int
    qty: int
    leaves_qty: int
    fee: int
    liquidity: Liquidity
    trade_id: str
    venue_order_id: str = ""

    @property
    def is_final(self) -> bool:
        return self.leaves_qty == 0


@dataclass(frozen=True, slots=True)
class OrderCancelled:
    ts: int
    client_order_id: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class OrderRejected:
    """The venue (or pre-trade risk) refused an order; ``reason`` is readable by a user."""

    ts: int
    client_order_id: str
    reason: str
    code: str = ""


@dataclass(frozen=True, slots=True)
class OrderAmended:
    ts: int
    client_order_id: str
    price: int
    qty: int


OrderEvent = OrderAccepted | OrderFilled | OrderCancelled | OrderRejected | OrderAmended
Event = MarketEvent | Timer | OrderEvent


# --------------------------------------------------------------------------------------------
# Commands (from the engine to a gateway)
# --------------------------------------------------------------------------------------------
class TimeInForce(enum.Enum):
    GTC = "GTC"
    IOC = "IOC"
    POST_ONLY = "PO"


@dataclass(frozen=True, slots=True)
class PlaceOrder:
    client_order_id: str
    side: Side
    price: int
    qty: int
    time_in_force: TimeInForce = TimeInForce.POST_ONLY
    reason: str = "quote"
    reduce_only: bool = False


@dataclass(frozen=True, slots=True)
class CancelOrder:
    client_order_id: str
    reason: str = "requote"


@dataclass(frozen=True, slots=True)
class AmendOrder:
    client_order_id: str
    price: int
    qty: int
    reason: str = "requote"


@dataclass(frozen=True, slots=True)
class CancelAll:
    """Cancel every working order of this bot (its client-id prefix) on the symbol."""

    reason: str = "stop"
    symbol: str = ""


Command = PlaceOrder | CancelOrder | AmendOrder | CancelAll
