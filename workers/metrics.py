"""Prometheus metrics of the bot hosts: bots, feeds, the host itself (docs/metrics.md).

Most figures are read from the host's objects by :func:`sampler` (one host task: bots owned,
loop lag and feeds every second; per bot position / PnL / fees / quoting / placed orders /
lease renewals / take-overs every ``BOT_EVERY`` seconds), so the bot and feed loops carry only a
few one-line hooks for what happens between samples: :func:`order_event` (fills, cancels,
rejects), :func:`requote` and :func:`order_entry` (latency histograms), :func:`feed_message` and
:func:`feed_resync`. The hooks only note in memory (an append or an addition); the sampler writes
(a metric write costs microseconds: a lock and the memory-mapped file). Bot labels are bounded:
bot id, strategy, venue, market.
"""

from __future__ import annotations

import asyncio
import time
from bisect import bisect_left

from prometheus_client import Counter, Gauge, Histogram

from apps.core.metrics import process_started
from trading.events import OrderCancelled, OrderFilled, OrderRejected
from trading.instruments import Side

BOT = ("bot", "strategy", "venue", "market")
# Bots are sampled every BOT_EVERY seconds, SAMPLE_CHUNK per turn of the host's loop: about ten
# metric writes per bot, each a few microseconds (a lock and the memory-mapped file).
BOT_EVERY = 5
SAMPLE_CHUNK = 10
FEED = ("venue", "market")
FAST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)

ORDERS_PLACED = Counter("mm_bot_orders_placed_total", "Orders sent to the venue", BOT)
ORDERS_CANCELLED = Counter("mm_bot_orders_cancelled_total", "Orders the venue confirmed cancelled", BOT)
ORDERS_REJECTED = Counter("mm_bot_orders_rejected_total", "Orders or cancels the venue refused", BOT)
FILLS = Counter("mm_bot_fills_total", "Fills of the bot's orders", BOT)
POSITION = Gauge("mm_bot_position", "Position in base units", BOT, multiprocess_mode="mostrecent")
REALIZED = Gauge("mm_bot_realized_pnl", "Realized PnL, quote currency", BOT, multiprocess_mode="mostrecent")
UNREALIZED = Gauge(
    "mm_bot_unrealized_pnl", "Unrealized PnL at mid, quote currency", BOT, multiprocess_mode="mostrecent"
)
FEES = Gauge("mm_bot_fees", "Fees paid since start, quote currency", BOT, multiprocess_mode="mostrecent")
RUNNING = Gauge("mm_bot_running", "1 while the bot's loop is running (not paused)", BOT, multiprocess_mode="mostrecent")
QUOTING = Gauge("mm_bot_quoting", "1 while the bot has a bid and an ask working", BOT, multiprocess_mode="mostrecent")
RUNNING_SECONDS = Counter("mm_bot_running_seconds_total", "Seconds the bot's loop ran (not paused)", BOT)
QUOTING_SECONDS = Counter("mm_bot_quoting_seconds_total", "Seconds with a bid and an ask working", BOT)
REQUOTE = Histogram(
    "mm_bot_requote_latency_seconds", "Bot cycles that sent orders: event taken to venue answer", BOT,
    buckets=FAST_BUCKETS,
)  # fmt: skip
ORDER_ENTRY = Histogram(
    "mm_bot_order_entry_latency_seconds", "Sending orders to the venue until it answered", BOT, buckets=FAST_BUCKETS
)
LEASE_RENEWALS = Counter("mm_bot_lease_renewals_total", "Lease renewals of the bot by its owner", BOT)
TAKEOVERS = Counter("mm_bot_takeovers_total", "Times a host took the bot over (started it as its owner)", BOT)

