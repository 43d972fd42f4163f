"""Writes of market data: batched inserts from the feeds (duplicates ignored)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

import orjson
from django.db import connection, transaction

from apps.marketdata.models import Aggressor, DepthSnapshot, TopOfBookSnapshot, Trade
from trading.events import BookSnapshot, MarketEvent, TopOfBook, TradeTick
from trading.instruments import Instrument, Side

DEFAULT_DEPTH_LEVELS = 20


@dataclass
class IngestBatch:
    """Rows ready for :func:`marketdata_ingest_batch` (unsaved model instances)."""

    tops: list[TopOfBookSnapshot] = field(default_factory=list)
    depths: list[DepthSnapshot] = field(default_factory=list)
    trades: list[Trade] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.tops) + len(self.depths) + len(self.trades)


def ns_to_datetime(ts_ns: int) -> datetime:
    """Integer nanoseconds since the epoch -> aware UTC datetime (microsecond resolution)."""
    seconds, rest = divmod(ts_ns, 1_000_000_000)
    return datetime.fromtimestamp(seconds, tz=UTC).replace(microsecond=rest // 1000)


def _levels(instrument: Instrument, levels: Sequence[tuple[int, int]], n: int) -> list[list[str]]:
    return [[str(instrument.price(p)), str(instrument.quantity(q))] for p, q in levels[:n]]


def batch_from_events(
    *,
    market_id: int,
    instrument: Instrument,
    events: Iterable[MarketEvent],
    depth_levels: int = DEFAULT_DEPTH_LEVELS,
) -> IngestBatch:
    """Turn normalized feed events into rows: ``TopOfBook`` -> top of book, ``TradeTick`` ->
    trade, ``BookSnapshot`` -> depth snapshot (top ``depth_levels``). Deltas are not stored
    (the feed stores periodic snapshots of its book instead)."""
    batch = IngestBatch()
    for event in events:
        if isinstance(event, TopOfBook):
            batch.tops.append(
                TopOfBookSnapshot(
                    ts=ns_to_datetime(event.ts),
                    market_id=market_id,
                    bid=instrument.price(event.bid_price),
                    bid_qty=instrument.quantity(event.bid_qty),
                    ask=instrument.price(event.ask_price),
                    ask_qty=instrument.quantity(event.ask_qty),
                )
            )
        elif isinstance(event, TradeTick):
            batch.trades.append(
                Trade(
                    ts=ns_to_datetime(event.ts),
                    market_id=market_id,
                    price=instrument.price(event.price),
                    qty=instrument.quantity(event.qty),
                    aggressor=Aggressor.BUY if event.aggressor == Side.BUY else Aggressor.SELL,
                    trade_id=event.trade_id or f"{event.ts}",
                )
            )
        elif isinstance(event, BookSnapshot):
            mid = None
            if event.bids and event.asks:
                mid = (instrument.price(event.bids[0][0]) + instrument.price(event.asks[0][0])) / Decimal(2)
            batch.depths.append(
                DepthSnapshot(
                    ts=ns_to_datetime(event.ts),
                    market_id=market_id,
                    bids=_levels(instrument, event.bids, depth_levels),
                    asks=_levels(instrument, event.asks, depth_levels),
                    mid=mid,
                )
            )
    return batch


# model -> (columns written, columns of the unique constraint that identifies a duplicate)
_INGEST = {
    TopOfBookSnapshot: (("ts", "market_id", "bid", "bid_qty", "ask", "ask_qty"), ("market_id", "ts")),
    DepthSnapshot: (("ts", "market_id", "bids", "asks", "mid"), ("market_id", "ts")),
    Trade: (("ts", "market_id", "price", "qty", "aggressor", "trade_id"), ("market_id", "trade_id", "ts")),
}
_JSON_COLUMNS = {"bids", "asks"}


def _copy_insert(cursor, model, rows: list, columns: tuple[str, ...], key: tuple[str, ...]) -> int:
    """COPY ``rows`` into a per-session staging table, then INSERT ... ON CONFLICT DO NOTHING.
    Returns how many rows were new."""
    table = model._meta.db_table
    staging = f"_{table}_staging"
    names = ", ".join(columns)
    cursor.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS {staging} ON COMMIT DELETE ROWS AS SELECT {names} FROM {table} WITH NO DATA"
    )
    cursor.execute(f"TRUNCATE {staging}")
    with cursor.cursor.copy(f"COPY {staging} ({names}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(
                [orjson.dumps(getattr(row, c)).decode() if c in _JSON_COLUMNS else getattr(row, c) for c in columns]
            )
    cursor.execute(
        f"INSERT INTO {table} ({names}) SELECT {names} FROM {staging} ON CONFLICT ({', '.join(key)}) DO NOTHING"
    )
    return cursor.rowcount


def marketdata_ingest_batch(
    *,
    tops: Iterable[TopOfBookSnapshot] = (),
    depths: Iterable[DepthSnapshot] = (),
    trades: Iterable[Trade] = (),
) -> dict[str, int]:
    """Insert top-of-book, depth and trade rows in bulk (COPY, then one INSERT per kind).

    Rows already stored — same market and ``ts`` for snapshots; same market, trade id and
    ``ts`` for trades — are skipped (``ON CONFLICT DO NOTHING``), so a feed may resend a batch
    after a reconnect. Within one batch, snapshots of a market stamped with the same
    microsecond keep the last one (the state at that instant). Returns the rows newly stored
    per kind."""
    stored = {}
    with transaction.atomic(), connection.cursor() as cursor:
        for name, model, given in (
            ("tops", TopOfBookSnapshot, tops),
            ("depths", DepthSnapshot, depths),
            ("trades", Trade, trades),
        ):
            columns, key = _INGEST[model]
            latest: dict[tuple, object] = {}
            for row in given:
                if not isinstance(row, model):
                    raise TypeError(f"{name}: {type(row).__name__} given; accepted: unsaved {model.__name__} rows")
                if row.ts is None or row.market_id is None:
                    raise ValueError(f"{name}: a row has no ts or market; every row needs both")
                latest[tuple(getattr(row, c) for c in key)] = row
            stored[name] = _copy_insert(cursor, model, list(latest.values()), columns, key) if latest else 0
    return stored
