"""One bot's quoting loop inside a :class:`workers.host.Host`.

Market events (from the host's stream reader) -> :class:`trading.runner.Runner` (the backtester's
per-event algorithm: the venue's matching, then ``trading.engine.Engine``) -> commands, deferred
to the end of the cycle -> the fenced paper venue (or a live gateway, after the order rows are
written) -> order rows and order events -> back through the runner to the engine and the
database. The runner is put together from its parts: starting and take-over
(:mod:`workers.bot_start`), lifecycle commands and stopping (:mod:`workers.bot_control`) and what
it records (:mod:`workers.bot_records`); this module is the loop itself: cycles over what
arrived, and sending what the engine decided to the venue.
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
    TradeTick,
)
from trading.ports import BotVenue
from trading.runner import Runner
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
MAX_FLUSH_ROUNDS = 20  # venue round trips of one flush (answers and the engine's replies)

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
        self.hedged = None  # a hedged bot's two-leg loop (workers.hedged_loop)
        self.paper_perp = None  # a paper perpetual's position at the venue (workers.paper_perp)
        self.liquidated_reason: str | None = None
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
        # The per-event work (``_make_runner``, once the engine and venue exist): it keeps the
        # commands of a cycle until ``_flush`` and the records of unconfirmed fills (``held``).
        self.runner: Runner | None = None
        self.clock = time.time_ns  # ns, every stamp of the loop and its paper venue
        self.fill_model: dict = {}  # the paper venue's latency/queue models (default: as a backtest's)
        self._acked: set[str] = set()  # places whose row was written acknowledged (``_send_now``)
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
            if self.paper_perp is not None:  # its liquidation check sees every mark (workers.paper_perp)
                self.paper_perp.marks.note_book(self.engine.book)

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
    def _make_runner(self) -> None:
        """The per-event work is :class:`trading.runner.Runner`'s, as in a backtest: here with the
        wall clock, the host's stream as the event source and the venue's matching side; the
        runner defers the engine's commands (sent by :meth:`_flush`) and holds the records of
        reports whose venue writes are not confirmed yet."""
        self.runner = Runner(
            self.engine, self.venue.matching, clock=self.clock, defer=True, hold=True, record=self._record
        )

    async def _loop(self) -> None:
        if self.hedged is not None:
            return await self.hedged.loop()
        runner = self.runner
        next_due = self.venue.matching.next_due
        loop = asyncio.get_running_loop()
        wake = self.wake
        # Timers at a random phase: bots claimed together do not all step in the same instant.
        next_timer = time.monotonic() + random.random()
        while True:
            if not self.lease.held:
                raise LeaseLost(self.lease.lost_reason or "lease not renewed")
            timeout = max(0.0, next_timer - time.monotonic())
            due = next_due()  # a simulated venue's answer in flight (a fill model with latency)
            if due is not None:
                timeout = min(timeout, max(0.0, (due - self.clock()) / 1e9))
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
            if due is not None and not self.controls and self.clock() >= due:
                await self._answers_due(self.clock())
            if (self.inbox or self.pending_book is not None) and not self.controls:
                await self._cycle()
            now = time.monotonic()
            if now >= next_timer:
                next_timer = now + 1.0
                ts = self.clock()
                try:
                    if self.paper_perp is not None:  # the marks since the last check, on the position they met
                        self.paper_perp.check(ts)
                    runner.timer(ts)  # the venue's answers due, then the engine's timer step
                except (LeaseLost, StopLoop, AuthFailure, asyncio.CancelledError):
                    runner.take()
                    await self._settle_held()
                    raise
                except Exception as exc:
                    logger.warning("bot %s: timer step failed: %s", self.bot_id, exc)
                await self._flush()
                self._flush_notes()
                self._snapshot(ts)

    async def _answers_due(self, now: int) -> None:
        """The simulated venue's answers due by ``now``, through the runner, at the time they are
        due (as a backtest's venue answers between market events), and the engine's replies."""
        try:
            if self.paper_perp is not None:  # the marks since the last check, before the answers' fills
                self.paper_perp.check(now)
            self.runner.answers(now)
        except (LeaseLost, StopLoop, AuthFailure, asyncio.CancelledError):
            self.runner.take()
            await self._settle_held()
            raise
        except Exception as exc:
            logger.warning("bot %s: venue answers failed: %s", self.bot_id, exc)
        await self._flush()

    async def _cycle(self) -> None:
        """One cycle: what arrived since the last one, i.e. the queued trades (and a live
        gateway's order events) in order, then the newest book once, each through the runner
        (matching, the engine); then what the engine decided goes out (:meth:`_flush`). Book
        events the bot fell behind on were already applied to the host's shared book, so only
        the newest one is matched against and quoted on. Its duration (including the awaited
        order rows and venue writes) is the cycle latency."""
        started = time.perf_counter_ns()
        places_before = self.places
        trips_before = self.venue.round_trips
        latency = self.host.bot_latency_ns
        inbox = self.inbox
        if self.paper_perp is not None:  # the marks since the last check, before this cycle's fills
            self.paper_perp.check(self.clock())
        for _ in range(len(inbox)):  # what is queued now; later arrivals wait for the next cycle
            if self.controls:  # a lifecycle command goes before market data
                await self._flush()
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
        if self.paper_perp is not None:  # the mark may have crossed the liquidation price
            self.paper_perp.check(self.clock())
        await self._flush()
        took = time.perf_counter_ns() - started
        self.cycle_ns.append(took)
        self.round_trips.append(self.venue.round_trips - trips_before)
        if self.places != places_before:
            self.send_cycle_ns.append(took)
            bot_metrics.requote(self, took)
        self._flush_notes()

    async def _step(self, event) -> None:
        """One event through the runner: a market event through matching and the engine, a live
        gateway's order event to its record and the engine. Nothing is awaited unless it fails:
        the engine's commands wait for the end of the cycle, the records of fills whose venue
        writes are queued wait for the venue's confirmation (``Runner.held``). One bad event
        never kills the loop."""
        runner = self.runner
        try:
            if isinstance(event, OrderEvent):
                runner.reports([event])
            else:
                runner.market(event, self.clock())
        except (LeaseLost, StopLoop, AuthFailure, asyncio.CancelledError):
            runner.take()  # the loop ends: nothing more is sent
            await self._settle_held()
            raise
        except Exception as exc:
            logger.exception("bot %s: event failed", self.bot_id)
            self._event("error", "event_failed", f"{type(exc).__name__}: {exc}")
            await self._settle_held()

    async def _flush(self, catch: bool = True) -> None:
        """Send what the engine decided, in the order it decided it, in one round trip (paper) with
        the fills still held (confirmed by it, then recorded); with nothing to send, the held
        fills are confirmed alone. The answers go back through the runner, and what the engine
        replies goes out the same way, for at most ``MAX_FLUSH_ROUNDS`` rounds (the rest waits
        for the next flush). A failure is handled as one in a step (``catch``) or raised.

        A paper bot's cycle so waits for Redis once; for the engine this is venue latency as on
        any exchange: orders it placed for one event may be cancelled by its answer to the next
        before they are acknowledged (the venue takes the place, then the cancel, in order)."""
        runner = self.runner
        try:
            for _ in range(MAX_FLUSH_ROUNDS):
                commands = runner.take()
                if not commands:
                    break
                await self._send_now(commands)
            if runner.held is not None:
                await self._release_held()
        except (LeaseLost, StopLoop, AuthFailure, asyncio.CancelledError):
            runner.drop_held()
            runner.take()
            raise
        except Exception as exc:
            if not catch:
                await self._settle_held()
                raise
            logger.warning("bot %s: sending failed: %s", self.bot_id, exc)
            self._event("error", "event_failed", f"{type(exc).__name__}: {exc}")
            await self._settle_held()

    async def _settle_held(self) -> None:
        """After a failed step: the held records whose writes the venue confirms are written
        (the fill happened whatever failed after it); if the venue refused them or cannot be
        reached, they are dropped, exactly as when an awaited fill write failed (the venue's
        trade list is then the truth: take-over and reconciliation record what it holds)."""
        if self.runner.held is None:
            return
        try:
            await self._release_held()
        except asyncio.CancelledError:
            self.runner.drop_held()
            raise
        except Exception as exc:
            self.runner.drop_held()
            logger.warning("bot %s: fills not confirmed by the venue, left to its trade list: %s", self.bot_id, exc)

    async def _release_held(self) -> None:
        """The venue confirms its queued writes; the reports held for them are recorded."""
        try:
            await self.venue.confirm()
        except BaseException:
            self.runner.drop_held()  # refused or failed: the held reports are dropped with it
            raise
        for ev in self.runner.release():
            self._record(ev)

    async def _send(self, commands: list) -> None:
        """Commands made outside a cycle (pause, stop, a user's order): sent at once."""
        if commands:
            self.runner.command(commands)
            await self._flush(catch=False)

    async def _send_now(self, commands: list) -> None:
        if not self.lease.held:
            raise LeaseLost(self.lease.lost_reason or "lease not held")
        setup = self.setup
        places = [c for c in commands if type(c) is PlaceOrder]
        venue = self.venue
        runner = self.runner
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
            if runner.held is not None:  # confirmed with these writes: their records go first
                await self._release_held()
            if places and rows_behind:
                # The venue (paper: Redis) holds every order it took, so the rows follow on the
                # writer instead of being awaited first, already acknowledged where the venue
                # took the order (``_acked``: its row says so, no update); the order's later
                # updates and fills are queued after them on the same writer. A process that
                # dies first leaves the rows to take-over.
                accepted = {ev.client_order_id: ev for ev in events if type(ev) is OrderAccepted}
                rows = []
                for c in places:
                    ev = accepted.get(c.client_order_id)
                    row = (self.bot_id, setup.account_id, setup.market_id, setup.instrument, c)
                    rows.append(
                        row if ev is None else (*row, ev.venue_order_id, *self._place_stamps(c.client_order_id, ev.ts))
                    )
                self.host.db.submit(records.orders_create, rows, owner=self.bot_id)
                self._acked.update(accepted)
            for cmd, exc in failed:
                self.place_errors += 1
                if type(cmd) is PlaceOrder:
                    events += await self._place(cmd, failed=exc)
                else:
                    events += await self._cancel(cmd)
            runner.reports(events)
            self._acked.clear()
            return
        if runner.held is not None:
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
                events = [OrderRejected(self.clock(), cmd.client_order_id, "amend not supported", "unsupported")]
            runner.reports(events)

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
