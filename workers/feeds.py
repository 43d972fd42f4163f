"""One feed loop per (venue, symbol) in use, hosted by a :class:`workers.host.Host`.

Source events → order book → (a) Redis: a capped stream of top-N book snapshots and trades for
bot loops (``XADD MAXLEN ~ 10000``) and the latest book as JSON plus a PUBLISH wakeup, (b) the
channel-layer group ``book.<venue>.<symbol>`` at most 4 times a second, (c) batched inserts of
top-of-book/depth snapshots and trades into the database every second, and health plus
``FeedStats`` under ``<prefix>:feed:<venue>:<symbol>:health``. Errors restart the source with
backoff; the loop ends when it loses its lease or no one needs the feed any more.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time

from connectors.venues import Converter, build_feed
from trading.book import OrderBook, SequenceGap
from trading.events import BookSnapshot, TopOfBook, TradeTick
from workers import codec, keys, records
from workers import metrics as feed_metrics
from workers.books import apply_to_book

logger = logging.getLogger(__name__)
TOP_N = 20
STREAM_MAXLEN = 10_000


class FeedLoop:
    """Publish one venue/symbol while this host holds the feed's lease."""

    def __init__(self, host, venue: str, symbol: str, lease) -> None:
        self.host = host
        self.venue = venue
        self.symbol = symbol
        self.lease = lease
        self.k_stream = keys.feed_stream(venue, symbol)
        self.k_book = keys.feed_book(venue, symbol)
        self.k_health = keys.feed_health(venue, symbol)
        self.k_wakeup = keys.feed_wakeup(venue, symbol)
        self.group = keys.group_name("book", venue, symbol)
        self.published = 0
        self.errors = 0
        self.health = "connecting"
        self.last_error = ""
        self._pending_db: list = []
        self.market_id: int | None = None
        self.instrument = None

    async def run(self) -> None:
        try:
            market = await self.host.db.call(_market, self.venue, self.symbol)
            if market is None:
                self.health = "error"
                self.last_error = f"no market {self.venue} {self.symbol} in the database"
                await self._write_health(None)
                return
            self.market_id, self.instrument = market
            backoff = 0.5
            while self.lease.held and self.host.feed_wanted(self.venue, self.symbol):
                try:
                    await self._run_source()
                    backoff = 0.5
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # source failure: back off and start again
                    self.errors += 1
                    self.health = "reconnecting"
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    logger.warning("feed %s %s failed: %s", self.venue, self.symbol, exc)
                    await self._write_health(None)
                    await asyncio.sleep(backoff * (1 + random.random()))
                    backoff = min(backoff * 2, 10.0)
        finally:
            self.health = "closed"
            try:
                await self._write_health(None)
            except Exception:
                pass
            self.host.feed_done(self)

    async def _run_source(self) -> None:
        import redis.asyncio as aioredis

        from workers.redis_conn import LoopConnection

        feed = build_feed(self.venue, self.instrument)
        book = OrderBook()
        # Its own connection for the stream: the publish time is stamped just before the XADD,
        # which does not then wait for a pool connection the bots keep busy.
        redis = aioredis.Redis.from_url(
            self.host.redis_url,
            single_connection_client=True,
            socket_connect_timeout=3,
            socket_timeout=5,
            connection_class=LoopConnection,  # the XADD leaves at once after the stamp
        )
        last_group = last_db = last_health = last_check = 0.0
        pending_stream: list[bytes] = []
        await feed.connect()
        conv = Converter(getattr(feed, "instrument", self.instrument), self.instrument)
        self.health = "live"
        try:
            async for raw in feed.events():
                ev = conv.event(raw)
                feed_metrics.feed_message(self)
                t = type(ev)
                if t is TradeTick:
                    pending_stream.append(codec.encode_trade(ev))
                    self._pending_db.append(ev)
                else:
                    try:
                        changed = apply_to_book(book, ev)
                    except SequenceGap:
                        self.health = "resyncing"
                        feed_metrics.feed_resync(self)
                        continue
                    self.health = "live"
                    bids, asks = book.top(TOP_N) if changed else ((), ())
                    if bids and asks:
                        pending_stream.append(codec.encode_snapshot(ev.ts, bids, asks))
                now = time.monotonic()
                if pending_stream:
                    pub = time.time_ns()
                    stream = self.k_stream
                    pipe = redis.pipeline(transaction=False)
                    for b in pending_stream:
                        pipe.xadd(stream, {"e": b, "p": pub}, maxlen=STREAM_MAXLEN, approximate=True)
                    await pipe.execute()
                    self.published += len(pending_stream)
                    pending_stream.clear()
                if now - last_group >= 0.25:
                    last_group = now
                    await self._publish_book(book, ev.ts)
                if now - last_db >= 1.0:
                    last_db = now
                    self._flush_db(book, ev.ts)
                if now - last_health >= 1.0:
                    last_health = now
                    await self._write_health(feed)
                if now - last_check >= 2.0:
                    last_check = now
                    if not self.lease.held or not self.host.feed_wanted(self.venue, self.symbol):
                        return
        finally:
            await feed.close()
            await redis.aclose()

    async def _publish_book(self, book: OrderBook, ts: int) -> None:
        inst = self.instrument
        bids, asks = book.top(TOP_N)
        payload = {
            "type": "book",
            "venue": self.venue,
            "symbol": self.symbol,
            "ts": ts,
            "bids": [[str(inst.price(p)), str(inst.quantity(q))] for p, q in bids],
            "asks": [[str(inst.price(p)), str(inst.quantity(q))] for p, q in asks],
        }
        blob = json.dumps(payload)
        redis = self.host.redis
        pipe = redis.pipeline(transaction=False)
        pipe.set(self.k_book, blob, ex=60)
        pipe.publish(self.k_wakeup, str(ts))
        await pipe.execute()
        await self.host.group_send(self.group, {"type": "book.update", "book": payload})

    def _flush_db(self, book: OrderBook, ts: int) -> None:
        bids, asks = book.top(TOP_N)
        events = list(self._pending_db)
        self._pending_db.clear()
        if bids and asks:
            events.append(BookSnapshot(ts=ts, bids=tuple(bids), asks=tuple(asks)))
            events.append(
                TopOfBook(ts=ts, bid_price=bids[0][0], bid_qty=bids[0][1], ask_price=asks[0][0], ask_qty=asks[0][1])
            )
        if events:
            self.host.db.submit(_ingest, self.market_id, self.instrument, events)

    async def _write_health(self, feed) -> None:
        try:
            await self._write_health_now(feed)
        except Exception as exc:  # Redis trouble: health is best effort
            logger.debug("feed health not written: %s", exc)

    async def _write_health_now(self, feed) -> None:
        stats = getattr(feed, "stats", None)
        info = {
            "venue": self.venue,
            "symbol": self.symbol,
            "health": self.health,
            "owner": self.host.host_id,
            "published": self.published,
            "errors": self.errors,
            "last_error": self.last_error,
            "stats": stats.as_dict() if stats is not None and hasattr(stats, "as_dict") else {},
            "ts": time.time_ns(),
        }
        await self.host.redis.set(self.k_health, json.dumps(info, default=str), ex=30)


def _market(venue: str, symbol: str):
    from apps.exchanges.models import Market

    market = Market.objects.filter(venue=venue, symbol=symbol).first()
    if market is None:
        return None
    return market.pk, records.market_instrument(market)


def _ingest(market_id: int, instrument, events: list) -> None:
    from apps.marketdata.services import batch_from_events, marketdata_ingest_batch

    batch = batch_from_events(market_id=market_id, instrument=instrument, events=events)
    marketdata_ingest_batch(tops=batch.tops, depths=batch.depths, trades=batch.trades)
