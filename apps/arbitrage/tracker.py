"""The arbitrage tracker: latest books of every venue quoting a symbol -> recorded, pushed and
notified opportunities, with optional paper execution of both legs.

The worker (``workers.arbitrage``) reads the feeds' latest books from Redis and hands them here
as :class:`LatestBook` values; detection is :mod:`trading.arbitrage`; fee and latency defaults
come from the observatory (:func:`apps.core.observatory.venue_defaults`), falling back to the
market's configured taker fee and ``ARBITRAGE_DEFAULT_LATENCY_MS``.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings

from apps.arbitrage.models import ArbitrageSettings, Opportunity
from apps.arbitrage.services import (
    DetectedOpportunity,
    opportunity_notify,
    opportunity_record_batch,
    opportunity_record_execution,
)
from apps.core.observatory import venue_defaults
from apps.exchanges.markets import market_to_instrument as market_instrument
from apps.exchanges.models import Market
from trading import arbitrage
from trading.book import OrderBook
from trading.events import BookSnapshot
from trading.instruments import Instrument, Side

logger = logging.getLogger(__name__)
GROUP = "arbitrage"


@dataclass(frozen=True)
class LatestBook:
    """One venue's latest published book: the feed's JSON (``bids``/``asks`` as decimal
    strings) and when it was published (ns, wall clock)."""

    venue: str
    symbol: str
    payload: str | bytes
    published_ns: int


def tracker_config() -> arbitrage.ArbitrageConfig:
    """Detector thresholds from settings (``ARBITRAGE_*``), with conservative defaults."""
    return arbitrage.ArbitrageConfig(
        min_profit=settings.ARBITRAGE_MIN_PROFIT,
        min_edge_bps=settings.ARBITRAGE_MIN_EDGE_BPS,
        max_staleness_ns=settings.ARBITRAGE_MAX_STALENESS_MS * 1_000_000,
        discount_bps_per_second=settings.ARBITRAGE_DISCOUNT_BPS_PER_SECOND,
        max_base=settings.ARBITRAGE_MAX_BASE,
    )


def _book(instrument: Instrument, data: dict) -> OrderBook:
    bids = tuple(
        (instrument.ticks(p, side=Side.BUY), instrument.lots(q, round_down=True)) for p, q in data.get("bids", [])
    )
    asks = tuple(
        (instrument.ticks(p, side=Side.SELL), instrument.lots(q, round_down=True)) for p, q in data.get("asks", [])
    )
    book = OrderBook()
    book.apply_snapshot(
        BookSnapshot(
            ts=int(data.get("ts", 0)), bids=tuple(x for x in bids if x[1]), asks=tuple(x for x in asks if x[1])
        )
    )
    return book


def venue_books(latest: Iterable[LatestBook]) -> dict[str, list[arbitrage.VenueBook]]:
    """Parse the latest books into detector inputs grouped by symbol. A malformed book or an
    unknown market is logged and skipped (one bad feed never stops the scan)."""
    latest = list(latest)
    markets = {
        (m.venue, m.symbol): m
        for m in Market.objects.filter(venue__in={b.venue for b in latest}, symbol__in={b.symbol for b in latest})
    }
    default_latency_ns = settings.ARBITRAGE_DEFAULT_LATENCY_MS * 1_000_000
    grouped: dict[str, list[arbitrage.VenueBook]] = defaultdict(list)
    for item in latest:
        market = markets.get((item.venue, item.symbol))
        if market is None:
            continue
        try:
            instrument = market_instrument(market)
            book = _book(instrument, json.loads(item.payload))
        except (ValueError, TypeError, KeyError) as exc:
            logger.warning("arbitrage: skipping book %s %s: %s", item.venue, item.symbol, exc)
            continue
        measured = venue_defaults(item.venue)
        grouped[item.symbol].append(
            arbitrage.VenueBook(
                venue=item.venue,
                instrument=instrument,
                book=book,
                ts=item.published_ns,
                taker_fee_e8=measured.taker_fee_e8,
                latency_ns=measured.latency_ns if measured.latency_ns is not None else default_latency_ns,
            )
        )
    return grouped


def _detected(o: arbitrage.Opportunity) -> DetectedOpportunity:
    return DetectedOpportunity(
        ts=datetime.fromtimestamp(o.ts / 1e9, tz=UTC),
        symbol=o.symbol,
        buy_venue=o.buy_venue,
        sell_venue=o.sell_venue,
        buy_price=o.buy_price,
        sell_price=o.sell_price,
        size=o.size,
        fees=o.fees,
        slippage=o.slippage,
        discount=o.discount,
        staleness_ms=o.staleness_ns // 1_000_000,
        latency_ms=o.latency_ns // 1_000_000,
    )


def opportunity_message(row: Opportunity) -> dict:
    """What the tracker page receives for one opportunity (decimals as strings)."""
    return {
        "id": row.pk,
        "ts": row.ts.isoformat(),
        "symbol": row.symbol,
        "buy_venue": row.buy_venue,
        "sell_venue": row.sell_venue,
        "buy_price": str(row.buy_price),
        "sell_price": str(row.sell_price),
        "size": str(row.size),
        "gross_edge_bps": str(row.gross_edge_bps),
        "net_edge_bps": str(row.net_edge_bps),
        "net_profit": str(row.net_profit),
        "executed": row.executed,
        "realized_profit": None if row.realized_profit is None else str(row.realized_profit),
    }


def _push(rows: list[Opportunity]) -> None:
    if not rows:
        return
    try:
        from asgiref.sync import async_to_sync
        from channels.layers import get_channel_layer

        layer = get_channel_layer()
        if layer is None:
            return
        for row in rows:
            async_to_sync(layer.group_send)(
                GROUP, {"type": "arbitrage.opportunity", "opportunity": opportunity_message(row)}
            )
    except Exception as exc:  # live push is best effort; the page also polls the database
        logger.warning("arbitrage: push to %s failed: %s", GROUP, exc)


@dataclass
class ScanResult:
    """Detected opportunities (detector values) and the rows recorded for them, in order."""

    found: list[arbitrage.Opportunity]
    recorded: list[Opportunity]
    notified: int


def tracker_scan(
    *, latest: Iterable[LatestBook], now_ns: int, config: arbitrage.ArbitrageConfig | None = None
) -> ScanResult:
    """Detect opportunities across the latest books, record them, push them to the ``arbitrage``
    group and notify users whose threshold they meet."""
    config = config or tracker_config()
    found: list[arbitrage.Opportunity] = []
    for books in venue_books(latest).values():
        if len(books) >= 2:
            found.extend(arbitrage.find_opportunities(books, now_ns=now_ns, config=config))
    if not found:
        return ScanResult([], [], 0)
    recorded = opportunity_record_batch(detected=[_detected(o) for o in found])
    _push(recorded)
    notified = 0
    for row in recorded:
        try:
            notified += opportunity_notify(opportunity=row)
        except Exception as exc:  # a notification problem never loses the recorded opportunity
            logger.warning("arbitrage: notifying opportunity %s failed: %s", row.pk, exc)
    return ScanResult(found, recorded, notified)


def paper_execution_wanted(opportunity: arbitrage.Opportunity) -> bool:
    """Whether any user asked for paper execution of opportunities like this one."""
    for s in ArbitrageSettings.objects.filter(paper_execute=True).only("symbols", "venues"):
        if s.symbols and opportunity.symbol not in s.symbols:
            continue
        if s.venues and not {opportunity.buy_venue, opportunity.sell_venue} <= set(s.venues):
            continue
        return True
    return False


def tracker_paper_execute(
    *, scan: ScanResult, latest: Iterable[LatestBook], only_wanted: bool = True
) -> list[Opportunity]:
    """Paper-execute both legs of each recorded opportunity against ``latest`` (books read after
    the venues' latency) and record the realized outcome. Returns the rows executed."""
    grouped = venue_books(latest)
    by_venue = {(b.venue, sym): b for sym, books in grouped.items() for b in books}
    executed = []
    for found, row in zip(scan.found, scan.recorded, strict=True):
        if only_wanted and not paper_execution_wanted(found):
            continue
        buy = by_venue.get((found.buy_venue, found.symbol))
        sell = by_venue.get((found.sell_venue, found.symbol))
        if buy is None or sell is None:
            continue
        outcome = arbitrage.execute_ioc(found, buy, sell)
        hedged = min(outcome.bought, outcome.sold)
        executed.append(
            opportunity_record_execution(
                opportunity=row, realized_profit=outcome.profit, realized_size=hedged if hedged > 0 else None
            )
        )
    _push(executed)
    return executed


def latest_from_mapping(items: Mapping[tuple[str, str], tuple[str | bytes, int]]) -> list[LatestBook]:
    """Convenience: ``{(venue, symbol): (payload, published_ns)}`` -> ``LatestBook`` list."""
    return [LatestBook(v, s, payload, ts) for (v, s), (payload, ts) in items.items() if payload]
