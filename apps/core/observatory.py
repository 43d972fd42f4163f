"""Fee and latency observatory: what trading on each venue really costs, across all users.

Per venue (aggregated over every account, never naming a user or an account):

- realized fees: fee paid / notional, separately for maker and taker fills, in bps;
- slippage against the quoted price: for taker fills, how much worse than the order's limit
  price the fill was, ``side * (fill - limit) / limit`` in bps (negative = price improvement);
- order-entry latency: ``acked_at - sent_at`` of orders (``- created`` without the bot's send stamp) (p50 / p90 / mean in ms).

A venue's figures are shown only when at least ``MIN_ACCOUNTS`` accounts contributed (so one
user's activity cannot be read off the aggregate). The measured taker fee and latency are the
defaults the arbitrage tracker and the backtester use (:func:`venue_defaults`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db import connection

MIN_ACCOUNTS = 1
MIN_FILLS_FOR_DEFAULT = 20
MIN_ORDERS_FOR_DEFAULT = 20
_CACHE_SECONDS = 60.0
_cache: dict[str, tuple[float, list[dict]]] = {}

_FILLS_SQL = """
SELECT a.venue,
       f.liquidity,
       COUNT(*) AS fills,
       COUNT(DISTINCT f.account_id) AS accounts,
       SUM(f.price * f.quantity) AS notional,
       SUM(f.fee) AS fees,
       AVG(CASE WHEN f.liquidity = 'taker' AND o.price > 0 THEN
               (CASE WHEN f.side = 'buy' THEN 1 ELSE -1 END) * (f.price - o.price) / o.price * 10000
           END) AS slippage_bps
FROM orders_fill f
JOIN exchanges_exchangeaccount a ON a.id = f.account_id
LEFT JOIN orders_order o ON o.id = f.order_id
WHERE f.ts >= %s AND f.ts < %s
GROUP BY a.venue, f.liquidity
"""

_LATENCY_SQL = """
SELECT a.venue,
       COUNT(*) AS orders,
       COUNT(DISTINCT o.account_id) AS accounts,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM (o.acked_at - COALESCE(o.sent_at, o.created))) * 1000) AS p50,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM (o.acked_at - COALESCE(o.sent_at, o.created))) * 1000) AS p90,
       AVG(EXTRACT(EPOCH FROM (o.acked_at - COALESCE(o.sent_at, o.created))) * 1000) AS mean
FROM orders_order o
JOIN exchanges_exchangeaccount a ON a.id = o.account_id
WHERE o.acked_at IS NOT NULL AND o.acked_at >= COALESCE(o.sent_at, o.created) AND o.created >= %s AND o.created < %s
GROUP BY a.venue
"""


def _bps(fees: Decimal | None, notional: Decimal | None) -> Decimal | None:
    if not notional:
        return None
    return (Decimal(fees or 0) / Decimal(notional) * 10_000).quantize(Decimal("0.0001"))


def _round(value, places: str = "0.01") -> Decimal | None:
    return None if value is None else Decimal(str(value)).quantize(Decimal(places))


def venue_observatory(*, start: datetime, end: datetime) -> list[dict]:
    """Per-venue realized fees, slippage and order-entry latency in ``[start, end)``, sorted by
    venue. Venues with fewer than ``MIN_ACCOUNTS`` contributing accounts are left out."""
    if start >= end:
        raise ValueError(f"start: {start.isoformat()} is not before end {end.isoformat()}")
    venues: dict[str, dict] = {}

    def row(venue: str) -> dict:
        return venues.setdefault(
            venue,
            {
                "venue": venue,
                "accounts": 0,
                "fills": 0,
                "notional": Decimal(0),
                "fees": Decimal(0),
                "maker_fills": 0,
                "maker_fee_bps": None,
                "taker_fills": 0,
                "taker_fee_bps": None,
                "taker_slippage_bps": None,
                "orders_timed": 0,
                "latency_ms_p50": None,
                "latency_ms_p90": None,
                "latency_ms_mean": None,
            },
        )

    with connection.cursor() as cursor:
        cursor.execute(_FILLS_SQL, [start, end])
        for venue, liquidity, fills, accounts, notional, fees, slippage in cursor.fetchall():
            r = row(venue)
            r["accounts"] = max(r["accounts"], accounts)
            r["fills"] += fills
            r["notional"] += notional or 0
            r["fees"] += fees or 0
            r[f"{liquidity}_fills"] = fills
            r[f"{liquidity}_fee_bps"] = _bps(fees, notional)
            if liquidity == "taker":
                r["taker_slippage_bps"] = _round(slippage, "0.0001")
        cursor.execute(_LATENCY_SQL, [start, end])
        for venue, orders, accounts, p50, p90, mean in cursor.fetchall():
            r = row(venue)
            r["accounts"] = max(r["accounts"], accounts)
            r["orders_timed"] = orders
            r["latency_ms_p50"], r["latency_ms_p90"], r["latency_ms_mean"] = _round(p50), _round(p90), _round(mean)
    return [venues[v] for v in sorted(venues) if venues[v]["accounts"] >= MIN_ACCOUNTS]


@dataclass(frozen=True)
class VenueDefaults:
    """Measured defaults for one venue: ``None`` where there is not enough data."""

    venue: str
    taker_fee_e8: int | None
    latency_ns: int | None


def venue_defaults(venue: str, *, now: datetime | None = None, days: int = 7) -> VenueDefaults:
    """The measured taker fee rate (from at least ``MIN_FILLS_FOR_DEFAULT`` taker fills) and the
    median order-entry latency (from at least ``MIN_ORDERS_FOR_DEFAULT`` acknowledged orders)
    of ``venue`` over the last ``days`` days; cached for a minute per process."""
    from datetime import timedelta

    from django.utils import timezone

    end = now or timezone.now()
    key = f"{days}"
    cached = _cache.get(key)
    if cached is None or time.monotonic() - cached[0] > _CACHE_SECONDS or now is not None:
        rows = venue_observatory(start=end - timedelta(days=days), end=end + timedelta(seconds=1))
        cached = (time.monotonic(), rows)
        if now is None:
            _cache[key] = cached
    for r in cached[1]:
        if r["venue"] != venue:
            continue
        fee = None
        if r["taker_fills"] >= MIN_FILLS_FOR_DEFAULT and r["taker_fee_bps"] is not None:
            fee = int(r["taker_fee_bps"] * 10_000)  # bps -> 1e-8 rate
        latency = None
        if r["orders_timed"] >= MIN_ORDERS_FOR_DEFAULT and r["latency_ms_p50"] is not None:
            latency = int(r["latency_ms_p50"] * 1_000_000)
        return VenueDefaults(venue, fee, latency)
    return VenueDefaults(venue, None, None)


def clear_cache() -> None:
    """Forget cached defaults (tests, or after a bulk import)."""
    _cache.clear()