FEED_MESSAGES = Counter("mm_feed_messages_total", "Market data events received", FEED)
FEED_PUBLISHED = Counter("mm_feed_published_total", "Entries written to the feed's stream for bots", FEED)
FEED_RESYNCS = Counter("mm_feed_resyncs_total", "Sequence gaps: the book resynchronises", FEED)
FEED_ERRORS = Counter("mm_feed_errors_total", "Source failures (rebuilt with backoff)", FEED)
FEED_STALENESS = Gauge(
    "mm_feed_staleness_seconds", "Seconds since the feed's last event", FEED, multiprocess_mode="livemostrecent"
)
FEED_SYNCED = Gauge(
    "mm_feed_book_synced", "1 when the feed's book is live and in sequence", FEED, multiprocess_mode="livemostrecent"
)

HOST = ("host",)
HOST_BOTS = Gauge("mm_host_bots", "Bots owned by the host", HOST, multiprocess_mode="livemostrecent")
HOST_FEEDS = Gauge("mm_host_feeds", "Feeds owned by the host", HOST, multiprocess_mode="livemostrecent")
LOOP_LAG = Gauge(
    "mm_host_loop_lag_seconds", "Largest event-loop lag over the last second", HOST, multiprocess_mode="livemostrecent"
)
LEASES_LOST = Counter("mm_leases_lost_total", "Leases found lost (taken over or expired)", ["kind"])
LEASE_ROUNDS_FAILED = Counter("mm_lease_renewal_failures_total", "Lease renewal rounds that failed (Redis)")
DEADMAN_ARMS = Counter("mm_deadman_arms_total", "Exchange countdown cancel-all (re)armed by live bots")
DEADMAN_ARM_FAILURES = Counter("mm_deadman_arm_failures_total", "Countdown re-arms the exchange refused or missed")
DEADMAN_FALLBACK_CANCELS = Counter(
    "mm_deadman_fallback_cancels_total", "Orders a host cancelled itself: lease unconfirmable, venue without countdown"
)
for _kind in ("bot", "feed"):
    LEASES_LOST.labels(_kind)


class BotSeries:
    """One bot's metric children, bound once (a ``labels()`` lookup per event would cost more
    than the write) and kept on the runner (``runner._metric_series``)."""

    __slots__ = (
        "cancelled", "entry", "entry_pending", "events_pending", "fees", "fills", "placed", "position", "quoting",
        "quoting_s", "realized", "rejected", "renewals", "requote", "requote_pending", "running", "running_s",
        "takeovers", "unrealized",
    )  # fmt: skip

    def __init__(self, labels: tuple[str, str, str, str]) -> None:
        self.placed, self.cancelled = ORDERS_PLACED.labels(*labels), ORDERS_CANCELLED.labels(*labels)
        self.rejected, self.fills = ORDERS_REJECTED.labels(*labels), FILLS.labels(*labels)
        self.position, self.realized = POSITION.labels(*labels), REALIZED.labels(*labels)
        self.unrealized, self.fees = UNREALIZED.labels(*labels), FEES.labels(*labels)
        self.running, self.quoting = RUNNING.labels(*labels), QUOTING.labels(*labels)
        self.running_s, self.quoting_s = RUNNING_SECONDS.labels(*labels), QUOTING_SECONDS.labels(*labels)
        self.requote, self.entry = REQUOTE.labels(*labels), ORDER_ENTRY.labels(*labels)
        self.renewals, self.takeovers = LEASE_RENEWALS.labels(*labels), TAKEOVERS.labels(*labels)
        # What the loop's hooks noted since the last flush: a metric write costs microseconds
        # (a lock and the memory-mapped file), an append well under one; the sampler flushes.
        self.requote_pending: list[float] = []
        self.entry_pending: list[float] = []
        self.events_pending = [0, 0, 0]  # fills, cancelled, rejected

    def flush(self) -> None:
        """Write what the hooks noted: counters by their sums, histograms bucket by bucket."""
        fills, cancelled, rejected = self.events_pending
        if fills:
            self.fills.inc(fills)
        if cancelled:
            self.cancelled.inc(cancelled)
        if rejected:
            self.rejected.inc(rejected)
        self.events_pending = [0, 0, 0]
        _flush_histogram(self.requote, self.requote_pending)
        _flush_histogram(self.entry, self.entry_pending)


