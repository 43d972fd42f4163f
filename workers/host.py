"""The asyncio host inside a Celery worker process: runs many bot loops and feed loops.

Exactly one host per OS process (started from the ``worker_ready`` signal in a worker that
consumes the ``bots`` or ``feeds`` queue, in a daemon thread with its own event loop). It
claims work through Redis leases (:mod:`workers.leases`): every second it looks at the wanted
bots and feeds (kept by the supervisor) and takes any whose lease is free, up to its capacity;
it renews all its leases every ttl/3. One stream reader per host fans market events out to the
bot loops (one XREAD for all streams in use), and one pub/sub subscription carries lifecycle
commands (``<prefix>:bot:<id>:control``). Database writes go to a child process
(:mod:`workers.dbproc`), so they never compete with the loop for the GIL.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import random
import socket
import struct
import sys
import threading
import time
import uuid
from collections import deque

import hiredis

try:  # the stream reader's XREAD loop in C (native/): the reader never needs the GIL
    import mm_streamio
except ImportError:  # not built: the pure-Python path (same results, more GIL waits)
    mm_streamio = None
from redis.exceptions import ResponseError

from mmsite.env import env_int
from trading.book import OrderBook, SequenceGap
from trading.events import TradeTick
from workers import codec, keys
from workers import metrics as host_metrics
from workers.books import apply_to_book
from workers.dbproc import DbProcess
from workers.leases import DEFAULT_TTL_MS, Lease, renew_many, renewal_client
from workers.redismux import RedisMux, connection_setup, pack

logger = logging.getLogger(__name__)
DESIRED_CHECK_S = 5.0  # how often each bot's desired state is read from the database
# The C reader holds off while the loop has not taken this much (a stuck loop must not make it
# queue without bound; the entries wait in Redis, capped there).
READER_MAX_QUEUED = env_int("MM_READER_MAX_QUEUED_BYTES", 64 << 20, minimum=1)
_host: Host | None = None
_STATUS_ENCODER = json.JSONEncoder(default=str)  # one encoder, not one per json.dumps call
_host_lock = threading.Lock()


class Host:
    """Bots and feeds of this process (see the module docstring)."""

    def __init__(
        self,
        *,
        run_bots: bool = True,
        run_feeds: bool = True,
        capacity: int | None = None,
        ttl_ms: int = DEFAULT_TTL_MS,
        redis_url: str | None = None,
    ) -> None:
        from django.conf import settings

        self.host_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.run_bots = run_bots
        self.run_feeds = run_feeds
        self.capacity = capacity if capacity is not None else settings.BOT_HOST_CAPACITY
        self.ttl_ms = ttl_ms
        self.redis_url = redis_url or settings.REDIS_URL
        self.redis = None
        self.redis_mux: RedisMux | None = None
        # Three writers (each a thread with its own connection) in one child process. Order rows
        # the loops wait for (before a place) get their own, so they never queue behind
        # telemetry; their later updates go through ``db`` after the row exists.
        self.dbproc = DbProcess(
            f"db-{os.getpid()}",
            {"db": {"linger_s": 0.05}, "orders": {"one_statement": True}, "setup": {}},
        )
        self.db = self.dbproc.writer("db")
        self.db_orders = self.dbproc.writer("orders")
        self.db_setup = self.dbproc.writer("setup")  # loading bots at take-over
        self.loop: asyncio.AbstractEventLoop | None = None
        self.bots: dict[int, object] = {}
        self.bot_tasks: dict[int, asyncio.Task] = {}
        self.feeds: dict[tuple[str, str], object] = {}
        self.feed_tasks: dict[tuple[str, str], asyncio.Task] = {}
        self.subscribers: dict[str, set] = {}  # stream key -> runners
        # One order book per feed stream, applied once here and read by every bot of the stream
        # (their engines and paper matching): see ``_dispatch``.
        self.books: dict[str, OrderBook] = {}
        self.book_errors = 0
        # Bots with new market data, woken a few per loop turn (``_waker``).
        self._to_wake: deque = deque()
        self._queued: set = set()
        self._waker_wake = asyncio.Event()
        self.wake_batch = int(os.environ.get("MM_WAKE_BATCH", "16"))
        self._streams_in_use: frozenset[str] = frozenset()
        self._reader_stop = threading.Event()
        self._inbox: list[list] = []  # reader batches not yet taken by the loop
        self._inbox_lock = threading.Lock()
        self._inbox_scheduled = False
        # The reader wakes the loop with a byte on this socket pair (the loop reads ``_wake_r``).
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        # The reader's XREAD loop in C (``mm_streamio.Pump``, built by the reader thread): it
        # queues whole replies, which the loop takes and parses (``_take_inbox``).
        self._pump = None
        self._reply_parser = hiredis.Reader(replyError=ResponseError)  # the loop's, for the pump's replies
        self.reader_realtime = False  # the reader thread runs SCHED_FIFO (``_reader_realtime``)
        self.reader_native = False  # the reader's XREAD loop is in C (``mm_streamio``)
        self.reader_held_off = 0  # times the C reader waited for the loop to take its replies
        # publish -> the XREAD reply holding the entry is whole in this process, queued for the
        # loop (the reader's transport: the feed's write, Redis, the reader's read).
        self.feed_latency_ns: deque[int] = deque(maxlen=20000)
        # The same split at the moment the reply reached the reader's socket (kernel receive
        # time): publish -> socket is the feed's write and Redis; socket -> whole is the reader
        # thread waking (and, on the Python path, getting the GIL back).
        self.feed_socket_ns: deque[int] = deque(maxlen=20000)
        self.reader_wakes: deque[tuple[int, int]] = deque(maxlen=20000)  # (socket ns, whole ns)
        # Of publish -> socket, the part before the reader had sent its XREAD (0: it was waiting).
        self.feed_unwaited_ns: deque[int] = deque(maxlen=20000)
        # publish -> the loop takes the entry (the transport above, then the wait for the loop
        # to finish what it was doing): what a bot can see at best.
        self.feed_taken_ns: deque[int] = deque(maxlen=20000)
        self.bot_latency_ns: deque[int] = deque(maxlen=20000)  # publish -> the bot starts on it
        self.order_row_wait_ns: deque[int] = deque(maxlen=20000)  # awaiting order rows before places
        self._wanted_feeds: set[str] = set()
        self._retry_after: dict[int, float] = {}
        self._statuses: dict[int, dict] = {}
        self._stop = asyncio.Event()
        self._thread: threading.Thread | None = None
        self._channel_layer = None
        self.started = threading.Event()

    # ----------------------------------------------------------------------------------------
    # Thread and loop
    # ----------------------------------------------------------------------------------------
    def start_thread(self) -> None:
        # A thread waiting for the GIL asks the holder to let go only after the switch interval
        # (Python's default 5 ms). With the C reader (``mm_streamio.Pump``) no thread of the host
        # waits for it on the hot path; the pure-Python reader does after each read, and so did
        # its C predecessor once per read, for which 0.2 ms gave Redis p99 at 500 bots 4.4 vs
        # 6.0 ms at 1 ms, quote cycles no slower (bench/bench_bots.py, 2026-11-21).
        sys.setswitchinterval(float(os.environ.get("MM_SWITCH_INTERVAL", "0.0002")))
        _tune_gc()
        self._thread = threading.Thread(target=self._thread_main, name="mm-host", daemon=True)
        self._thread.start()

    def _thread_main(self) -> None:
        profile_to = os.environ.get("MM_HOST_PROFILE")  # bench aid: cProfile the host's loop
        if not profile_to:
            asyncio.run(self.main())
            return
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
        try:
            asyncio.run(self.main())
        finally:
            profiler.disable()
            profiler.dump_stats(profile_to)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop from another thread: release leases (others take over at once) and exit."""
        if self.loop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout)
        self.dbproc.stop()

    async def main(self) -> None:
        import redis.asyncio as aioredis

        self.loop = asyncio.get_running_loop()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._stop = asyncio.Event()
        self._waker_wake = asyncio.Event()
        await self.dbproc.start()
        # A blocking pool: with hundreds of bot tasks, a call waits for a free connection
        # instead of failing when all are busy.
        pool = aioredis.BlockingConnectionPool.from_url(
            self.redis_url, max_connections=64, timeout=10, socket_timeout=5, socket_connect_timeout=3
        )
        self.redis = aioredis.Redis(connection_pool=pool)
        self.redis_block = aioredis.Redis.from_url(self.redis_url, socket_connect_timeout=3)
        # The bots' fenced venue writes: one pipelined connection shared by all (workers.redismux).
        self.redis_mux = RedisMux(self.redis_url)
        # Lease renewals have their own connection: they never wait behind busy bot loops.
        self.redis_lease = renewal_client(self.redis_url)
        tasks = [
            asyncio.create_task(self._guard(self._waker), name="waker"),
            asyncio.create_task(self._guard(self._claim_loop), name="claim"),
            asyncio.create_task(self._guard(self._renew_loop), name="renew"),
            asyncio.create_task(self._guard(self._control_loop), name="control"),
            asyncio.create_task(self._guard(self._status_loop), name="status"),
            asyncio.create_task(self._guard(self._desired_loop), name="desired"),
            asyncio.create_task(self._guard(host_metrics.sampler(self)), name="metrics"),
        ]
        self._reader_stop.clear()
        self.loop.add_reader(self._wake_r.fileno(), self._take_inbox)
        reader = threading.Thread(target=self._reader_thread_main, name="mm-host-reader", daemon=True)
        reader.start()
        self.started.set()
        await self._stop.wait()
        self._stop_reader()
        self.loop.remove_reader(self._wake_r.fileno())
        for t in tasks:
            t.cancel()
        for task in list(self.bot_tasks.values()) + list(self.feed_tasks.values()):
            task.cancel()
        await asyncio.gather(*self.bot_tasks.values(), *self.feed_tasks.values(), return_exceptions=True)
        for lease in [getattr(r, "lease", None) for r in list(self.bots.values()) + list(self.feeds.values())]:
            if lease is not None:
                await lease.release()
        await self.redis.hdel(keys.host_registry(), self.host_id)
        await self.dbproc.aclose()  # every write the bots handed over is in the database
        await self.redis.aclose()
        await self.redis_block.aclose()
        await self.redis_lease.aclose()
        await self.redis_mux.aclose()
        # The wake-up sockets are closed only once the reader has stopped writing to them (a
        # closed descriptor's number may be reused by another connection).
        await asyncio.to_thread(reader.join, 5)
        if not reader.is_alive():
            self._wake_r.close()
            self._wake_w.close()

    async def _guard(self, fn) -> None:
        """Keep a host task alive through Redis outages and bugs."""
        while not self._stop.is_set():
            try:
                await fn()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("host task %s failed: %s; restarting", fn.__name__, exc)
                await asyncio.sleep(0.5)

    # ----------------------------------------------------------------------------------------
    # Claiming
    # ----------------------------------------------------------------------------------------
    async def _claim_loop(self) -> None:
        while not self._stop.is_set():
            await self._claim_once()
            await asyncio.sleep(1.0)

    async def _claim_once(self) -> None:
        redis = self.redis
        self._wanted_feeds = {m.decode() for m in await redis.smembers(keys.feeds_wanted())}
        await redis.hset(
            keys.host_registry(),
            self.host_id,
            json.dumps({"pid": os.getpid(), "bots": len(self.bots), "feeds": len(self.feeds), "ts": time.time()}),
        )
        if self.run_feeds:
            for member in sorted(self._wanted_feeds):
                venue, _, symbol = member.partition("|")
                if (venue, symbol) in self.feeds:
                    continue
                lease = Lease(
                    redis, keys.feed_lease(venue, symbol), keys.feed_fence(venue, symbol), self.host_id, self.ttl_ms
                )
                if await lease.acquire():
                    self._start_feed(venue, symbol, lease)
        if self.run_bots:
            wanted = [int(b) for b in await redis.smembers(keys.bots_wanted())]
            now = time.monotonic()
            free = [b for b in wanted if b not in self.bots and self._retry_after.get(b, 0) <= now]
            if free:  # one round trip to skip the bots other hosts own (not one failed acquire each)
                leases = await redis.mget([keys.bot_lease(b) for b in free])
                free = [b for b, owner in zip(free, leases, strict=True) if owner is None]
            random.shuffle(free)
            if free and self.bots:
                # A busier host waits a little, so new bots spread over the live hosts.
                await asyncio.sleep(min(0.5, 0.002 * len(self.bots)))
            for bot_id in free:
                if len(self.bots) >= self.capacity:
                    break
                lease = Lease(redis, keys.bot_lease(bot_id), keys.bot_fence(bot_id), self.host_id, self.ttl_ms)
                if await lease.acquire():
                    self._start_bot(bot_id, lease)

    def _start_bot(self, bot_id: int, lease: Lease) -> None:
        from workers.botloop import BotRunner

        runner = BotRunner(self, bot_id, lease)
        self.bots[bot_id] = runner
        self.bot_tasks[bot_id] = asyncio.create_task(runner.run(), name=f"bot-{bot_id}")

    def _start_feed(self, venue: str, symbol: str, lease: Lease) -> None:
        from workers.feeds import FeedLoop

        loop = FeedLoop(self, venue, symbol, lease)
        self.feeds[(venue, symbol)] = loop
        self.feed_tasks[(venue, symbol)] = asyncio.create_task(loop.run(), name=f"feed-{venue}-{symbol}")

    def retry_later(self, bot_id: int, seconds: float) -> None:
        """Do not claim this bot again for a while (it failed to start here)."""
        self._retry_after[bot_id] = time.monotonic() + seconds

    def feed_wanted(self, venue: str, symbol: str) -> bool:
        return f"{venue}|{symbol}" in self._wanted_feeds

    def runner_done(self, runner) -> None:
        if self.bots.get(runner.bot_id) is runner:
            del self.bots[runner.bot_id]
            self.bot_tasks.pop(runner.bot_id, None)
        for subs in self.subscribers.values():
            subs.discard(runner)
        self._refresh_streams()
        asyncio.get_running_loop().create_task(runner.lease.release())

    def feed_done(self, feed) -> None:
        key = (feed.venue, feed.symbol)
        if self.feeds.get(key) is feed:
            del self.feeds[key]
            self.feed_tasks.pop(key, None)
        asyncio.get_running_loop().create_task(feed.lease.release())

    async def release_bot(self, bot_id: int, keep_wanted: bool = False) -> None:
        """A bot stopped here on purpose: no longer wanted (unless reloading), lease released."""
        if not keep_wanted:
            await self.redis.srem(keys.bots_wanted(), bot_id)
        runner = self.bots.get(bot_id)
        self._statuses.pop(bot_id, None)
        await self.redis.delete(keys.bot_status(bot_id))
        if runner is not None:
            await runner.lease.release()

    # ----------------------------------------------------------------------------------------
    # Leases
    # ----------------------------------------------------------------------------------------
    async def _renew_loop(self) -> None:
        due = 0.0
        while not self._stop.is_set():
            started = time.monotonic()
            if due and started - due > self.ttl_ms / 3000:
                # Leases expire in Redis a ttl after their last renewal: a renewal this late
                # means the loop was held (a bot that loses its lease here stops and is claimed
                # again), worth knowing when it happens.
                logger.warning("lease renewal ran %.1f s late: the host's loop was held", started - due)
            holders = list(self.bots.values()) + list(self.feeds.values())
            for start in range(0, len(holders), 500):
                chunk = holders[start : start + 500]
                sent = time.monotonic()
                await renew_many(self.redis_lease, [h.lease for h in chunk], self.ttl_ms)
                took = time.monotonic() - sent
                if took > self.ttl_ms / 3000:
                    logger.warning("renewing %d leases took %.1f s (answer read late or Redis slow)", len(chunk), took)
                for holder in chunk:
                    if not holder.lease.held:
                        logger.warning("lease %s lost: %s", holder.lease.key, holder.lease.lost_reason)
                        if hasattr(holder, "wake"):
                            holder.wake.set()  # the loop sees the lost lease at once and stops sending
            pause = max(0.05, self.ttl_ms / 3000 - (time.monotonic() - started))
            due = time.monotonic() + pause
            await asyncio.sleep(pause)

    # ----------------------------------------------------------------------------------------
    # Market data fan-out
    # ----------------------------------------------------------------------------------------
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
        in_use = frozenset(s for s, subs in self.subscribers.items() if subs)
        changed, self._streams_in_use = in_use != self._streams_in_use, in_use
        pump = self._pump
        if changed and pump is not None:  # its XREAD in flight ends within its BLOCK; then the new streams
            pump.interrupt()
        for stream, book in self.books.items():
            if stream not in self._streams_in_use:
                book.clear()  # no longer read: stale until the next subscriber's first snapshot

    def _stop_reader(self) -> None:
        self._reader_stop.set()
        pump = self._pump
        if pump is not None:
            pump.interrupt()

    def _reader_thread_main(self) -> None:
        """Blocking XREAD over every stream in use, on its own thread (so a busy event loop
        does not delay reading); hands the replies to the loop.

        Every moment this thread needs the GIL it competes with the loop, and every system call
        gives the GIL away: getting it back waits for the loop thread to reach a switch point
        (at least the switch interval, longer when the loop thread is not even running on a busy
        machine), and an entry published meanwhile waits too (the feed-to-bot latency,
        bench/bench_bots.py). So the reading is one call into C that keeps the GIL released
        while it repeats XREAD (``mm_streamio.Pump.run``: it notes each stream's last id itself,
        queues the whole replies and wakes the loop when the queue was empty); the loop parses
        them with hiredis (``_take_inbox``) and decodes the entries, skipping superseded
        snapshots. This thread returns to Python only to change the streams (``interrupt``),
        reconnect or stop. Without the extension the same steps run in Python, one read at a
        time (three GIL hand-offs per read)."""
        import redis

        self.reader_realtime = _reader_realtime()
        client = redis.Redis.from_url(self.redis_url, socket_connect_timeout=3, socket_timeout=10)
        stream_reader = _StreamSocket(self.redis_url)
        self.reader_native = stream_reader.native
        if not self.reader_native:
            logger.warning(
                "stream reader: the C reader (native/, mm_streamio) is %s; reading in Python (slower)",
                "not built" if mm_streamio is None else "turned off (MM_STREAMIO=0)",
            )
        else:
            self._pump = mm_streamio.Pump(self._wake_w.fileno(), max_queued_bytes=READER_MAX_QUEUED)
        ids: dict[str, bytes] = {}
        while not self._reader_stop.is_set():
            try:
                wanted = self._streams_in_use
                if not wanted:
                    time.sleep(0.05)
                    continue
                if self._pump is not None:
                    self._pump_streams(client, stream_reader, ids, wanted)
                else:
                    self._read_streams(client, stream_reader, ids, wanted)
            except Exception as exc:  # Redis restarting: retry
                logger.warning("stream reader: %s; retrying", exc)
                stream_reader.close()
                time.sleep(0.5)
        stream_reader.close()
        client.close()

    def _pump_streams(self, client, stream_reader: _StreamSocket, ids: dict[str, bytes], wanted) -> None:
        """Read ``wanted`` with the C pump until interrupted (streams changed, stop) or failed;
        ``ids`` carries each stream's position from one run to the next (updated on the way out)."""
        pump = self._pump
        self._reader_sync_ids(client, ids, wanted)
        pump.set_streams([(s.encode(), ids[s]) for s in wanted])
        try:
            pump.run(stream_reader.connected().fileno(), 1000, 200, 10_000)
        finally:  # failed too: the positions of every reply queued so far
            ids.update((name.decode(), last) for name, last in pump.streams())

    def _read_streams(self, client, stream_reader: _StreamSocket, ids: dict[str, bytes], wanted) -> None:
        """One XREAD of ``wanted`` in Python, handed over to the loop."""
        self._reader_sync_ids(client, ids, wanted)
        sent = time.time_ns()
        result = stream_reader.xread(ids, count=1000, block_ms=200)
        if not result:
            return
        now = time.time_ns()
        batch = self._reply_batch(result, sent, stream_reader.arrived_ns or now, now, ids)
        if batch:
            self._hand_over(batch)

    def _reply_batch(self, reply, sent: int, arrived: int, now: int, ids: dict | None = None) -> list:
        """The (stream, event bytes, publish ns) entries of one XREAD reply (RESP2 list or
        RESP3 map), with their latency figures; ``ids`` (if given) gets each stream's last id."""
        self.reader_wakes.append((arrived, now))
        batch = []
        latency, to_socket, unwaited = self.feed_latency_ns, self.feed_socket_ns, self.feed_unwaited_ns
        for stream, entries in reply.items() if isinstance(reply, dict) else reply:
            stream = stream.decode()
            for entry_id, fields in entries:
                if ids is not None:
                    ids[stream] = entry_id
                raw, published = _entry_fields(fields or [])
                if raw is None:
                    logger.warning("feed entry %s on %s has no event", entry_id, stream)
                    continue
                published = published or now
                latency.append(now - published)
                to_socket.append(arrived - published)
                unwaited.append(sent - published if published < sent else 0)
                batch.append((stream, raw, published))
        return batch

    @staticmethod
    def _reader_sync_ids(client, ids: dict[str, bytes], wanted: frozenset[str]) -> None:
        for s in list(ids):
            if s not in wanted:
                del ids[s]
        for s in wanted:
            if s not in ids:  # start at the newest entry: nothing between reads is skipped
                info = client.xinfo_stream(s) if client.exists(s) else None
                ids[s] = info["last-generated-id"] if info else b"0-0"

    def _hand_over(self, batch: list) -> bool:
        """Queue a reader batch for the loop; wake the loop only if it has taken every earlier
        batch (otherwise the wake-up already sent takes this one too). False: the loop closed."""
        loop = self.loop
        if loop is None or loop.is_closed():
            return False
        with self._inbox_lock:
            self._inbox.append(batch)
            if self._inbox_scheduled:
                return True
            self._inbox_scheduled = True
        self._wake_loop()
        return True

    def _wake_loop(self) -> None:
        try:
            _send_wake(self._wake_w.fileno())
        except OSError as exc:  # the host is shutting down
            logger.debug("waking the host loop: %s", exc)

    def _take_inbox(self) -> None:
        """On the loop, when the wake-up socket is readable: drain it first (a byte written
        after this belongs to a batch taken now or later; either way no wake-up is lost), then
        dispatch every batch in order."""
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass
        with self._inbox_lock:
            batches, self._inbox = self._inbox, []
            self._inbox_scheduled = False
        pump = self._pump
        if pump is not None:
            for data, sent, arrived, received in pump.take():
                batch = self._parse_reply(data, sent, arrived or received, received)
                if batch:
                    batches.append(batch)
            held_off = pump.counts()[2]
            if held_off != self.reader_held_off:  # the loop was stuck or far behind
                logger.warning(
                    "stream reader waited %d time(s) for the loop to take %d MiB of replies; "
                    "the entries meanwhile waited in Redis",
                    held_off - self.reader_held_off,
                    READER_MAX_QUEUED >> 20,
                )
                self.reader_held_off = held_off
        taken = time.time_ns()
        waits = self.feed_taken_ns
        for batch in batches:
            for _stream, _raw, published in batch:
                waits.append(taken - published)
        for batch in batches:
            try:
                self._dispatch(batch)
            except Exception:  # a bug on one batch must not drop the batches behind it
                self.book_errors += 1
                logger.exception("feed batch of %d entries not dispatched", len(batch))

    def _parse_reply(self, data: bytes, sent: int, arrived: int, received: int) -> list:
        """The batch of one XREAD reply the pump queued ([] if it cannot be parsed: counted,
        logged, and the entries behind it go on; the pump already checked its shape)."""
        parser = self._reply_parser
        try:
            parser.feed(data)
            reply = parser.gets()
            if reply is False or parser.has_data():
                raise ValueError(f"{len(data)} bytes are not one whole reply")
            return self._reply_batch(reply, sent, arrived, received)
        except Exception as exc:
            self.book_errors += 1
            self._reply_parser = hiredis.Reader(replyError=ResponseError)
            logger.warning("feed reply of %d bytes not parsed: %s", len(data), exc)
            return []

    def _dispatch(self, batch: list) -> None:
        """Decode the reader's entries, apply book events to the stream's shared book (once for
        all its bots), then hand every event to the stream's bots (a bot that is behind keeps
        only the newest book)."""
        subscribers = self.subscribers
        books = self.books
        queued, to_wake = self._queued, self._to_wake
        # A snapshot replaces the whole book: of several for one stream in this batch (the reader
        # catching up after a stall), only the newest is decoded, applied and handed to the bots,
        # which would keep only the newest anyway; trades all go through, in order.
        newest: dict[str, int] = {}
        for i, (stream, raw, _published) in enumerate(batch):
            if raw.startswith(codec.SNAPSHOT_PREFIX):
                newest[stream] = i
        for i, (stream, raw, published) in enumerate(batch):
            runners = subscribers.get(stream)
            if not runners:
                continue
            if newest.get(stream, -1) > i and raw.startswith(codec.SNAPSHOT_PREFIX):
                for runner in runners:
                    runner.conflated += 1
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
            self._waker_wake.set()

    async def _waker(self) -> None:
        """Wake the bots that have new market data ``wake_batch`` at a time, one batch per turn
        of the loop. A book event makes every bot of its feed ready at once; woken together
        they would all run before anything else, and every bot in the middle of a cycle (its
        order rows or venue write answered) would wait behind all of them for each await. In
        batches, a cycle in flight waits for one batch at most."""
        to_wake, queued = self._to_wake, self._queued
        while True:
            await self._waker_wake.wait()
            self._waker_wake.clear()
            while to_wake:
                for _ in range(min(self.wake_batch, len(to_wake))):
                    runner = to_wake.popleft()
                    queued.discard(runner)
                    runner.wake.set()
                await asyncio.sleep(0)

    # ----------------------------------------------------------------------------------------
    # Control channel
    # ----------------------------------------------------------------------------------------
    async def _control_loop(self) -> None:
        pubsub = self.redis_block.pubsub()
        pattern = f"{keys.prefix()}:bot:*:control"
        await pubsub.psubscribe(pattern)
        try:
            while not self._stop.is_set():
                msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if not msg:
                    continue
                channel = msg["channel"].decode()
                try:
                    bot_id = int(channel.split(":")[-2])
                except ValueError:
                    continue
                runner = self.bots.get(bot_id)
                if runner is not None:
                    runner.push_control(msg["data"].decode())
        finally:
            await pubsub.aclose()

    async def _desired_loop(self) -> None:
        """Control messages are pub/sub (may be lost): every ``DESIRED_CHECK_S`` the host reads
        the desired state of all its bots in one query (and their risk-pause flags in one MGET)
        and lets each bot compare (:meth:`BotRunner.check_desired_state`)."""
        from workers import records

        while not self._stop.is_set():
            await asyncio.sleep(DESIRED_CHECK_S * (0.9 + 0.2 * random.random()))
            ids = list(self.bots)
            if not ids:
                continue
            try:
                states = await self.db_setup.call(records.bots_desired_states, ids)
                paused = await self.redis.mget([keys.risk_pause(b) for b in ids])
            except Exception as exc:
                logger.info("desired states not read (%s)", exc)
                continue
            for bot_id, risk in zip(ids, paused, strict=True):
                runner = self.bots.get(bot_id)
                if runner is not None and bot_id in states:
                    desired, kill = states[bot_id]
                    runner.check_desired_state(desired, kill, risk is not None)

    # ----------------------------------------------------------------------------------------
    # Publishing for the UI
    # ----------------------------------------------------------------------------------------
    def set_bot_status(self, bot_id: int, status: dict) -> None:
        """Queue a bot's live status (encoded now, at the bot's own timer, so the cost is spread
        over the second); :meth:`_status_loop` writes them in chunks on the shared connection."""
        self._statuses[bot_id] = (status, _STATUS_ENCODER.encode(status))

    async def _status_loop(self) -> None:
        while not self._stop.is_set():
            await asyncio.sleep(0.5)
            statuses, self._statuses = self._statuses, {}
            items = list(statuses.items())
            # In chunks, giving the loop back in between: hundreds of statuses at once held
            # every bot of the host for 20-30 ms (bench/bench_bots.py).
            # Through the shared connection (RESP packed in C): through a redis-py pipeline the
            # statuses had cost ~7 % of a 250-bot host's loop (cProfile, bench/bench_bots.py).
            for start in range(0, len(items), 50):
                chunk = items[start : start + 50]
                await self.redis_mux.execute(
                    [("SET", keys.bot_status(bot_id), encoded, "EX", 30) for bot_id, (_status, encoded) in chunk]
                )
                for bot_id, (status, _encoded) in chunk:
                    await self.group_send(keys.group_name("bot", str(bot_id)), {"type": "bot.update", "data": status})

    def publish_bot(self, bot_id: int, data: dict) -> None:
        asyncio.get_running_loop().create_task(
            self.group_send(keys.group_name("bot", str(bot_id)), {"type": "bot.update", "data": data})
        )

    async def group_send(self, group: str, message: dict) -> None:
        if os.environ.get("MM_NO_CHANNEL_LAYER"):
            return
        try:
            if self._channel_layer is None:
                from channels.layers import get_channel_layer

                self._channel_layer = get_channel_layer()
            if self._channel_layer is not None:
                await self._channel_layer.group_send(group, message)
        except Exception as exc:
            logger.debug("group_send %s failed: %s", group, exc)

    # ----------------------------------------------------------------------------------------
    def stats(self) -> dict:
        """Latency figures (safe to call from another thread: copies are taken in C)."""
        runners = list(self.bots.values())
        cycles = sorted(x for r in runners for x in list(r.cycle_ns))
        lat = sorted(self.feed_latency_ns)
        e2e = sorted(self.bot_latency_ns)
        sending = sorted(x for r in runners for x in list(r.send_cycle_ns))
        rows = sorted(self.order_row_wait_ns)
        to_socket = sorted(self.feed_socket_ns)
        wakes = sorted(now - arrived for arrived, now in list(self.reader_wakes))
        return {
            "order_rows_p50_ms": _pct(rows, 0.5) / 1e6,
            "order_rows_p99_ms": _pct(rows, 0.99) / 1e6,
            "send_cycle_p99_ms": _pct(sending, 0.99) / 1e6,
            "send_cycles": len(sending),
            "feed_to_engine_p50_ms": _pct(e2e, 0.5) / 1e6,
            "feed_to_engine_p99_ms": _pct(e2e, 0.99) / 1e6,
            "bots": len(self.bots),
            "feeds": len(self.feeds),
            "cycle_p99_ms": _pct(cycles, 0.99) / 1e6,
            "cycle_p50_ms": _pct(cycles, 0.5) / 1e6,
            "feed_to_bot_p99_ms": _pct(lat, 0.99) / 1e6,
            "feed_to_bot_p50_ms": _pct(lat, 0.5) / 1e6,
            "feed_to_socket_p99_ms": _pct(to_socket, 0.99) / 1e6,
            "feed_taken_p99_ms": _pct(sorted(self.feed_taken_ns), 0.99) / 1e6,
            "reader_wake_p99_ms": _pct(wakes, 0.99) / 1e6,
            "reader_native": self.reader_native,
            "reader_realtime": self.reader_realtime,
            "reader_held_off": self.reader_held_off,
        }


