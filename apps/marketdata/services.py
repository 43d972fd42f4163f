"""Writes of market data: batched inserts from the feeds (duplicates ignored)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from django.db import transaction

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


@transaction.atomic
def marketdata_ingest_batch(
    *,
    tops: Iterable[TopOfBookSnapshot] = (),
    depths: Iterable[DepthSnapshot] = (),
    trades: Iterable[Trade] = (),
    chunk_size: int = 5000,
) -> dict[str, int]:
    """Insert top-of-book, depth and trade rows in bulk. Rows already stored (same market and
    ``ts``; trades: same market, trade id and ``ts``) are skipped by ``ON CONFLICT DO NOTHING``,
    so a feed may resend a batch after a reconnect. Returns how many rows were offered per kind."""
    offered = {}
    for name, model, rows in (
        ("tops", TopOfBookSnapshot, list(tops)),
        ("depths", DepthSnapshot, list(depths)),
        ("trades", Trade, list(trades)),
    ):
        for row in rows:
            if not isinstance(row, model):
                raise TypeError(f"{name}: {type(row).__name__} given; accepted: unsaved {model.__name__} rows")
        if rows:
            model.objects.bulk_create(rows, batch_size=chunk_size, ignore_conflicts=True)
        offered[name] = len(rows)
    return offered