def _flush_histogram(child, pending: list[float]) -> None:
    """``child.observe(x)`` for every ``x`` of ``pending`` in one write per bucket used (through
    the child's bucket values: prometheus_client 0.26, pinned, observes the same way)."""
    if not pending:
        return
    bounds = child._upper_bounds
    counts = [0] * len(bounds)
    for value in pending:
        counts[bisect_left(bounds, value)] += 1
    child._sum.inc(sum(pending))
    for i, count in enumerate(counts):
        if count:
            child._buckets[i].inc(count)
    pending.clear()


def series(runner) -> BotSeries | None:
    """The bot's metric children (None until its setup is loaded)."""
    found = getattr(runner, "_metric_series", None)
    if found is None:
        setup = runner.setup
        if setup is None:
            return None
        found = BotSeries((str(runner.bot_id), str(setup.strategy), str(setup.venue), str(setup.symbol)))
        runner._metric_series = found
    return found


# --- hooks called by the loops ------------------------------------------------------------------
def order_event(runner, ev) -> None:
    """An order event recorded for ``runner`` (workers.botloop ``_order_event_db``)."""
    t = type(ev)
    index = 0 if t is OrderFilled else 1 if t is OrderCancelled else 2 if t is OrderRejected else -1
    bound = series(runner) if index >= 0 else None
    if bound is not None:
        bound.events_pending[index] += 1


def requote(runner, took_ns: int) -> None:
    bound = series(runner)
    if bound is not None:
        bound.requote_pending.append(took_ns / 1e9)


def order_entry(runner, started_ns: int, placed: bool = True) -> None:
    """Orders went to the venue at ``started_ns`` (``time.perf_counter_ns``) and it answered now."""
    bound = series(runner) if placed else None
    if bound is not None:
        bound.entry_pending.append((time.perf_counter_ns() - started_ns) / 1e9)


def feed_message(feed) -> None:
    """One source event (counted here, written by the sampler)."""
    feed._metrics_last_event = time.monotonic()
    feed._metrics_messages = getattr(feed, "_metrics_messages", 0) + 1


def feed_resync(feed) -> None:
    FEED_RESYNCS.labels(feed.venue, feed.symbol).inc()


def lease_lost(key: str) -> None:
    LEASES_LOST.labels("feed" if ":feed:" in key else "bot").inc()


def lease_round_failed() -> None:
    LEASE_ROUNDS_FAILED.inc()


# --- the sampler ----------------------------------------------------------------------------------
class _Seen:
    """What a runner or feed had at the previous sample (counters are exported as deltas)."""

    __slots__ = ("at", "errors", "messages", "places", "published", "renewals")

    def __init__(self) -> None:
        self.places = self.renewals = self.published = self.errors = self.messages = 0
        self.at = time.monotonic()


def _sample_bot(runner, seen: _Seen, now: float) -> None:
    bound = series(runner)
    engine = runner.engine
    if bound is None or engine is None:
        return
    bound.flush()
    inst = runner.setup.instrument
    if runner.places > seen.places:
        bound.placed.inc(runner.places - seen.places)
    seen.places = runner.places
    renewals = getattr(runner.lease, "renewals", 0)
    if renewals > seen.renewals:
        bound.renewals.inc(renewals - seen.renewals)
    seen.renewals = renewals
    snap = engine.portfolio.snapshot(time.time_ns())
    bound.position.set(float(inst.quantity(snap.position)))
    bound.realized.set(float(inst.cash(snap.realized)))
    bound.unrealized.set(float(inst.cash(snap.unrealized)))
    bound.fees.set(float(inst.cash(snap.fees)))
    running = runner.state == "running"
    sides = {o.side for o in engine.orders.orders.values()}
    quoting = running and Side.BUY in sides and Side.SELL in sides
    bound.running.set(1 if running else 0)
    bound.quoting.set(1 if quoting else 0)
    elapsed = max(0.0, now - seen.at)
    if running:
        bound.running_s.inc(elapsed)
    if quoting:
        bound.quoting_s.inc(elapsed)
    seen.at = now


