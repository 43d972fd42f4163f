"""Reads of market data. Market data is public to every authenticated user; the selectors
take the market and a time range, and return the same rows on TimescaleDB and plain PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, F, Max, Min, QuerySet, Sum
from django.db.models.functions import Length

from apps.core.timeseries import Bucket, First, Last, bucketed, parse_interval
from apps.exchanges.models import Market
from apps.marketdata.models import DepthSnapshot, TopOfBookSnapshot, Trade


def candles(*, market: Market, interval: str | timedelta, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """OHLCV candles from stored trades in ``[start, end)``: rows ``{bucket, open, high, low,
    close, volume, trades}`` ordered by time; buckets without trades are absent.

    Trades sharing a timestamp are ordered by trade id (numeric ids numerically: shorter first,
    then by text), so open and close are the same on every run and on both databases. Always
    computed from the trades themselves (there is no continuous aggregate of candles), so a
    late or backfilled trade counts as soon as it is stored."""
    trades = Trade.objects.filter(market=market, ts__gte=start, ts__lt=end)
    order = ("ts", Length("trade_id"), "trade_id")
    rows = bucketed(
        trades,
        time_field="ts",
        interval=interval,
        open=First("price", *order),
        high=Max("price"),
        low=Min("price"),
        close=Last("price", *order),
        volume=Sum("qty"),
        trades=Count("id"),
    )
    return list(rows)


def top_of_book_series(
    *,
    market: Market,
    start: datetime,
    end: datetime,
    interval: str | timedelta | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Best bid/ask over ``[start, end)``: every snapshot (the first ``limit`` from ``start``),
    or with ``interval`` the last snapshot of each bucket (``{bucket, bid, bid_qty, ask, ask_qty}``)."""
    snapshots = TopOfBookSnapshot.objects.filter(market=market, ts__gte=start, ts__lt=end)
    if interval is None:
        rows = snapshots.order_by("ts").values("ts", "bid", "bid_qty", "ask", "ask_qty")
        return list(rows if limit is None else rows[:limit])
    # The last snapshot per bucket: DISTINCT ON walks the (market, -ts) index once, where
    # four Last() aggregates would each build an array per bucket.
    width = parse_interval(interval)
    return list(
        snapshots.annotate(bucket=Bucket(F("ts"), width))
        .order_by("bucket", "-ts")
        .distinct("bucket")
        .values("bucket", "bid", "bid_qty", "ask", "ask_qty")
    )


def recent_trades(*, market: Market, limit: int = 100, before: datetime | None = None) -> QuerySet[Trade]:
    """The latest ``limit`` trades (newest first), optionally strictly before ``before``."""
    trades = Trade.objects.filter(market=market)
    if before is not None:
        trades = trades.filter(ts__lt=before)
    return trades.order_by("-ts", "-id")[:limit]


def latest_depth(*, market: Market, at: datetime | None = None) -> DepthSnapshot | None:
    """The newest depth snapshot (at or before ``at`` when given)."""
    snapshots = DepthSnapshot.objects.filter(market=market)
    if at is not None:
        snapshots = snapshots.filter(ts__lte=at)
    return snapshots.order_by("-ts").first()


def heatmap(*, market: Market, start: datetime, end: datetime, bucket: str | timedelta = "1m") -> dict[str, Any]:
    """Depth over time for a liquidity heat map: per time bucket, the last depth snapshot's
    levels as ``{ts, mid, bids: [[price, qty], ...], asks: [...]}`` (decimal strings)."""
    width = parse_interval(bucket, field="bucket")
    snapshots = (
        DepthSnapshot.objects.filter(market=market, ts__gte=start, ts__lt=end)
        .annotate(bucket=Bucket(F("ts"), width))
        .order_by("bucket", "-ts")
        .distinct("bucket")
        .values("bucket", "ts", "mid", "bids", "asks")
    )
    columns = list(snapshots)
    return {"market": market.pk, "bucket_seconds": int(width.total_seconds()), "columns": columns}


def market_get(*, market_id: Any) -> Market | None:
    """The market with this id, or ``None``."""
    try:
        return Market.objects.get(pk=int(market_id))
    except (Market.DoesNotExist, TypeError, ValueError):
        return None