def _entry_fields(fields: list) -> tuple[bytes | None, int]:
    """(event bytes, publish time ns or 0) of a stream entry's flat field list."""
    raw, published = None, 0
    for i in range(0, len(fields) - 1, 2):
        name = fields[i]
        if name == b"e":
            raw = fields[i + 1]
        elif name == b"p":
            try:
                published = int(fields[i + 1])
            except ValueError:
                published = 0
    return raw, published


SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux; SCM_TIMESTAMPNS has the same value
_TIMESTAMP_SPACE = socket.CMSG_SPACE(16)  # struct timespec


def _send_wake(fd: int) -> None:
    """One wake-up byte to the host loop's socket pair; a full buffer means one is waiting."""
    try:
        os.write(fd, b"\0")
    except (BlockingIOError, InterruptedError):
        pass


class _StreamSocket:
    """A blocking Redis connection for the stream reader's XREAD only: RESP written directly and
    parsed by hiredis (no redis-py layers on the hot path); reconnects on the next call after
    an error."""

    def __init__(self, url: str) -> None:
        from redis.connection import parse_url

        self.options = parse_url(url)
        self.sock: socket.socket | None = None
        self.reader = None
        self.arrived_ns = 0  # kernel receive time (ns since the epoch) of the last reply's first bytes
        # mm_streamio when it is built; MM_STREAMIO=0 (or tests) takes the pure-Python path
        self.native = mm_streamio is not None and os.environ.get("MM_STREAMIO", "1") != "0"

    def _connect(self) -> None:
        opts = self.options
        self.sock = socket.create_connection((opts.get("host", "127.0.0.1"), int(opts.get("port", 6379))), timeout=3)
        self.sock.settimeout(10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:  # the kernel stamps each received packet (Linux): see ``arrived_ns``
            self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        except OSError:  # no stamps: ``arrived_ns`` stays 0 and the reader uses its own clock
            pass
        self.reader = hiredis.Reader(replyError=ResponseError)
        for command in connection_setup(opts):
            self._call(command)

    def _call(self, command: tuple):
        self.sock.sendall(pack(command))
        return self.read_reply()

    def connected(self) -> socket.socket:
        """The socket, connected (and set up) if it was not."""
        if self.sock is None:
            self._connect()
        return self.sock

    def xread(self, ids: dict[str, bytes], *, count: int, block_ms: int):
        """XREAD the streams from ``ids`` (the pure-Python path; ``mm_streamio.Pump`` is the C one)."""
        self.connected()
        streams = list(ids)
        return self._call(("XREAD", "COUNT", count, "BLOCK", block_ms, "STREAMS", *streams, *(ids[s] for s in streams)))

    def read_reply(self):
        """The reply to the oldest request sent; ``arrived_ns`` is when its first bytes came."""
        self.arrived_ns = 0
        while True:
            reply = self.reader.gets()
            if reply is not False:
                if isinstance(reply, ResponseError):
                    raise reply
                return reply
            data, ancillary, _flags, _addr = self.sock.recvmsg(262144, _TIMESTAMP_SPACE)
            if not data:
                raise ConnectionError("Redis closed the stream reader's connection")
            if not self.arrived_ns:
                for level, kind, stamp in ancillary:
                    if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(stamp) >= 16:
                        sec, nsec = struct.unpack_from("qq", stamp)
                        self.arrived_ns = sec * 1_000_000_000 + nsec
            self.reader.feed(data)

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
        self.sock = None


def _reader_realtime() -> bool:
    """Run the calling thread (the stream reader) at real-time priority 1 (SCHED_FIFO), if allowed.

    On a busy 2-core machine a woken reader waited for a core behind the bots' loops, the
    database and Redis; at real-time priority it runs as soon as its reply arrives (bench at 500
    bots: Redis p99 ~6-9 ms -> ~4-6 ms, docs/workers.md). It is safe: the thread blocks in the C
    XREAD loop, which spends a few microseconds of CPU per read (noting the ids, queueing the
    reply, waking the loop); the kernel's real-time throttling caps it anyway.
    Needs root, CAP_SYS_NICE or ``ulimit -r 1`` (docker/compose.yml sets ``rtprio: 1``);
    without them the reader runs at normal priority. ``MM_READER_REALTIME=0`` turns it off."""
    if os.environ.get("MM_READER_REALTIME", "1") == "0":
        return False
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
    except (OSError, AttributeError) as exc:  # not permitted here, or not Linux
        logger.info(
            "stream reader: real-time priority not available (%s); it runs at normal priority "
            "(allow it with ulimit -r 1, compose's ulimits rtprio: 1, or CAP_SYS_NICE)",
            exc,
        )
        return False
    return True


def _tune_gc() -> None:
    """The cyclic garbage collector stops every thread of the process while it runs: with the
    default thresholds a host with hundreds of bots collected its young objects ~20 times a
    second and the whole heap (Django included) every few seconds, each full pass holding every
    loop for 100-350 ms (measured with bench/bench_bots.py). Objects alive now (modules, Django,
    settings) are moved out of the collector's sight (``gc.freeze``) and collections run less
    often (``MM_GC_THRESHOLD``, default 50000,20,100); nearly all garbage here is freed by
    reference counting anyway (``MM_GC_THRESHOLD=`` keeps Python's defaults)."""
    spec = os.environ.get("MM_GC_THRESHOLD", "50000,20,100")
    if not spec:
        return
    gc.freeze()
    gc.set_threshold(*(int(x) for x in spec.split(",")))


def _pct(values: list[int], q: float) -> float:
    if not values:
        return 0.0
    return float(values[min(len(values) - 1, int(q * len(values)))])


def start_host(*, run_bots: bool, run_feeds: bool) -> Host:
    """Start this process's host (once; later calls return the same host)."""
    global _host
    with _host_lock:
        if _host is None:
            _host = Host(run_bots=run_bots, run_feeds=run_feeds)
            _host.start_thread()
        return _host


def stop_host() -> None:
    global _host
    with _host_lock:
        if _host is not None:
            _host.stop()
            _host = None
