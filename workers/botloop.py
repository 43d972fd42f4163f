"""One bot's quoting loop inside a :class:`workers.host.Host`.

Market events (from the host's stream reader) → ``trading.engine.Engine`` → commands → the
fenced paper venue (or a live gateway, after the order rows are written) → order rows and order
events → engine and database. The runner is put together from its parts: starting and take-over
(:mod:`workers.bot_start`), lifecycle commands and stopping (:mod:`workers.bot_control`) and what
it records (:mod:`workers.bot_records`); this module is the loop itself: cycles over what
arrived, and sending the engine's commands to the venue.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque

from redis.exceptions import RedisError

from connectors.errors import AuthFailure, RetryBudgetExhausted
from trading.engine import Engine
from trading.events import (
    CancelAll,
    CancelOrder,
    OrderAccepted,
    OrderEvent,
    OrderRejected,
    PlaceOrder,
    Timer,
    TradeTick,
)
from trading.ports import BotVenue
from workers import metrics as bot_metrics
from workers import records
from workers.bot_control import BotControl, StopLoop
from workers.bot_records import BotRecords
from workers.bot_start import BotStart
from workers.paper_venue import LeaseLost

logger = logging.getLogger(__name__)
# Paper order rows are written behind the venue (not awaited) while the database writer has
# fewer than this many writes outstanding; beyond, places wait for their rows again, so a slow or
# unreachable database slows quoting down instead of queueing without bound.
ROWS_BEHIND_MAX_BACKLOG = 50_000

__all__ = ["BotRunner", "StopLoop"]


class BotRunner(BotStart, BotControl, BotRecords):
    """Run one bot while this host holds its lease."""

    def __init__(self, host, bot_id: int, lease) -> None:
        self.host = host
        self.bot_id = bot_id
        self.lease = lease
        self.inbox: deque = deque()  # trades and order events, in arrival order
        self.pending_book: tuple | None = None  # the newest book event not handled yet
        self.conflated = 0  # book events superseded before the bot got to them
        self.controls: deque[str] = deque()
        self.refused_reason: str | None = None  # set when the database refused one of its rows
        self.wake = asyncio.Event()
        self.setup: records.BotSetup | None = None
        self.engine: Engine | None = None
        self.venue: BotVenue | None = None
        self.stream: tuple[str, str] | None = None
        self.state = "starting"
        self.cycle_ns: deque[int] = deque(maxlen=2000)  # every cycle (see ``_loop``)
        self.send_cycle_ns: deque[int] = deque(maxlen=500)  # the ones that placed orders
        self.filled: dict[str, int] = {}
        self.recorded_trade_ids: set[str] = set()  # read from the venue's trade list and stored
        self._last_pnl = 0.0
        self._last_status = 0.0
        self._last_group = 0.0
        self.places = 0
        self.place_errors = 0
        self._mismatch: str | None = None
        self.fills = 0
        # Order events whose venue writes are queued but not yet confirmed (fills of a market
        # event: ``PaperVenue._persist``): their rows and pushes wait for the confirmation, in
        # order, so nothing is recorded that the venue then refused.
        self._held: list | None = None
        # Commands the engine made during the current cycle, sent together at its end (paper).
        self._deferred: list | None = None
        self.round_trips: deque[int] = deque(maxlen=2000)  # venue round trips of each cycle

    # ----------------------------------------------------------------------------------------
    def push_market(self, item: tuple) -> None:
        """Queue a market event, ``(event, published ns)`` (the host wakes the loop: see
        ``Host._waker``). The host gives every bot of the feed the same tuple: one object per
        event, not one per bot (a burst of trades for a hundred bots made tens of thousands,
        and every young-generation garbage collection walked them)."""
        if type(item[0]) is TradeTick:
            self.inbox.append(item)
        else:  # the host applied it to the shared book: only the newest one needs handling
            if self.pending_book is not None:
                self.conflated += 1
            self.pending_book = item

    def push_control(self, message: str) -> None:
        self.controls.append(message)
        self.wake.set()

    def writes_refused(self, reason: str) -> None:
        """The database refused one of this bot's rows for good (a value it cannot hold): the
        bot stops quoting, cancels its orders and goes to ``error`` with the reason."""
        if self.refused_reason is None:
            self.refused_reason = reason
            self.push_control("write_refused")

    # ----------------------------------------------------------------------------------------
    async def run(self) -> None:
        try:
            await self._start()
            await self._loop()
        except StopLoop as exc:
            logger.info("bot %s loop ends: %s", self.bot_id, exc)
        except LeaseLost as exc:
            logger.warning("bot %s lost its lease: %s", self.bot_id, exc)
            self._event("lifecycle", "lease_lost", f"stopped sending orders: {exc}")
        except AuthFailure as exc:  # a live account's key was refused: only a person can fix it
            reason = self.venue.scrub(str(exc)) if self.venue is not None else str(exc)  # never a credential
            logger.warning("bot %s: %s", self.bot_id, reason)
            self._event("error", "auth_failed", reason)
            await self.host.db.call(records.bot_state_set, self.bot_id, "error", reason)
            await self.host.release_bot(self.bot_id)
        except asyncio.CancelledError:
            raise
        except (RedisError, OSError, TimeoutError, RetryBudgetExhausted) as exc:  # infrastructure: start again
            logger.warning("bot %s loop interrupted (%s); it will be claimed again", self.bot_id, exc)
            self._event("lifecycle", "loop_restart", f"interrupted by {type(exc).__name__}: {exc}; restarting")
            self.host.retry_later(self.bot_id, 2.0)
        except Exception as exc:
            logger.exception("bot %s loop failed", self.bot_id)
            self._event("error", "loop_failed", f"{type(exc).__name__}: {exc}")
            self.host.db.submit(records.bot_state_set, self.bot_id, "error", f"loop failed: {exc}")
        finally:
            if self.venue is not None:  # e.g. a live venue's connections and event pump
                try:
                    await self.venue.close()
                except Exception as exc:
                    logger.info("bot %s: closing the venue: %s", self.bot_id, exc)
            self.host.runner_done(self)

    def push_order_event(self, event: OrderEvent | None) -> None:
        """An order event from a live gateway (None only wakes the loop)."""
        if event is not None:
            self.inbox.append((event, 0))
        self.wake.set()

    # ----------------------------------------------------------------------------------------
    async def _loop(self) -> None:
        engine = self.engine
        loop = asyncio.get_running_loop()
        wake = self.wake
        # Timers at a random phase: bots claimed together do not all step in the same instant.
        next_timer = time.monotonic() + random.random()
        while True:
            if not self.lease.held:
                raise LeaseLost(self.lease.lost_reason or "lease not renewed")
            timeout = max(0.0, next_timer - time.monotonic())
            if not self.inbox and self.pending_book is None and not self.controls:
                self.wake.clear()
                if timeout > 0:
                    # A timer handle, not ``wait_for`` (which makes a task per wait: measurable
                    # with hundreds of bots waking ~10 times a second).
                    timer = loop.call_later(timeout, wake.set)
                    await wake.wait()
                    timer.cancel()
            while self.controls:
                await self._control(self.controls.popleft())
            if (self.inbox or self.pending_book is not None) and not self.controls:
                await self._cycle()
            now = time.monotonic()
            if now >= next_timer:
                next_timer = now + 1.0
                ts = time.time_ns()
                try:
                    for ev in await self.venue.advance():
                        await self._handle_order_event(ev)
                    await self._send(engine.on_event(Timer(ts)))
                except (LeaseLost, StopLoop, AuthFailure, asyncio.CancelledError):
                    raise
                except Exception as exc:  # Redis blip: the lease decides whether we go on
                    logger.warning("bot %s: timer step failed: %s", self.bot_id, exc)
                self._flush_notes()
                self._snapshot(ts)

    async def _cycle(self) -> None:
        """One cycle: what arrived since the last one, i.e. the queued trades (and a live
        gateway's order events) in order, then the newest book once. Trades go through paper
        matching (so no fill is lost) and the engine; book events the bot fell behind on were
        already applied to the host's shared book, so only the newest one is matched against
        and quoted on. Its duration (including the awaited order rows and venue writes) is
        the cycle latency."""
        started = time.perf_counter_ns()
        places_before = self.places
        trips_before = self.venue.round_trips
        latency = self.host.bot_latency_ns
        inbox = self.inbox
        self._deferred = []
        for _ in range(len(inbox)):  # what is queued now; later arrivals wait for the next cycle
            if self.controls:  # a lifecycle command goes before market data
                await self._end_cycle()
                return
            event, published = inbox.popleft()
            if published:
                latency.append(time.time_ns() - published)
            await self._step(event)
        book = self.pending_book
        if book is not None and not self.controls:
            self.pending_book = None
            event, published = book
            if published:
                latency.append(time.time_ns() - published)
            await self._step(event)
        await self._end_cycle()
        took = time.perf_counter_ns() - started
        self.cycle_ns.append(took)
        self.round_trips.append(self.venue.round_trips - trips_before)
        if self.places != places_before:
            self.send_cycle_ns.append(took)
            bot_metrics.requote(self, took)
        self._flush_notes()

    async def _step(self, event) -> None:
        """One event: a market event through paper matching and the engine, a live gateway's
        order event to the database and the engine. One bad event never kills the loop.

        Paper: fills a market event makes are queued on the venue's connection, not awaited,
        and the engine's commands wait for the end of the cycle (``_end_cycle``), where they
        go out in one round trip with those fills; the fills' rows wait (``_held``) until
        the venue has confirmed them."""
        try:
            if isinstance(event, OrderEvent):
                await self._handle_order_event(event)
            else:
                venue = self.venue
                events = await venue.on_market(event)
                if events:
                    if venue.unconfirmed and self._held is None:
                        self._held = []
                    for ev in events:
                        await self._handle_order_event(ev)
                await self._send(self.engine.on_event(event))
        except (LeaseLost, StopLoop, AuthFailure, asyncio.CancelledError):
            self._deferred = None  # the loop ends: nothing more is sent
            await self._settle_held()
            raise
        except Exception as exc:
            logger.exception("bot %s: event failed", self.bot_id)
            self._event("error", "event_failed", f"{type(exc).__name__}: {exc}")
            await self._settle_held()

    async def _end_cycle(self) -> None:
        """Send what the engine decided during the cycle, in the order it decided it, in one
        round trip with the fills still queued (``_held``: confirmed by it, then stored); with
        nothing to send, the fills are confirmed alone. A failure is handled as one in a step.

        A paper bot's cycle so waits for Redis once: each event of the cycle (queued trades,
        then the newest book) goes through matching and the engine at once, and the engine's
        commands wait for the end of the cycle instead of each being sent and answered before
        the next event. For the engine this is venue latency as on any exchange: orders it
        placed for one event may be cancelled by its answer to the next before they are
        acknowledged (the venue takes the place, then the cancel, in that order)."""
        commands, self._deferred = self._deferred, None
        if not commands and self._held is None:
            return
        try:
            if commands:
                await self._send(commands)
            if self._held is not None:
                await self._release_held()
        except (LeaseLost, StopLoop, AuthFailure, asyncio.CancelledError):
            self._held = None
            raise
        except Exception as exc:
            logger.warning("bot %s: end of cycle failed: %s", self.bot_id, exc)
            self._event("error", "event_failed", f"{type(exc).__name__}: {exc}")
            await self._settle_held()

    async def _settle_held(self) -> None:
        """After a failed step: the held events whose writes the venue confirms are recorded
        (the fill happened whatever failed after it); if the venue refused them or cannot be
        reached, they are dropped, exactly as when an awaited fill write failed (the venue's
        trade list is then the truth: take-over and reconciliation record what it holds)."""
        if self._held is None:
            return
        try:
            await self._release_held()
        except asyncio.CancelledError:
            self._held = None
            raise
        except Exception as exc:
            self._held = None
            logger.warning("bot %s: fills not confirmed by the venue, left to its trade list: %s", self.bot_id, exc)

    async def _release_held(self) -> None:
        """The venue confirms its queued writes; the events held for them go to the database."""
        held, self._held = self._held, None
        await self.venue.confirm()  # refused or failed: the held events are dropped with it
        for ev in held:
            await self._order_event_db(ev)

    async def _send(self, commands: list) -> None:
        if not commands:
            return
        if self._deferred is not None:  # in a cycle: sent at its end (``_end_cycle``)
            self._deferred.extend(commands)
            return
        if not self.lease.held:
            raise LeaseLost(self.lease.lost_reason or "lease not held")
        setup = self.setup
        places = [c for c in commands if type(c) is PlaceOrder]
        venue = self.venue
        batch = all(type(c) in (PlaceOrder, CancelOrder) for c in commands)
        rows_behind = batch and venue.holds_orders and self.host.db.pending() < ROWS_BEHIND_MAX_BACKLOG
        if places and not rows_behind:
            # The order rows exist before anything reaches the venue.
            t0 = time.perf_counter_ns()
            await self.host.db_orders.call(
                records.orders_create,
                [(self.bot_id, setup.account_id, setup.market_id, setup.instrument, c) for c in places],
                owner=self.bot_id,
            )
            self.host.order_row_wait_ns.append(time.perf_counter_ns() - t0)
        if batch:
            # In one go (paper: one Redis round trip); a command that failed is then recovered
            # by client id and retried alone.
            self.places += len(places)
            entry_started = time.perf_counter_ns()
            self._stamp_sent(commands)
            events, failed = await venue.send_many(commands)
            self._stamp_answered(events)
            bot_metrics.order_entry(self, entry_started, bool(places))
            if self._held is not None:  # confirmed with these writes: their rows go first
                await self._release_held()
            acked: set[str] = set()
            if places and rows_behind:
                # The venue (paper: Redis) holds every order it took, so the rows follow on the
                # writer instead of being awaited first, already acknowledged where the venue
                # took the order; the order's later updates and fills are queued after them on
                # the same writer. A process that dies first leaves the rows to take-over.
                accepted = {ev.client_order_id: ev for ev in events if type(ev) is OrderAccepted}
                rows = []
                for c in places:
                    ev = accepted.get(c.client_order_id)
                    row = (self.bot_id, setup.account_id, setup.market_id, setup.instrument, c)
                    rows.append(
                        row if ev is None else (*row, ev.venue_order_id, *self._place_stamps(c.client_order_id, ev.ts))
                    )
                self.host.db.submit(records.orders_create, rows, owner=self.bot_id)
                acked = set(accepted)
            for cmd, exc in failed:
                self.place_errors += 1
                if type(cmd) is PlaceOrder:
                    events += await self._place(cmd, failed=exc)
                else:
                    events += await self._cancel(cmd)
            for ev in events:
                if type(ev) is OrderAccepted and ev.client_order_id in acked:
                    acked.discard(ev.client_order_id)  # its row says so already
                    more = self.engine.on_event(ev)
                    if more:
                        await self._send(more)
                    continue
                await self._handle_order_event(ev)
            return
        if self._held is not None:
            await self._release_held()
        for cmd in commands:
            t = type(cmd)
            if t is PlaceOrder:
                self.places += 1
                entry_started = time.perf_counter_ns()
                self._stamp_sent((cmd,))
                events = await self._place(cmd)
                self._stamp_answered(events)
                bot_metrics.order_entry(self, entry_started)
            elif t is CancelOrder:
                self._stamp_sent((cmd,))
                events = await self._cancel(cmd)
                self._stamp_answered(events)
            elif t is CancelAll:
                for rep in await self.venue.fetch_open_orders():
                    await self._cancel_on_venue(rep.client_order_id, cmd.reason)
                events = []
            else:  # AmendOrder: the paper venue takes cancel + new place through the diff instead
                events = [OrderRejected(time.time_ns(), cmd.client_order_id, "amend not supported", "unsupported")]
            for ev in events:
                await self._handle_order_event(ev)

    async def _place(self, cmd: PlaceOrder, failed: Exception | None = None) -> list:
        """Place with retries; after any failure (``failed``: the first attempt's, made by the
        caller) look the order up by client id first, so a retry never makes a second order."""
        delay = 0.05
        error: Exception | None = failed
        if failed is not None:
            found = await self.venue.recover_place(cmd)
            if found is not None:
                return found
            await asyncio.sleep(delay)
            delay *= 2
        for _attempt in range(5 if failed is None else 4):
            try:
                return await self.venue.place(cmd)
            except (LeaseLost, AuthFailure, asyncio.CancelledError):
                raise
            except Exception as exc:
                error = exc
                self.place_errors += 1
                found = await self.venue.recover_place(cmd)
                if found is not None:
                    return found
                await asyncio.sleep(delay)
                delay *= 2
        reason = f"venue unavailable after 5 attempts: {error}"
        self._event("order", "place_failed", f"{cmd.client_order_id}: {reason}")
        return [OrderRejected(time.time_ns(), cmd.client_order_id, reason, "venue_unavailable")]

    async def _cancel(self, cmd: CancelOrder) -> list:
        delay = 0.05
        error: Exception | None = None
        for _attempt in range(5):
            try:
                return await self.venue.cancel(cmd.client_order_id, cmd.reason)
            except (LeaseLost, AuthFailure, asyncio.CancelledError):
                raise
            except Exception as exc:
                error = exc
                self.place_errors += 1
                await asyncio.sleep(delay)
                delay *= 2
        self._event("order", "cancel_failed", f"{cmd.client_order_id}: {error}; will retry")
        return [OrderRejected(time.time_ns(), cmd.client_order_id, f"cancel failed: {error}", "cancel_failed")]

    async def _handle_order_event(self, ev) -> None:
        await self._order_event_db(ev)
        more = self.engine.on_event(ev)
        if more:
            await self._send(more)
