"""The arbitrage tracker's scan (beat, every second): latest books from Redis -> opportunities.

Watched markets: every symbol quoted by two or more venues among the feeds already running
(``feeds:wanted``) plus the markets of ``ARBITRAGE_WATCH_VENUES`` (default: every ``sim:*``
venue), whose feeds the scan keeps alive by registering interest. A book's age is how long ago
the feed last published it (the key is written with a 60 s expiry on every publish, so the
remaining TTL tells the publish time). When a user wants paper execution, both legs are
executed against the books read again after the venues' latency.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict

from celery import shared_task
from django.conf import settings

from workers import keys, lifecycle

logger = logging.getLogger(__name__)
BOOK_TTL_MS = 60_000
INTEREST_TTL_S = 60
MAX_EXECUTION_WAIT_S = 1.0


def watched_markets(redis) -> list[tuple[str, str]]:
    """(venue, symbol) pairs worth scanning: symbols with at least two venues.

    A replay venue shows a market from the past: set beside live or simulated venues it would
    report gaps that never existed, so it is scanned only when ``ARBITRAGE_WATCH_VENUES`` names it.
    """
    from apps.exchanges.models import Market

    watch = settings.ARBITRAGE_WATCH_VENUES
    pairs = set()
    for raw in redis.smembers(keys.feeds_wanted()):
        venue, _, symbol = raw.decode().partition("|")
        if symbol and (not venue.startswith("replay:") or (watch is not None and venue in watch)):
            pairs.add((venue, symbol))
    qs = Market.objects.filter(active=True)
    qs = qs.filter(venue__in=watch) if watch is not None else qs.filter(venue__startswith="sim:")
    per_symbol: dict[str, set[str]] = defaultdict(set)
    for venue, symbol in pairs | set(qs.values_list("venue", "symbol")):
        per_symbol[symbol].add(venue)
    return sorted((venue, symbol) for symbol, venues in per_symbol.items() if len(venues) >= 2 for venue in venues)


def keep_feeds_alive(redis, markets: list[tuple[str, str]]) -> None:
    """Register interest so the supervisor runs these feeds even without a bot."""
    if not markets:
        return
    pipe = redis.pipeline()
    for venue, symbol in markets:
        pipe.set(keys.feed_interest(venue, symbol), f"{venue}|{symbol}", ex=INTEREST_TTL_S)
    pipe.execute()


def read_latest(redis, markets: list[tuple[str, str]]):
    """The latest published books with their publish times (from the keys' remaining TTL)."""
    from apps.arbitrage.tracker import LatestBook

    if not markets:
        return []
    pipe = redis.pipeline(transaction=False)
    for venue, symbol in markets:
        pipe.get(keys.feed_book(venue, symbol))
        pipe.pttl(keys.feed_book(venue, symbol))
    answers = pipe.execute()
    now = time.time_ns()
    latest = []
    for i, (venue, symbol) in enumerate(markets):
        payload, pttl = answers[2 * i], answers[2 * i + 1]
        if not payload or pttl is None or pttl < 0:
            continue
        published = now - max(0, BOOK_TTL_MS - pttl) * 1_000_000
        latest.append(LatestBook(venue, symbol, payload, published))
    return latest


def scan_once(redis=None) -> dict:
    """One scan: detect, record, push, notify, and paper-execute when wanted."""
    from apps.arbitrage import tracker

    redis = redis or lifecycle.redis_client()
    markets = watched_markets(redis)
    keep_feeds_alive(redis, markets)
    latest = read_latest(redis, markets)
    scan = tracker.tracker_scan(latest=latest, now_ns=time.time_ns())
    executed = 0
    wanted = [f for f in scan.found if tracker.paper_execution_wanted(f)]
    if wanted:
        wait_s = min(MAX_EXECUTION_WAIT_S, max(f.latency_ns for f in wanted) / 2 / 1e9)
        time.sleep(wait_s)  # each leg lands after (about) half the round trip
        executed = len(tracker.tracker_paper_execute(scan=scan, latest=read_latest(redis, markets)))
    return {
        "markets": len(markets),
        "books": len(latest),
        "found": len(scan.found),
        "notified": scan.notified,
        "executed": executed,
    }


@shared_task(name="workers.arbitrage.scan", ignore_result=True, expires=5)
def scan() -> dict:
    """Beat entry point (every second). Scans that queued up behind a busy worker collapse into
    one: a scan within 0.5 s of the previous one is skipped."""
    redis = lifecycle.redis_client()
    if not redis.set(f"{keys.prefix()}:arbitrage:scan", "1", nx=True, px=500):
        return {"skipped": 1}
    return scan_once(redis)
