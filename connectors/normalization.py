"""Normalization of raw-ish venue payloads (ccxt-style dicts, REST JSON) into ``trading`` events.

Every field is converted exactly (a float through its shortest repr to ``Decimal``, then to integer
ticks/lots on the instrument's grid); anything that cannot become an event raises
:class:`NormalizationError` naming the field, the value and what is accepted. Screening the
resulting events (staleness, crossed books, outliers, sequence) is
:class:`connectors.validation.FeedValidator`'s job.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import Decimal

from trading.events import BookDelta, BookSnapshot, Level, MarketEvent, TopOfBook, TradeTick
from trading.instruments import Instrument, InstrumentError, Side

__all__ = [
    "NormalizationError",
    "normalize",
    "normalize_order_book",
    "normalize_ticker",
    "normalize_trade",
]


class NormalizationError(ValueError):
    """A raw payload field cannot become an event; the message names field, value and what is accepted."""


def _number(field_name: str, value: object) -> Decimal:
    if value is None or isinstance(value, bool):
        raise NormalizationError(f"{field_name}: {value!r} is missing; give a positive decimal such as '0.01'")
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise NormalizationError(f"{field_name}: {value!r} is not finite; give a positive decimal")
        value = repr(value)
    try:
        d = Decimal(str(value))
    except ArithmeticError as exc:
        raise NormalizationError(f"{field_name}: {value!r} is not a number; give a positive decimal") from exc
    if not d.is_finite():
        raise NormalizationError(f"{field_name}: {value!r} is not finite; give a positive decimal")
    return d


def _price_ticks(instrument: Instrument, field_name: str, value: object, side: Side | None = None) -> int:
    d = _number(field_name, value)
    if d <= 0:
        raise NormalizationError(f"{field_name}: {value!r} must be greater than 0")
    try:
        return instrument.ticks(d, side=side, field=field_name)
    except InstrumentError as exc:
        raise NormalizationError(str(exc)) from exc


def _size_lots(instrument: Instrument, field_name: str, value: object, *, allow_zero: bool) -> int:
    d = _number(field_name, value)
    if d < 0 or (d == 0 and not allow_zero):
        accepted = "0 or more" if allow_zero else "greater than 0"
        raise NormalizationError(f"{field_name}: {value!r} must be {accepted}")
    try:
        return instrument.lots(d, field=field_name)
    except InstrumentError as exc:
        raise NormalizationError(str(exc)) from exc


def _ms_to_ns(raw: Mapping[str, object], key: str) -> int:
    value = raw.get(key)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or value < 0:
        raise NormalizationError(f"{key}: {value!r} is not a time in milliseconds since the epoch")
    return int(value) * 1_000_000


def _levels(instrument: Instrument, raw: object, name: str, side: Side, *, allow_zero: bool) -> tuple[Level, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, (list, tuple)):
        raise NormalizationError(f"{name}: {raw!r} is not a list of [price, size] pairs")
    out = []
    for i, level in enumerate(raw):
        if not isinstance(level, (list, tuple)) or len(level) < 2:
            raise NormalizationError(f"{name}[{i}]: {level!r} is not a [price, size] pair")
        price = _price_ticks(instrument, f"{name}[{i}].price", level[0], side)
        out.append((price, _size_lots(instrument, f"{name}[{i}].size", level[1], allow_zero=allow_zero)))
    return tuple(out)


def normalize_order_book(
    raw: Mapping[str, object], instrument: Instrument, *, ts: int, delta: bool = False
) -> BookSnapshot | BookDelta:
    """Turn a ccxt-style order book (``bids``/``asks`` of ``[price, amount]``, ``timestamp`` in ms,
    optional ``nonce``) into a snapshot, or a delta when ``delta`` (size 0 removes a level)."""
    bids = _levels(instrument, raw.get("bids"), "bids", Side.BUY, allow_zero=delta)
    asks = _levels(instrument, raw.get("asks"), "asks", Side.SELL, allow_zero=delta)
    nonce = raw.get("nonce") or 0
    if not isinstance(nonce, int) or isinstance(nonce, bool) or nonce < 0:
        raise NormalizationError(f"nonce: {nonce!r} is not a non-negative integer update id")
    venue_ts = _ms_to_ns(raw, "timestamp")
    if delta:
        return BookDelta(ts=ts, bids=bids, asks=asks, venue_ts=venue_ts)
    return BookSnapshot(ts=ts, bids=bids, asks=asks, sequence=nonce, venue_ts=venue_ts)


def normalize_trade(raw: Mapping[str, object], instrument: Instrument, *, ts: int) -> TradeTick:
    """Turn a ccxt-style trade (``price``, ``amount``, ``side`` of the taker, ``id``, ``timestamp``)."""
    side = raw.get("side")
    if side not in ("buy", "sell"):
        raise NormalizationError(f"side: {side!r} is not a taker side; accepted: 'buy', 'sell'")
    return TradeTick(
        ts=ts,
        price=_price_ticks(instrument, "price", raw.get("price")),
        qty=_size_lots(instrument, "amount", raw.get("amount"), allow_zero=False),
        aggressor=Side.BUY if side == "buy" else Side.SELL,
        trade_id=str(raw.get("id") or ""),
        venue_ts=_ms_to_ns(raw, "timestamp"),
    )


def normalize_ticker(raw: Mapping[str, object], instrument: Instrument, *, ts: int) -> TopOfBook:
    """Turn a ccxt-style ticker (``bid``, ``bidVolume``, ``ask``, ``askVolume``, ``timestamp``)."""
    return TopOfBook(
        ts=ts,
        bid_price=_price_ticks(instrument, "bid", raw.get("bid"), Side.BUY),
        bid_qty=_size_lots(instrument, "bidVolume", raw.get("bidVolume"), allow_zero=False),
        ask_price=_price_ticks(instrument, "ask", raw.get("ask"), Side.SELL),
        ask_qty=_size_lots(instrument, "askVolume", raw.get("askVolume"), allow_zero=False),
        venue_ts=_ms_to_ns(raw, "timestamp"),
    )


def normalize(kind: str, raw: Mapping[str, object], instrument: Instrument, *, ts: int) -> MarketEvent:
    """Dispatch on ``kind``: ``order_book``, ``order_book_delta``, ``trade`` or ``ticker``.

    Raise :class:`NormalizationError` naming the field, the value and what is accepted.
    """
    if not isinstance(raw, Mapping):
        raise NormalizationError(f"{kind}: {raw!r} is not a mapping of fields")
    if kind == "order_book":
        return normalize_order_book(raw, instrument, ts=ts)
    if kind == "order_book_delta":
        return normalize_order_book(raw, instrument, ts=ts, delta=True)
    if kind == "trade":
        return normalize_trade(raw, instrument, ts=ts)
    if kind == "ticker":
        return normalize_ticker(raw, instrument, ts=ts)
    raise NormalizationError(f"kind: {kind!r} is not known; accepted: order_book, order_book_delta, trade, ticker")
