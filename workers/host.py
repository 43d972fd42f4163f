"""The asyncio host inside a Celery worker process: runs many bot loops and feed loops.

Exactly one host per OS process (started by the worker bootstep :class:`workers.hosting.HostStep` in a
worker that consumes the ``bots`` or ``feeds`` queue, in a daemon thread with its own event loop). It
claims work through Redis leases (:mod:`workers.leases`): every second it looks at the wanted
bots and feeds (kept by the supervisor) and takes any whose lease is free, up to its capacity;
it renews all its leases every ttl/3. One stream reader per host fans market events out to the
bot loops (one XREAD for all streams in use), and one pub/sub subscription carries lifecycle
commands (``<prefix>:bot:<id>:control``). Redis is reached through redis-py's asyncio client
(hiredis parses the replies); database writes go to writer threads (:mod:`workers.dbwriter`).
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import random
import socket
import threading
import time
import uuid
from collections import deque

import redis.asyncio as aioredis

from mmsite import env
from workers import keys
from workers import metrics as host_metrics
from workers.dbwriter import AsyncWriter, DbWriter
from workers.fanout import MarketFanout
from workers.leases import DEFAULT_TTL_MS, Lease, renew_many, renewal_client
from workers.redis_conn import LoopConnection

logger = logging.getLogger(__name__)
DESIRED_CHECK_S = 5.0  # how often each bot's desired state is read from the database
_host: Host | None = None
_STATUS_ENCODER = json.JSONEncoder(default=str)  # one encoder, not one per json.dumps call
_host_lock = threading.Lock()


class Host(MarketFanout):
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
        # Three writers, each a thread with its own connection. Order rows the loops wait for
        # (before a live place) get their own, so they never queue behind telemetry; their later
        # updates go through ``db`` after the row exists.
        self.db = AsyncWriter(DbWriter("mm-db", linger_s=0.05, on_refused=self._on_refused))
        self.db_orders = AsyncWriter(DbWriter("mm-db-orders", one_statement=True, on_refused=self._on_refused))
        self.db_setup = AsyncWriter(DbWriter("mm-db-setup"))  # loading bots at take-over
        self.loop: asyncio.AbstractEventLoop | None = None
        self.bots: dict[int, object] = {}
        self.bot_tasks: dict[int, asyncio.Task] = {}
        self.feeds: dict[tuple[str, str], object] = {}
        self.feed_tasks: dict[tuple[str, str], asyncio.Task] = {}
        self._init_fanout()
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
        _tune_gc()
        self._thread = threading.Thread(target=self._thread_main, name="mm-host", daemon=True)
        self._thread.start()

    def _thread_main(self) -> None:
        profile_to = env.host_profile_path()  # bench aid: cProfile the host's loop
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
        self.drain_writers(timeout)

    def drain_writers(self, timeout: float | None = None) -> None:
        """Finish every write handed over (retried until the database takes it), then end the
        writer threads."""
        for writer in (self.db, self.db_orders, self.db_setup):
            writer.drain(timeout)

    def _on_refused(self, owner: int | None, fn, row, exc: BaseException) -> None:
        """A writer thread: the database refused a row of bot ``owner`` for good. The bot goes
        to ``error`` with the value named (:meth:`BotRunner.writes_refused`); the other bots'
        rows were written (:mod:`workers.dbwriter`)."""
        if owner is None or self.loop is None or self.loop.is_closed():
            return
        describe = getattr(fn, "describe", None)
        what = describe(row) if describe is not None else fn.__name__
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        reason = f"the database refused its {what}: {first_line}"
        try:
            self.loop.call_soon_threadsafe(self._writes_refused, owner, reason)
        except RuntimeError:  # the loop closed meanwhile: the next owner meets the same row
            logger.warning("bot %s: %s (not reported: the host is stopping)", owner, reason)

    def _writes_refused(self, bot_id: int, reason: str) -> None:
        runner = self.bots.get(bot_id)
        if runner is not None:
            runner.writes_refused(reason)
            return
        from apps.bots.services import bot_events_record, bot_state_set

        self.db.submit(bot_events_record, [(bot_id, time.time_ns(), "error", "write_refused", reason, None)])
        self.db.submit(bot_state_set, bot_id, "error", reason)

    async def main(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._waker_wake = asyncio.Event()
        # A blocking pool: with hundreds of bot tasks, a call waits for a free connection
        # instead of failing when all are busy.
        pool = aioredis.BlockingConnectionPool.from_url(
            self.redis_url,
            max_connections=64,
            timeout=10,
            socket_timeout=5,
            socket_connect_timeout=3,
            connection_class=LoopConnection,
        )
        self.redis = aioredis.Redis(connection_pool=pool)
        self.redis_block = aioredis.Redis.from_url(self.redis_url, socket_connect_timeout=3)
        # The stream reader's XREADs block up to 200 ms: a connection of their own.
        self.redis_stream = aioredis.Redis.from_url(
            self.redis_url,
            single_connection_client=True,
            socket_connect_timeout=3,
            socket_timeout=10,
            connection_class=LoopConnection,
        )
        # Lease renewals have their own connection: they never wait behind busy bot loops.
        self.redis_lease = renewal_client(self.redis_url)
        tasks = [
            asyncio.create_task(self._guard(self._waker), name="waker"),
            asyncio.create_task(self._guard(self._read_streams), name="reader"),
            asyncio.create_task(self._guard(self._claim_loop), name="claim"),
            asyncio.create_task(self._guard(self._renew_loop), name="renew"),
            asyncio.create_task(self._guard(self._control_loop), name="control"),
            asyncio.create_task(self._guard(self._status_loop), name="status"),
            asyncio.create_task(self._guard(self._desired_loop), name="desired"),
            asyncio.create_task(self._guard(host_metrics.sampler(self)), name="metrics"),
        ]
        self.started.set()
        await self._stop.wait()
        for t in tasks:
            t.cancel()
        for task in list(self.bot_tasks.values()) + list(self.feed_tasks.values()):
            task.cancel()
        await asyncio.gather(*self.bot_tasks.values(), *self.feed_tasks.values(), return_exceptions=True)
        for lease in [getattr(r, "lease", None) for r in list(self.bots.values()) + list(self.feeds.values())]:
            if lease is not None:
                await lease.release()
        await self.redis.hdel(keys.host_registry(), self.host_id)
        await asyncio.to_thread(self.drain_writers)  # every write the bots handed over is in the database
        await self.redis.aclose()
        await self.redis_block.aclose()
        await self.redis_lease.aclose()
        await self.redis_stream.aclose()

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
        the desired state of all its bots, with their accounts' kill switches and the risk
        sweep's pauses, in one query and lets each bot compare
        (:meth:`BotRunner.check_desired_state`)."""
        from workers import records

        while not self._stop.is_set():
            await asyncio.sleep(DESIRED_CHECK_S * (0.9 + 0.2 * random.random()))
            ids = list(self.bots)
            if not ids:
                continue
            try:
                states = await self.db_setup.call(records.bots_desired_states, ids)
            except Exception as exc:
                logger.info("desired states not read (%s)", exc)
                continue
            for bot_id, (desired, kill, risk_paused) in states.items():
                runner = self.bots.get(bot_id)
                if runner is not None:
                    runner.check_desired_state(desired, kill, risk_paused)

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
            for start in range(0, len(items), 50):
                chunk = items[start : start + 50]
                pipe = self.redis.pipeline(transaction=False)
                for bot_id, (_status, encoded) in chunk:
                    pipe.set(keys.bot_status(bot_id), encoded, ex=30)
                await pipe.execute()
                for bot_id, (status, _encoded) in chunk:
                    await self.group_send(keys.group_name("bot", str(bot_id)), {"type": "bot.update", "data": status})

    def publish_bot(self, bot_id: int, data: dict) -> None:
        asyncio.get_running_loop().create_task(
            self.group_send(keys.group_name("bot", str(bot_id)), {"type": "bot.update", "data": data})
        )

    async def group_send(self, group: str, message: dict) -> None:
        if env.channel_layer_disabled():
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
        """Latency figures (safe to call from another thread: deques are copied first)."""
        runners = list(self.bots.values())
        cycles = sorted(x for r in runners for x in list(r.cycle_ns))
        lat = sorted(self.feed_latency_ns)
        e2e = sorted(self.bot_latency_ns)
        sending = sorted(x for r in runners for x in list(r.send_cycle_ns))
        rows = sorted(self.order_row_wait_ns)
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
        }


def _tune_gc() -> None:
    """The cyclic garbage collector stops every thread of the process while it runs: with the
    default thresholds a host with hundreds of bots collected its young objects ~20 times a
    second and the whole heap (Django included) every few seconds, each full pass holding every
    loop for 100-350 ms (measured with bench/bench_bots.py). Objects alive now (modules, Django,
    settings) are moved out of the collector's sight (``gc.freeze``) and collections run less
    often (``MM_GC_THRESHOLD``, default 50000,20,100); nearly all garbage here is freed by
    reference counting anyway (``MM_GC_THRESHOLD=default`` keeps Python's defaults)."""
    threshold = env.host_gc_threshold()
    if threshold is None:
        return
    gc.freeze()
    gc.set_threshold(*threshold)


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
