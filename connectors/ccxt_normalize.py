"""Normalize ccxt structures (order books, trades, orders, balances) into ``trading`` types.

ccxt hands prices and amounts over as floats. Each is converted through its shortest ``repr``
to ``Decimal`` and then to integer ticks/lots *exactly*: a price that is not on the tick grid
(or a size off the lot grid), NaN, infinity, zero or negative price, or a negative size is
refused with :class:`RejectedMessage`, whose ``reason`` is a short code counted by the feed
statistics and whose message names the field and the value.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from trading.events import BookSnapshot, Level, TradeTick
from trading.instruments import Instrument, InstrumentError, OutOfRange, Side
from trading.ports import FillReport, OrderReport, OrderStatus

MS_NS = 1_000_000


class RejectedMessage(ValueError):
    """One venue message that cannot be turned into a valid event; the feed counts and skips it."""

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")


def to_decimal(field: str, value: object) -> Decimal:
    """Convert a ccxt number to Decimal via its shortest repr; refuse NaN/inf/garbage."""
    if value is None:
        raise RejectedMessage("missing_field", f"{field} is missing")
    if isinstance(value, bool):
        raise RejectedMessage("malformed", f"{field}: {value!r} is not a number")
    if isinstance(value, float):
        if math.isnan(value):
            raise RejectedMessage("nan", f"{field}: NaN")
        if math.isinf(value):
            raise RejectedMessage("nan", f"{field}: {value!r} is not finite")
        text = repr(value)
    else:
        text = str(value)
    try:
        d = Decimal(text)
    except (InvalidOperation, ValueError) as exc:
        raise RejectedMessage("malformed", f"{field}: {value!r} is not a number") from exc
    if d.is_nan() or not d.is_finite():
        raise RejectedMessage("nan", f"{field}: {value!r} is not a finite number")
    return d


def price_ticks(instrument: Instrument, value: object, field: str = "price") -> int:
    """Exact ticks for a positive on-grid price."""
    d = to_decimal(field, value)
    if d <= 0:
        raise RejectedMessage("non_positive_price", f"{field}: {value!r} must be > 0")
    try:
        return instrument.ticks(d, field=field)
    except OutOfRange as exc:
        raise RejectedMessage("out_of_range", str(exc)) from exc
    except InstrumentError as exc:
        raise RejectedMessage("off_tick", str(exc)) from exc


def qty_lots(instrument: Instrument, value: object, field: str = "amount", *, allow_zero: bool = False) -> int:
    """Exact lots for an on-grid size (> 0, or >= 0 when ``allow_zero``)."""
    d = to_decimal(field, value)
    if d < 0 or (d == 0 and not allow_zero):
        raise RejectedMessage("non_positive_qty", f"{field}: {value!r} must be > 0")
    try:
        return instrument.lots(d, field=field)
    except OutOfRange as exc:
        raise RejectedMessage("out_of_range", str(exc)) from exc
    except InstrumentError as exc:
        raise RejectedMessage("off_lot", str(exc)) from exc


def _levels(instrument: Instrument, side: str, raw: object, depth: int | None) -> tuple[Level, ...]:
    if not isinstance(raw, Sequence) or isinstance(raw, str | bytes):
        raise RejectedMessage("malformed", f"{side}: expected a list of [price, amount], got {raw!r:.80}")
    rows = raw if depth is None else raw[:depth]
    out: list[Level] = []
    for i, row in enumerate(rows):
        if not isinstance(row, Sequence) or len(row) < 2:
            raise RejectedMessage("malformed", f"{side}[{i}]: {row!r:.80} is not [price, amount]")
        out.append(
            (
                price_ticks(instrument, row[0], f"{side}[{i}].price"),
                qty_lots(instrument, row[1], f"{side}[{i}].amount"),
            )
        )
    return tuple(out)


def book_snapshot(
    instrument: Instrument, orderbook: Mapping[str, Any], ts: int, *, depth: int | None = 20
) -> BookSnapshot:
    """Convert a ccxt order book (``bids``/``asks``/``nonce``/``timestamp``) to a BookSnapshot."""
    bids = _levels(instrument, "bids", orderbook.get("bids"), depth)
    asks = _levels(instrument, "asks", orderbook.get("asks"), depth)
    if any(bids[i][0] <= bids[i + 1][0] for i in range(len(bids) - 1)):
        raise RejectedMessage("unsorted", "bids are not strictly descending")
    if any(asks[i][0] >= asks[i + 1][0] for i in range(len(asks) - 1)):
        raise RejectedMessage("unsorted", "asks are not strictly ascending")
    if bids and asks and bids[0][0] >= asks[0][0]:
        raise RejectedMessage(
            "crossed", f"best bid {instrument.price(bids[0][0])} >= best ask {instrument.price(asks[0][0])}"
        )
    venue_ms = orderbook.get("timestamp")
    nonce = orderbook.get("nonce")
    return BookSnapshot(
        ts=ts,
        bids=bids,
        asks=asks,
        sequence=int(nonce) if isinstance(nonce, int | str) and str(nonce).isdigit() else 0,
        venue_ts=int(venue_ms) * MS_NS if isinstance(venue_ms, int | float) else 0,
    )


def side_of(field: str, value: object) -> Side:
    """Map ccxt's ``'buy'``/``'sell'`` to :class:`Side`."""
    if value == "buy":
        return Side.BUY
    if value == "sell":
        return Side.SELL
    raise RejectedMessage("malformed", f"{field}: {value!r} is not 'buy' or 'sell'")