def _bot_gone(runner) -> None:
    bound = series(runner)
    if bound is not None:
        bound.flush()
        bound.running.set(0)
        bound.quoting.set(0)


def _sample_feed(feed, seen: _Seen, now: float) -> None:
    labels = (feed.venue, feed.symbol)
    messages = getattr(feed, "_metrics_messages", 0)
    if messages > seen.messages:
        FEED_MESSAGES.labels(*labels).inc(messages - seen.messages)
    seen.messages = messages
    if feed.published > seen.published:
        FEED_PUBLISHED.labels(*labels).inc(feed.published - seen.published)
    seen.published = feed.published
    if feed.errors > seen.errors:
        FEED_ERRORS.labels(*labels).inc(feed.errors - seen.errors)
    seen.errors = feed.errors
    last = getattr(feed, "_metrics_last_event", None)
    FEED_STALENESS.labels(*labels).set(now - last if last is not None else now - seen.at)
    FEED_SYNCED.labels(*labels).set(1 if feed.health == "live" else 0)


def sampler(host, interval_s: float = 1.0, tick_s: float = 0.1):
    """The host task exporting the host's figures every ``interval_s`` (loop lag measured as the
    largest overshoot of ``tick_s`` sleeps in between)."""

    async def metrics_sampler() -> None:
        process_started("bots")
        host_label = (host.host_id,)
        bots: dict[int, tuple[object, _Seen]] = {}
        feeds: dict[tuple[str, str], tuple[object, _Seen]] = {}
        rounds = -1
        while True:
            lag = 0.0
            until = time.monotonic() + interval_s
            while time.monotonic() < until:
                asked = time.monotonic()
                await asyncio.sleep(tick_s)
                lag = max(lag, time.monotonic() - asked - tick_s)
            now = time.monotonic()
            LOOP_LAG.labels(*host_label).set(lag)
            HOST_BOTS.labels(*host_label).set(len(host.bots))
            HOST_FEEDS.labels(*host_label).set(len(host.feeds))
            rounds += 1
            for n, (bot_id, runner) in enumerate(list(host.bots.items()) if rounds % BOT_EVERY == 0 else ()):
                if n and n % SAMPLE_CHUNK == 0:
                    await asyncio.sleep(0)  # hundreds of bots: give the loop back between chunks
                entry = bots.get(bot_id)
                if entry is None or entry[0] is not runner:
                    if runner.engine is None or runner.state not in ("running", "paused"):
                        continue  # still starting: counted once it quotes
                    entry = bots[bot_id] = (runner, _Seen())
                    bound = series(runner)  # binding creates every series, at 0
                    if bound is not None:
                        bound.takeovers.inc()
                _sample_bot(runner, entry[1], now)
            for bot_id in [b for b, (r, _s) in bots.items() if host.bots.get(b) is not r]:
                _bot_gone(bots.pop(bot_id)[0])
            for key, feed in list(host.feeds.items()):
                entry = feeds.get(key)
                if entry is None or entry[0] is not feed:
                    entry = feeds[key] = (feed, _Seen())
                    for metric in (FEED_MESSAGES, FEED_PUBLISHED, FEED_RESYNCS, FEED_ERRORS):
                        metric.labels(*key)
                _sample_feed(feed, entry[1], now)
            for key in [k for k, (f, _s) in feeds.items() if host.feeds.get(k) is not f]:
                feeds.pop(key)
                FEED_SYNCED.labels(*key).set(0)

    return metrics_sampler
