"""A market's price for judging a trader's numbers (order sizes against balances), from the
freshest source that knows one, without a call to an exchange:

1. the market's last recorded trade;
2. the mid of its latest recorded depth snapshot;
3. the mid of the book its running feed last published to Redis;
4. what the venue itself starts from when nothing has been recorded yet: a replay market's
   recording (its first trade, else its first book), a sim market's generated mid now.

Each price carries a label saying which (shown to traders next to the figure it judged).

A live ccxt market that has never been fed has none of these; :func:`reference_price` then
returns ``None`` (the exchange refuses what the account cannot pay for).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache

from apps.exchanges.models import Market

log = logging.getLogger(__name__)
RECORDING_SCAN_EVENTS = 50_000  # a first trade or book is within the first few hundred events


@dataclass(frozen=True)
class ReferencePrice:
    price: Decimal
    source: str  # which of the module's sources, in words


def reference_price(market: Market) -> ReferencePrice | None:
    """The market's price from the first source in the module's order that has one."""
    from apps.marketdata.selectors import latest_depth, recent_trades

    trade = recent_trades(market=market, limit=1).first()
    if trade is not None and trade.price > 0:
        return ReferencePrice(trade.price, "last trade")
    depth = latest_depth(market=market)
    if depth is not None and depth.mid and depth.mid > 0:
        return ReferencePrice(depth.mid, "latest recorded book")
    mid = _live_book_mid(market)
    if mid is not None:
        return ReferencePrice(mid, "live book")
    return _venue_price(market.venue, market.symbol, market.tick_size)


def _live_book_mid(market: Market) -> Decimal | None:
    """The mid of the book the market's feed last published (the workers' ``feed_book`` key)."""
    import redis

    from apps.core.health import redis_client
    from apps.dashboard.live import feed_book_key

    try:
        raw = redis_client().get(feed_book_key(market.venue, market.symbol))
    except redis.RedisError as exc:
        log.warning("reference price: the live book of %s %s is unreadable: %s", market.venue, market.symbol, exc)
        return None
    if not raw:
        return None
    try:
        book = json.loads(raw)
        bid, ask = Decimal(book["bids"][0][0]), Decimal(book["asks"][0][0])
    except (ValueError, KeyError, IndexError, TypeError, ArithmeticError):
        return None
    return (bid + ask) / 2 if bid > 0 and ask > 0 else None


def _venue_price(venue: str, symbol: str, tick: Decimal) -> ReferencePrice | None:
    kind, _, name = venue.partition(":")
    if kind == "replay":
        price = _recording_price(venue, symbol)
        return None if price is None else ReferencePrice(price, "the replay recording's opening price")
    if kind == "sim" and name:
        from connectors.sim import sim_mid

        return ReferencePrice(Decimal(str(sim_mid(venue, time.time()))).quantize(tick), "the sim venue's price now")
    return None


@lru_cache(maxsize=16)
def _recording_price(venue: str, symbol: str) -> Decimal | None:
    """The first trade (else the first book's mid) of the recording a replay market plays."""
    from connectors.binance_recording import RECORDINGS, iter_recording
    from connectors.venues import REPLAY_RECORDINGS
    from trading.events import BookSnapshot, TradeTick

    name = REPLAY_RECORDINGS.get((venue, symbol))
    if name is None:
        return None
    recording = RECORDINGS[name]
    inst = recording.instrument
    book_mid = None
    for n, event in enumerate(iter_recording(recording.paths, inst)):
        if isinstance(event, TradeTick):
            return inst.price(event.price)
        if book_mid is None and isinstance(event, BookSnapshot) and event.bids and event.asks:
            book_mid = (inst.price(event.bids[0][0]) + inst.price(event.asks[0][0])) / 2
        if n >= RECORDING_SCAN_EVENTS:
            break
    return book_mid