def trade_tick(instrument: Instrument, trade: Mapping[str, Any], ts: int) -> TradeTick:
    """Convert a ccxt public trade to a TradeTick (``side`` is the taker's side in ccxt)."""
    venue_ms = trade.get("timestamp")
    return TradeTick(
        ts=ts,
        price=price_ticks(instrument, trade.get("price"), "trade.price"),
        qty=qty_lots(instrument, trade.get("amount"), "trade.amount"),
        aggressor=side_of("trade.side", trade.get("side")),
        trade_id=str(trade.get("id") or ""),
        venue_ts=int(venue_ms) * MS_NS if isinstance(venue_ms, int | float) else 0,
    )


_STATUS = {
    "open": OrderStatus.OPEN,
    "closed": OrderStatus.FILLED,
    "canceled": OrderStatus.CANCELLED,
    "cancelled": OrderStatus.CANCELLED,
    "expired": OrderStatus.EXPIRED,
    "rejected": OrderStatus.REJECTED,
}


def order_status(order: Mapping[str, Any], filled_lots: int) -> OrderStatus:
    """The OrderStatus of a ccxt order; an open order with fills is PARTIALLY_FILLED."""
    status = _STATUS.get(str(order.get("status")), OrderStatus.UNKNOWN)
    if status is OrderStatus.OPEN and filled_lots > 0:
        return OrderStatus.PARTIALLY_FILLED
    return status


def order_report(
    instrument: Instrument,
    order: Mapping[str, Any],
    *,
    decode_client_id: Callable[[object], str] = lambda v: "" if v is None else str(v),
) -> OrderReport:
    """Convert a ccxt order to an OrderReport; market orders (no price) report price 0."""
    price = order.get("price")
    filled = order.get("filled")
    filled_lots = qty_lots(instrument, filled, "order.filled", allow_zero=True) if filled is not None else 0
    ts = order.get("timestamp") or order.get("lastUpdateTimestamp")
    return OrderReport(
        client_order_id=decode_client_id(order.get("clientOrderId")),
        venue_order_id=str(order.get("id") or ""),
        symbol=str(order.get("symbol") or instrument.symbol),
        side=side_of("order.side", order.get("side")),
        price=price_ticks(instrument, price, "order.price") if price else 0,
        qty=qty_lots(instrument, order.get("amount"), "order.amount"),
        filled_qty=filled_lots,
        status=order_status(order, filled_lots),
        ts=int(ts) * MS_NS if isinstance(ts, int | float) else 0,
    )


def fee_of(trade: Mapping[str, Any]) -> tuple[Decimal, str]:
    """The fee of a ccxt trade as (amount, currency); (0, '') when the venue gave none."""
    fee = trade.get("fee") or {}
    cost = fee.get("cost")
    if cost is None:
        return Decimal(0), ""
    return to_decimal("fee.cost", cost), str(fee.get("currency") or "")


def fill_report(
    instrument: Instrument,
    trade: Mapping[str, Any],
    *,
    client_order_id: str = "",
) -> FillReport:
    """Convert one of our ccxt trades (fetch_my_trades / watch_my_trades) to a FillReport."""
    fee, currency = fee_of(trade)
    ts = trade.get("timestamp")
    return FillReport(
        trade_id=str(trade.get("id") or ""),
        client_order_id=client_order_id,
        venue_order_id=str(trade.get("order") or ""),
        symbol=str(trade.get("symbol") or instrument.symbol),
        side=side_of("trade.side", trade.get("side")),
        price=price_ticks(instrument, trade.get("price"), "trade.price"),
        qty=qty_lots(instrument, trade.get("amount"), "trade.amount"),
        fee=fee,
        fee_currency=currency,
        maker=trade.get("takerOrMaker") == "maker",
        ts=int(ts) * MS_NS if isinstance(ts, int | float) else 0,
    )


def fee_cash_units(instrument: Instrument, fill: FillReport) -> int:
    """The fill's fee in the instrument's cash units.

    Quote-currency fees convert exactly; base-currency fees are valued at the fill price; a fee
    in a third currency (e.g. BNB) cannot be valued here, so the instrument's fee schedule is
    used instead (the exact amount stays on the FillReport)."""
    if fill.fee_currency == instrument.quote:
        return instrument.cash_units(fill.fee)
    if fill.fee_currency == instrument.base:
        return instrument.cash_units(fill.fee * instrument.price(fill.price))
    return instrument.fee_units(fill.price, fill.qty, maker=fill.maker)


def balances(balance: Mapping[str, Any]) -> dict[str, Decimal]:
    """Total balance per currency from a ccxt balance structure (zero balances dropped)."""
    total = balance.get("total") or {}
    out: dict[str, Decimal] = {}
    for currency, amount in total.items():
        if amount is None:
            continue
        d = to_decimal(f"balance.{currency}", amount)
        if d != 0:
            out[currency] = d
    return out


def balance_amounts(balance: Mapping[str, Any]) -> dict[str, dict[str, Decimal]]:
    """``{currency: {"free": ..., "total": ...}}`` from a ccxt balance structure: the free amount
    (what new orders may use) and the total (free + used); currencies with neither dropped."""
    free, total = balance.get("free") or {}, balance.get("total") or {}
    out: dict[str, dict[str, Decimal]] = {}
    for currency in {*free, *total}:
        f = free.get(currency)
        t = total.get(currency)
        f = Decimal(0) if f is None else to_decimal(f"balance.{currency}.free", f)
        t = f if t is None else to_decimal(f"balance.{currency}.total", t)
        if f or t:
            out[currency] = {"free": f, "total": t}
    return out
