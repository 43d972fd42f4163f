"""Market data fan-out of a bot host (:class:`workers.host.Host` is a :class:`MarketFanout`).

One stream reader per host: a task on the host's loop that repeats one ``XREAD`` (``BLOCK`` 200
ms) over every feed stream its bots use, through redis-py's asyncio client on its own connection
(hiredis parses the replies). Each entry is decoded once; a book event is applied once to the
host's order book for that stream, which every bot of the stream reads (engine and paper
matching), and every event is handed to the stream's bots, which are woken a few per loop turn.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque

from mmsite import env
from trading.book import OrderBook, SequenceGap
from trading.events import TradeTick
from workers import codec, keys
from workers.books import apply_to_book

logger = logging.getLogger(__name__)


class MarketFanout:
    """Streams in use, the shared books, the reader and the waker (see the module docstring)."""

    def _init_fanout(self) -> None:
        self.subscribers: dict[str, set] = {}  # stream key -> runners
        # One order book per feed stream, applied once here and read by every bot of the stream
        # (their engines and paper matching): see ``_dispatch``.
        self.books: dict[str, OrderBook] = {}
        self.book_errors = 0
        # Bots with new market data, woken a few per loop turn (``_waker``).
        self._to_wake: deque = deque()
        self._queued: set = set()
        self._waker_wake = asyncio.Event()
        self.wake_batch = env.host_wake_batch()
        self._streams_in_use: frozenset[str] = frozenset()
        self._stream_ids: dict[str, bytes] = {}  # stream -> last entry id read
        # publish -> the XREAD reply holding the entry is read and decoded on the loop.
        self.feed_latency_ns: deque[int] = deque(maxlen=20000)

    def book(self, venue: str, symbol: str) -> OrderBook:
        """The host's book of one feed (created empty; filled once a bot subscribes to the feed).
        Read-only for the bots: only :meth:`_dispatch` changes it."""
        stream = keys.feed_stream(venue, symbol)
        book = self.books.get(stream)
        if book is None:
            book = self.books[stream] = OrderBook()
        return book

    def subscribe(self, runner, venue: str, symbol: str) -> None:
        stream = keys.feed_stream(venue, symbol)
        self.subscribers.setdefault(stream, set()).add(runner)
        self._refresh_streams()

    def _refresh_streams(self) -> None:
        # The reader's next XREAD (within its BLOCK) covers the streams in use now.
        self._streams_in_use = frozenset(s for s, subs in self.subscribers.items() if subs)
        for stream, book in self.books.items():
            if stream not in self._streams_in_use:
                book.clear()  # no longer read: stale until the next subscriber's first snapshot

    async def _read_streams(self) -> None:
        """One XREAD (``BLOCK`` 200 ms) over every stream in use, on the host's loop through its
        own connection (``redis.asyncio`` with hiredis), repeated; each reply is decoded and
        handed to the bots (:meth:`_dispatch`). A stream newly in use is read from its newest
        entry on; each stream's position survives a failed read (the guard restarts this)."""
        client, ids = self.redis_stream, self._stream_ids
        while not self._stop.is_set():
            wanted = self._streams_in_use
            if not wanted:
                await asyncio.sleep(0.05)
                continue
            for s in list(ids):
                if s not in wanted:
                    del ids[s]
            for s in wanted:
                if s not in ids:  # start at the newest entry: nothing between reads is skipped
                    info = await client.xinfo_stream(s) if await client.exists(s) else None
                    ids[s] = info["last-generated-id"] if info else b"0-0"
            reply = await client.xread(dict(ids), count=1000, block=200)
            if reply:
                batch = self._reply_batch(reply, ids)
                if batch:
                    try:
                        self._dispatch(batch)
                    except Exception:  # a bug on one batch must not stop the reader
                        self.book_errors += 1
                        logger.exception("feed batch of %d entries not dispatched", len(batch))

    def _reply_batch(self, reply, ids: dict) -> list:
        """The (stream, event bytes, publish ns) entries of one XREAD reply (RESP2 list or RESP3
        map), noting publish -> here for each; ``ids`` gets each stream's last id."""
        now = time.time_ns()
        batch = []
        latency = self.feed_latency_ns
        for stream, entries in reply.items() if isinstance(reply, dict) else reply:
            stream = stream.decode()
            for entry_id, fields in entries:
                ids[stream] = entry_id
                fields = fields or {}
                raw = fields.get(b"e")
                if raw is None:
                    logger.warning("feed entry %s on %s has no event", entry_id, stream)
                    continue
                try:
                    published = int(fields.get(b"p") or 0) or now
                except ValueError:
                    published = now
                latency.append(now - published)
                batch.append((stream, raw, published))
        return batch

    def _dispatch(self, batch: list) -> None:
        """Decode the reader's entries, apply book events to the stream's shared book (once for
        all its bots), then hand every event to the stream's bots (a bot that is behind keeps
        only the newest book)."""
        subscribers = self.subscribers
        books = self.books
        queued, to_wake = self._queued, self._to_wake
        # A snapshot replaces the whole book: of several for one stream in this batch (the reader
        # catching up after a stall), only the newest is decoded, applied and handed to the bots,
        # which would keep only the newest anyway (a paper perpetual notes the mid of each skipped one
        # for its liquidation check); trades all go through, in order.
        newest: dict[str, int] = {}
        for i, (stream, raw, _published) in enumerate(batch):
            if raw.startswith(codec.SNAPSHOT_PREFIX):
                newest[stream] = i
        for i, (stream, raw, published) in enumerate(batch):
            runners = subscribers.get(stream)
            if not runners:
                continue
            if newest.get(stream, -1) > i and raw.startswith(codec.SNAPSHOT_PREFIX):
                mid2 = None
                for runner in runners:
                    runner.conflated += 1
                    paper = getattr(runner, "paper_perp", None)
                    if paper is not None:  # a paper perpetual's liquidation check sees this mark too
                        mid2 = codec.snapshot_mid2(raw) if mid2 is None else mid2
                        if mid2:
                            paper.marks.note(mid2)
                continue
            try:
                event = codec.decode(raw)
            except ValueError as exc:  # one bad entry: logged, the rest goes on
                self.book_errors += 1
                logger.warning("bad feed entry on %s: %s", stream, exc)
                continue
            if type(event) is not TradeTick:
                book = books.get(stream)
                if book is None:
                    book = books[stream] = OrderBook()
                try:
                    apply_to_book(book, event)
                except (SequenceGap, ValueError) as exc:  # bad entry: the next snapshot repairs it
                    self.book_errors += 1
                    logger.warning("feed book %s: %s", stream, exc)
                    continue
            item = (event, published)
            for runner in runners:
                runner.push_market(item)
                if runner not in queued:
                    queued.add(runner)
                    to_wake.append(runner)
        if to_wake:
            self._wake_batch()  # the first batch now, from the reader: one loop turn sooner
            if to_wake:
                self._waker_wake.set()

    def _wake_batch(self) -> None:
        to_wake, queued = self._to_wake, self._queued
        for _ in range(min(self.wake_batch, len(to_wake))):
            runner = to_wake.popleft()
            queued.discard(runner)
            runner.wake.set()

    async def _waker(self) -> None:
        """Wake the bots that have new market data ``wake_batch`` at a time, one batch per turn
        of the loop (the reader wakes the first batch itself). A book event makes every bot of its feed ready at once; woken together
        they would all run before anything else, and every bot in the middle of a cycle (its
        order rows or venue write answered) would wait behind all of them for each await. In
        batches, a cycle in flight waits for one batch at most."""
        to_wake = self._to_wake
        while True:
            await self._waker_wake.wait()
            self._waker_wake.clear()
            while to_wake:
                self._wake_batch()
                await asyncio.sleep(0)
