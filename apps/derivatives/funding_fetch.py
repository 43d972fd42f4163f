"""A perpetual's funding-rate history read from its exchange through ccxt
(``fetchFundingRateHistory``) and stored as the market's funding series for backtests
(:func:`apps.derivatives.services.funding_store`, source ``ccxt``): the ``fetch_funding`` command.

Pages of at most ``PAGE`` funding times are read from ``since`` on, each starting after the
newest time of the one before, until a page comes back short, the times pass ``until`` or
``MAX_PAGES`` pages were read (then refused: narrow the range). The rows go through the same
checks as a CSV (:func:`apps.derivatives.services.funding_from_ccxt`: rates within +-0.03, times
in order, no gap longer than ``max_gap_hours``) and are stored whole or not at all. A public
endpoint: no keys are used.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Any

from apps.derivatives.services import FundingImportError, funding_from_ccxt, funding_store

PAGE = 1000  # Binance's largest page
MAX_PAGES = 200  # 200,000 funding times: ~180 years of Binance's 8-hourly funding


async def fetch_history(
    exchange: Any, symbol: str, since_ms: int, until_ms: int | None, page: int = PAGE
) -> list[dict]:
    """Every funding time of ``symbol`` from ``since_ms`` to ``until_ms`` (None: now), oldest first, once each."""
    rows: dict[int, dict] = {}
    cursor = since_ms
    params = {} if until_ms is None else {"until": until_ms}
    for _ in range(MAX_PAGES):
        got = await exchange.fetch_funding_rate_history(symbol, cursor, page, params)
        fresh = [r for r in got if isinstance(r.get("timestamp"), int) and r["timestamp"] >= cursor]
        for r in fresh:
            if until_ms is None or r["timestamp"] <= until_ms:
                rows[r["timestamp"]] = r
        if len(got) < page or not fresh:
            break
        cursor = max(r["timestamp"] for r in fresh) + 1
        if until_ms is not None and cursor > until_ms:
            break
    else:
        raise FundingImportError(
            {
                "since": f"more than {MAX_PAGES * page} funding times from {since_ms}; accepted: a narrower --since/--until"
            }
        )
    return [rows[ts] for ts in sorted(rows)]


def fetch_and_store(
    *,
    venue: str,
    symbol: str,
    since: datetime,
    until: datetime | None = None,
    max_gap_hours: int = 8,
    exchange_factory: Callable[..., Any] | None = None,
) -> int:
    """Read ``symbol``'s funding history on ccxt exchange ``venue`` and store it; returns how many
    funding times were stored. Refused (:class:`FundingImportError`, by field) when the venue is
    not a ccxt exchange with funding history, the symbol is not one of its perpetuals, the range
    is empty or the rows fail the series' checks."""
    from connectors.ccxt_venue import make_exchange
    from mmsite import env

    if until is not None and until <= since:
        raise FundingImportError({"until": f"{until.isoformat()} is not after --since {since.isoformat()}"})
    http_base = env.live_http_base()
    try:
        exchange = (exchange_factory or make_exchange)(
            venue, streaming=False, http_base=http_base, enable_rate_limit=http_base is None
        )
    except ValueError as exc:
        raise FundingImportError({"venue": str(exc)}) from None

    async def run() -> list[dict]:
        try:
            if not exchange.has.get("fetchFundingRateHistory"):
                raise FundingImportError(
                    {"venue": f"{venue!r} has no funding-rate history in ccxt; accepted: e.g. 'binanceusdm'"}
                )
            markets = await exchange.load_markets()
            market = markets.get(symbol)
            if market is None or not market.get("swap"):
                swaps = sorted(s for s, m in markets.items() if m.get("swap"))[:5]
                raise FundingImportError(
                    {"symbol": f"{symbol!r} is not a perpetual on {venue}; accepted: e.g. {', '.join(swaps) or 'none'}"}
                )
            until_ms = None if until is None else int(until.timestamp() * 1000)
            return await fetch_history(exchange, symbol, int(since.timestamp() * 1000), until_ms)
        finally:
            await exchange.close()

    rows = asyncio.run(run())
    if not rows:
        raise FundingImportError({"rows": f"{venue} returned no funding time for {symbol} from {since.isoformat()}"})
    points = funding_from_ccxt(rows, max_gap_hours=max_gap_hours)
    return funding_store(venue=venue, symbol=symbol, points=points, source="ccxt")
