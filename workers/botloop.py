"""One bot's quoting loop inside a :class:`workers.host.Host`.

Market events (from the host's stream reader) → ``trading.engine.Engine`` → commands → the
fenced paper venue (or a live gateway, after the order rows are written) → order rows and order
events → engine and database. Before quoting, a new owner reconciles: venue open orders with the bot's prefix are
adopted (known in the database) or cancelled (unknown), trades missed while no one owned the bot
are recorded once, and position/PnL are rebuilt from the recorded fills.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from decimal import Decimal

from redis.exceptions import RedisError

from connectors.errors import AuthFailure, RetryBudgetExhausted
from trading.engine import Engine
from trading.events import (
    CancelAll,
    CancelOrder,
    Liquidity,
    OrderAccepted,
    OrderCancelled,
    OrderEvent,
    OrderFilled,
    OrderRejected,
    PlaceOrder,
    TimeInForce,
    Timer,
    TradeTick,
)
from trading.instruments import Side
from trading.oms import OrderState
from trading.ports import OrderStatus
from trading.risk import RiskLimits
from trading.strategies import build_strategy
from workers import keys, records
from workers.paper_venue import LeaseLost, PaperVenue

logger = logging.getLogger(__name__)
NS = 1_000_000_000
STOP_CONFIRM_TIMEOUT_S = 10.0
STOP_TRADES_MARGIN_NS = 10 * NS  # trades read at a stop: from a little before it began
# Paper order rows are written behind the venue (not awaited) while the database writer has
# fewer than this many writes outstanding; beyond, places wait for their rows again, so a slow or
# unreachable database slows quoting down instead of queueing without bound.
ROWS_BEHIND_MAX_BACKLOG = 50_000
FLATTEN_CROSS_BPS = 50  # a kill-switch flatten takes liquidity up to 0.5 % through the touch

# The order row status for what the venue reports once nothing is open any more.
VENUE_FINAL_STATUS = {
    OrderStatus.FILLED: "filled",
    OrderStatus.REJECTED: "rejected",
    OrderStatus.EXPIRED: "expired",
    OrderStatus.CANCELLED: "cancelled",
}


class StopLoop(Exception):
    """Leave the loop (stopped, lost the lease, or a fatal configuration error)."""


class BotRunner:
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
        self.venue: PaperVenue | None = None
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
            scrub = getattr(self.venue, "scrub", None)
            reason = scrub(str(exc)) if scrub is not None else str(exc)  # never a credential
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
            close = getattr(self.venue, "close", None)  # a live venue's connections and event pump
            if close is not None:
                try:
                    await close()
                except Exception as exc:
                    logger.info("bot %s: closing the venue: %s", self.bot_id, exc)
            self.host.runner_done(self)

    async def _start(self) -> None:
        host = self.host
        try:
            setup = await host.db_setup.call(records.bot_setup, self.bot_id)
        except Exception as exc:  # database trouble: try again shortly (any host)
            host.retry_later(self.bot_id, 5.0)
            raise StopLoop(f"cannot load the bot, retrying: {exc}") from exc
        self.setup = setup
        inst = setup.instrument
        try:
            strategy = build_strategy(setup.strategy, setup.params, inst)
            risk = RiskLimits.from_dict(setup.risk)
        except Exception as exc:
            errors = getattr(exc, "errors", None) or str(exc)
            reason = f"configuration refused: {errors}"
            await host.db.call(records.bot_state_set, self.bot_id, "error", reason)
            await host.release_bot(self.bot_id)
            raise StopLoop(reason) from exc
        balances = setup.paper_balances
        base = inst.lots(Decimal(str(balances.get(inst.base, "0"))), round_down=True)
        quote = inst.cash_units(Decimal(str(balances.get(inst.quote, "0"))))
        # The host keeps one book per feed for all its bots: engine and paper matching read it.
        book = host.book(setup.venue, setup.symbol)
        self.engine = Engine(
            strategy,
            inst,
            book=book,
            external_book=True,
            bot_id=str(self.bot_id),
            risk=risk,
            initial_base=base,
            initial_quote=quote,
            client_id_prefix=setup.prefix,
            client_id_start=setup.client_id_start,
            # Settled markouts are summed by the portfolio (its status reads the sums); the
            # list of the last ones is for backtest reports: 10,000 per bot made millions of
            # objects in a host, for every garbage collection to walk.
            max_markouts=64,
        )
        if setup.account_kind == "paper":
            self.venue = PaperVenue(
                host.redis,
                account_id=setup.account_id,
                instrument=inst,
                bot_id=self.bot_id,
                prefix=setup.prefix,
                lease_key=self.lease.key,
                lease_value=self.lease.value,
                token=self.lease.token,
                book=book,
                defer_fills=True,
            )
        else:
            await self._start_live(setup)
        await self._take_over()
        self.stream = (setup.venue, setup.symbol)
        host.subscribe(self, setup.venue, setup.symbol)
        desired = setup.desired_state
        risk_reason = await host.redis.get(keys.risk_pause(self.bot_id))
        if desired == "paused" or risk_reason:
            reason = "desired state is paused" if desired == "paused" else f"risk: {risk_reason.decode()}"
            self.engine.pause(time.time_ns(), reason)
            self.state = "paused"
        else:
            self.state = "running"
        await host.db.call(
            records.bot_state_set, self.bot_id, self.state, f"risk: {risk_reason.decode()}" if risk_reason else ""
        )
        self._event("lifecycle", "owner", f"loop started on {host.host_id} with fencing token {self.lease.token}")

    async def _start_live(self, setup: records.BotSetup) -> None:
        """A live exchange account: a fenced :class:`LiveVenue` on the account's ccxt gateway."""
        from workers import live_venue

        host = self.host
        try:
            exchange_id, credentials = await host.db_setup.call(live_venue.account_credentials, setup.account_id)
            gateway = live_venue.build_gateway(
                exchange_id, credentials, account_id=setup.account_id, redis_url=host.redis_url
            )
        except Exception as exc:  # undecryptable key, unknown exchange id, refused test address
            reason = f"live account cannot be used: {type(exc).__name__}: {exc}"
            await host.db.call(records.bot_state_set, self.bot_id, "error", reason)
            await host.release_bot(self.bot_id)
            raise StopLoop(reason) from exc
        venue = live_venue.LiveVenue(
            host.redis,
            gateway,
            instrument=setup.instrument,
            bot_id=self.bot_id,
            prefix=setup.prefix,
            lease_key=self.lease.key,
            lease_value=self.lease.value,
            token=self.lease.token,
            deliver=self.push_order_event,
            secrets=tuple(credentials),
        )
        self.venue = venue
        try:
            await venue.start()
        except RetryBudgetExhausted as exc:  # the exchange is unreachable for now: try again later
            host.retry_later(self.bot_id, 10.0)
            raise StopLoop(f"exchange unreachable, retrying: {exc}") from exc
        except ValueError as exc:  # the exchange's market differs from the bot's
            reason = f"configuration refused: {exc}"
            await host.db.call(records.bot_state_set, self.bot_id, "error", reason)
            await host.release_bot(self.bot_id)
            raise StopLoop(reason) from exc

    def push_order_event(self, event: OrderEvent | None) -> None:
        """An order event from a live gateway (None only wakes the loop)."""
        if event is not None:
            self.inbox.append((event, 0))
        self.wake.set()

    async def _take_over(self) -> None:
        """Reconcile with the venue before quoting (see the module docstring)."""
        setup, engine, venue = self.setup, self.engine, self.venue
        ts = time.time_ns()
        # The latest id the bot placed under any owner (set with each fenced place): an order
        # cancelled before its row was written leaves no row, venue order or trade to skip past.
        last_place = await venue.redis.get(keys.bot_last_place(setup.bot_id))
        if last_place:
            engine.ids.skip_past(last_place.decode() if isinstance(last_place, bytes) else last_place)
        on_venue = await venue.restore()
        if isinstance(venue, PaperVenue):
            await self._rows_for_paper_orders(on_venue)
        adopted, cancelled = [], []
        for rep in on_venue:
            # The id sequence resumes after the bot's order rows; paper rows are written behind
            # the venue, so the venue may hold later ids: never reuse one (it would overwrite
            # that order at the venue).
            engine.ids.skip_past(rep.client_order_id)
            if rep.client_order_id in setup.open_orders:  # known: its row was written before the place
                cmd = PlaceOrder(rep.client_order_id, rep.side, rep.price, rep.qty, TimeInForce.GTC)
                wo = engine.orders.on_place_sent(cmd, ts)
                wo.status = OrderState.OPEN
                wo.accepted = True
                wo.filled = rep.filled_qty
                wo.venue_order_id = rep.venue_order_id
                adopted.append(rep.client_order_id)
                self.filled[rep.client_order_id] = rep.filled_qty
            else:
                for ev in await venue.cancel(rep.client_order_id, "unknown at take-over"):
                    await self._order_event_db(ev)
                cancelled.append(rep.client_order_id)
        # Trades the venue made for us that the database does not have yet: record them once.
        since = setup.fills[-1][0] if setup.fills else 0
        missing = await self._record_venue_trades(since)
        for f in missing:  # an order that traded and left the venue before its row was written
            engine.ids.skip_past(f.client_order_id)
        if missing:
            for f in missing:
                setup.fills.append(
                    (
                        f.ts,
                        f.client_order_id,
                        f.side,
                        f.price,
                        f.qty,
                        setup.instrument.cash(int(f.fee)),
                        f.maker,
                        f.trade_id,
                    )
                )
        # Rebuild position and PnL from the recorded fills.
        for ts_f, cid, side, price, qty, fee, maker, trade_id in sorted(setup.fills, key=lambda f: f[0]):
            engine.portfolio.on_fill(
                OrderFilled(
                    ts_f,
                    cid,
                    side,
                    price,
                    qty,
                    0,
                    setup.instrument.cash_units(fee),
                    Liquidity.MAKER if maker else Liquidity.TAKER,
                    trade_id,
                )
            )
        closed = await self.host.db.call(
            records.open_orders_close, self.bot_id, set(adopted), "cancelled", "not open on the venue at take-over"
        )
        self._event(
            "reconcile",
            "take_over",
            f"take-over: {len(adopted)} open orders adopted, {len(cancelled)} unknown cancelled, "
            f"{len(missing)} missed fills recorded, {closed} stale order rows closed, "
            f"position {setup.instrument.quantity(engine.portfolio.position)} {setup.instrument.base}",
            {"adopted": adopted, "cancelled": cancelled, "missed_fills": [f.trade_id for f in missing]},
        )

    async def _rows_for_paper_orders(self, on_venue: list) -> None:
        """Paper order rows are written behind the venue (``_send``): an order the previous owner
        placed just before it died may have none yet. Its row is written now from the venue's
        record (a paper venue only holds orders a fenced owner of this bot placed), so it is
        adopted like any other; an order whose row is closed is left to be cancelled."""
        setup = self.setup
        unknown = [rep for rep in on_venue if rep.client_order_id not in setup.open_orders]
        if not unknown:
            return
        known = await self.host.db.call(records.order_ids_known, [rep.client_order_id for rep in unknown])
        rows = []
        for rep in unknown:
            if rep.client_order_id in known:
                continue
            cmd = PlaceOrder(rep.client_order_id, rep.side, rep.price, rep.qty, TimeInForce.GTC, reason="quote")
            rows.append(
                (self.bot_id, setup.account_id, setup.market_id, setup.instrument, cmd, rep.venue_order_id, rep.ts)
            )
            setup.open_orders[rep.client_order_id] = (rep.side, rep.price, rep.qty, rep.filled_qty)
        if rows:
            await self.host.db.call(records.orders_create, rows)
            self._event(
                "reconcile",
                "order_rows_written",
                f"{len(rows)} open orders on the venue had no row yet (written behind the venue when the "
                "previous owner stopped); recorded from the venue and adopted",
                {"orders": [r[4].client_order_id for r in rows]},
            )

    async def _rows_for_traded_orders(self, trades: list) -> None:
        """An order that traded and left the paper venue before its row was written (its owner
        died within the writer's few ms): its row is written from its trades, as filled."""
        setup = self.setup
        by_cid: dict[str, list] = {}
        for f in trades:
            if f.client_order_id not in setup.open_orders:
                by_cid.setdefault(f.client_order_id, []).append(f)
        if not by_cid:
            return
        known = await self.host.db.call(records.order_ids_known, list(by_cid))
        rows, updates = [], []
        for cid, fills in by_cid.items():
            if cid in known:
                continue
            qty = sum(f.qty for f in fills)
            first = min(fills, key=lambda f: f.ts)
            cmd = PlaceOrder(cid, first.side, first.price, qty, TimeInForce.GTC, reason="quote")
            rows.append((self.bot_id, setup.account_id, setup.market_id, setup.instrument, cmd, "", first.ts))
            updates.append((cid, "filled", "", qty, "recorded at take-over from the venue's trades", setup.instrument))
        if rows:
            await self.host.db.call(records.orders_create, rows)
            await self.host.db.call(records.orders_update, updates)

    async def _record_venue_trades(self, since: int) -> list:
        """Record (once) the venue's trades for us since ``since`` (ns) that the database lacks:
        the take-over's missed fills and the fills of orders that traded while a stop cancelled
        them. Stored fills are unique on (account, venue trade id, ts), so a repeat is harmless."""
        setup = self.setup
        trades = await self.venue.fetch_my_trades(since)
        known = {f[7] for f in setup.fills} | self.recorded_trade_ids
        if trades:  # stored by the event pump (its fills carry our clock's ts, not the venue's)
            known |= await self.host.db.call(records.stored_trade_ids, setup.account_id, [f.trade_id for f in trades])
        missing = [f for f in trades if f.trade_id not in known]
        self.recorded_trade_ids.update(f.trade_id for f in missing)
        if missing and isinstance(self.venue, PaperVenue):
            await self._rows_for_traded_orders(missing)
        if missing:
            rows = [
                records.fill_row(
                    setup, f.ts, f.client_order_id, f.side, f.price, f.qty, int(f.fee), f.maker, f.trade_id
                )
                for f in missing
            ]
            await self.host.db.call(records.fills_record, rows)
        return missing

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
        trips_before = getattr(self.venue, "round_trips", 0)
        latency = self.host.bot_latency_ns
        inbox = self.inbox
        if type(self.venue) is PaperVenue:
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
        self.round_trips.append(getattr(self.venue, "round_trips", 0) - trips_before)
        if self.places != places_before:
            self.send_cycle_ns.append(took)
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
                    if type(venue) is PaperVenue and venue.unconfirmed and self._held is None:
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
        if self._deferred is not None:  # in a paper cycle: sent at its end (``_end_cycle``)
            self._deferred.extend(commands)
            return
        if not self.lease.held:
            raise LeaseLost(self.lease.lost_reason or "lease not held")
        setup = self.setup
        places = [c for c in commands if type(c) is PlaceOrder]
        venue = self.venue
        paper_batch = type(venue) is PaperVenue and all(type(c) in (PlaceOrder, CancelOrder) for c in commands)
        rows_behind = paper_batch and self.host.db.pending() < ROWS_BEHIND_MAX_BACKLOG
        if places and not rows_behind:
            # The order rows exist before anything reaches the venue.
            t0 = time.perf_counter_ns()
            await self.host.db_orders.call(
                records.orders_create,
                [(self.bot_id, setup.account_id, setup.market_id, setup.instrument, c) for c in places],
                owner=self.bot_id,
            )
            self.host.order_row_wait_ns.append(time.perf_counter_ns() - t0)
        if paper_batch:
            # One Redis round trip for all of them; a command that failed is then recovered and
            # retried alone, exactly as below.
            self.places += len(places)
            events, failed = await venue.send_many(commands)
            if self._held is not None:  # confirmed with these writes: their rows go first
                await self._release_held()
            acked: set[str] = set()
            if places and rows_behind:
                # Paper: the venue (Redis) holds every order it took, so the rows follow on the
                # writer instead of being awaited first, already acknowledged where the venue
                # took the order; the order's later updates and fills are queued after them on
                # the same writer. A process that dies first leaves the rows to take-over.
                accepted = {ev.client_order_id: ev for ev in events if type(ev) is OrderAccepted}
                rows = []
                for c in places:
                    ev = accepted.get(c.client_order_id)
                    row = (self.bot_id, setup.account_id, setup.market_id, setup.instrument, c)
                    rows.append(row if ev is None else (*row, ev.venue_order_id, ev.ts))
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
                events = await self._place(cmd)
            elif t is CancelOrder:
                events = await self._cancel(cmd)
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

    async def _order_event_db(self, ev) -> None:
        if self._held is not None:
            self._held.append(ev)
            return
        setup = self.setup
        inst = setup.instrument
        t = type(ev)
        cid = ev.client_order_id
        if t is OrderAccepted:
            self.host.db.submit(
                records.orders_update, [(cid, "open", ev.venue_order_id, None, "", inst, ev.ts)], owner=self.bot_id
            )
        elif t is OrderFilled:
            self.fills += 1
            filled = self.filled.get(cid, 0) + ev.qty
            self.filled[cid] = filled
            status = "filled" if ev.leaves_qty <= 0 else "partially_filled"
            row = records.fill_row(
                setup, ev.ts, cid, ev.side, ev.price, ev.qty, ev.fee, ev.liquidity is Liquidity.MAKER, ev.trade_id
            )
            if ev.trade_id not in self.recorded_trade_ids:  # else stored from the venue's trade list
                self.host.db.submit(records.fills_record, [row], owner=self.bot_id)
            self.host.db.submit(
                records.orders_update, [(cid, status, ev.venue_order_id, filled, "", inst)], owner=self.bot_id
            )
            self.host.publish_bot(
                self.bot_id,
                {
                    "type": "fill",
                    "side": row["side"],
                    "price": str(row["price"]),
                    "qty": str(row["quantity"]),
                    "cid": cid,
                },
            )
        elif t is OrderCancelled:
            if self.filled.get(cid, 0) or cid not in self.filled:
                self.filled.pop(cid, None)
            self.host.db.submit(
                records.orders_update, [(cid, "cancelled", "", None, ev.reason, inst)], owner=self.bot_id
            )
        elif t is OrderRejected and ev.code not in ("unknown_order", "already_filled", "already_closed"):
            self.host.db.submit(
                records.orders_update, [(cid, "rejected", "", None, ev.reason, inst)], owner=self.bot_id
            )

    # ----------------------------------------------------------------------------------------
    def check_desired_state(self, desired: str, kill: bool, risk_paused: bool) -> None:
        """Follow the desired state even if a control message was lost (Redis restart, ...).
        Called by the host every few seconds with what it read for all its bots at once."""
        if self.engine is None or self.state not in ("running", "paused"):
            return
        wanted = None
        if desired == "stopped" or kill:
            wanted = "kill" if kill else "stop"
        elif desired == "paused" and self.state == "running":
            wanted = "pause"
        elif desired == "running" and self.state == "paused" and not risk_paused:
            wanted = "resume"
        # Act only on a mismatch seen twice in a row: the control message (which may carry
        # more, e.g. flatten) normally arrives first.
        if wanted is not None and wanted == self._mismatch:
            self._event("lifecycle", "desired_state", f"{wanted}: following the desired state (no command came)")
            self.push_control(wanted)
            wanted = None
        self._mismatch = wanted

    async def _control(self, message: str) -> None:
        engine = self.engine
        ts = time.time_ns()
        if message == "pause":
            await self._send(engine.pause(ts, "paused"))
            self.state = "paused"
            self.host.db.submit(records.bot_state_set, self.bot_id, "paused", "")
        elif message == "resume":
            engine.resume(ts, "resumed")
            self.state = "running"
            self.host.db.submit(records.bot_state_set, self.bot_id, "running", "")
        elif message.startswith("cancel:"):
            cid = message.partition(":")[2]
            if cid in engine.orders.orders:
                await self._send([CancelOrder(cid, "cancelled by user")])
            elif any(o.client_order_id == cid for o in await self.venue.fetch_open_orders()):
                if self.venue.matches(cid):
                    for ev in await self.venue.cancel(cid, "cancelled by user"):
                        await self._order_event_db(ev)
                else:
                    await self.venue.remove(cid, "cancel")
                if isinstance(self.venue, PaperVenue):  # paper cancels at once
                    self.host.db.submit(
                        records.orders_update,
                        [(cid, "cancelled", "", None, "cancelled by user", self.setup.instrument)],
                    )
                else:  # live: the order may have filled meanwhile; write what the venue says
                    await self._close_orders_from_venue("cancelled by user", [cid])
        elif message in ("stop", "kill", "kill_flatten"):
            await self._stop(message)
        elif message == "reload":  # configuration changed: start again from the database
            await self._stop("reload")
        elif message == "write_refused":
            await self._stop("write_refused")

    async def _stop(self, how: str) -> None:
        """Cancel everything (and place the flatten order first when asked), confirm with the venue
        that nothing with our prefix is open, record the fills that happened meanwhile, and close
        each order row with the status the venue reports."""
        engine, venue = self.engine, self.venue
        ts = time.time_ns()
        self.host.db.submit(records.bot_state_set, self.bot_id, "stopping", "")
        if how == "write_refused":
            self._event("error", "write_refused", self.refused_reason)
        commands = engine.kill(ts, "kill switch") if how.startswith("kill") else engine.stop(ts, how)
        await self._send(commands)
        if how == "kill_flatten":  # before the confirm loop: an IOC must be done before we check
            await self._flatten()
        deadline = time.monotonic() + STOP_CONFIRM_TIMEOUT_S
        left = await venue.fetch_open_orders()
        while left and time.monotonic() < deadline:
            for rep in left:
                await self._cancel_on_venue(rep.client_order_id, how)
            left = await venue.fetch_open_orders()
            if left:
                await asyncio.sleep(0.05)
        live = not isinstance(venue, PaperVenue)
        traded: set[str] = set()  # orders with a fill read from the venue's trade list
        await self._drain_order_events(settle_s=self._pump_settle_s() if live else 0.0)
        if live:  # fills made while cancelling that the pump did not bring: the venue's trade list
            try:
                for f in await self._record_venue_trades(ts - STOP_TRADES_MARGIN_NS):
                    traded.add(f.client_order_id)
                    engine.portfolio.on_fill(
                        OrderFilled(
                            f.ts,
                            f.client_order_id,
                            f.side,
                            f.price,
                            f.qty,
                            0,
                            int(f.fee),
                            Liquidity.MAKER if f.maker else Liquidity.TAKER,
                            f.trade_id,
                        )
                    )
            except (LeaseLost, AuthFailure, asyncio.CancelledError):
                raise
            except Exception as exc:  # the next take-over reads the trade list again
                logger.warning("bot %s: trades not read at stop: %s", self.bot_id, exc)
            await self._drain_order_events()  # anything the pump brought meanwhile (not stored twice)
        if left:
            reason = (
                f"{records.STOP_UNCONFIRMED}: {len(left)} orders still open on the venue after "
                f"{STOP_CONFIRM_TIMEOUT_S:.0f}s; retried without an owner"
            )
            self._event("lifecycle", "stop_unconfirmed", reason)
            await self.host.db.call(records.bot_state_set, self.bot_id, "error", reason)
            await self.host.release_bot(self.bot_id)  # the supervisor retries the stop without an owner
            raise StopLoop(reason)
        if live:
            await self._close_orders_from_venue(how, extra=traded)
        await self.host.db.call(records.open_orders_close, self.bot_id, set(), "cancelled", how)
        if how == "reload":
            self._event("lifecycle", "reload", "configuration reloaded; no order left on the venue")
            await self.host.db.call(records.bot_state_set, self.bot_id, "starting", "")
            await self.host.release_bot(self.bot_id, keep_wanted=True)
            raise StopLoop("reload")
        self._event("lifecycle", how, "stopped; venue confirms no open order with the bot's prefix")
        self._snapshot(time.time_ns())
        if how == "write_refused":
            state, reason = "error", self.refused_reason
        else:
            state, reason = "stopped", "kill switch" if how != "stop" else ""
        await self.host.db.call(records.bot_state_set, self.bot_id, state, reason)
        await self.host.release_bot(self.bot_id)
        raise StopLoop(how)

    def _pump_settle_s(self) -> float:
        """How long a live gateway may take to deliver an event (one poll, bounded)."""
        interval = getattr(getattr(self.venue, "gateway", None), "poll_interval_s", 0.2)
        return min(3.0, max(0.2, 1.5 * float(interval)))

    async def _drain_order_events(self, settle_s: float = 0.0) -> None:
        """Record the order events a live gateway delivered while stopping (cancels, late fills):
        keep draining until no event came for ``settle_s`` (paper: nothing comes this way)."""
        quiet_until = time.monotonic() + settle_s
        while True:
            await asyncio.sleep(0)
            if not self.inbox:
                if time.monotonic() >= quiet_until:
                    return
                await asyncio.sleep(0.05)
                continue
            while self.inbox:
                event, _published = self.inbox.popleft()
                if isinstance(event, OrderEvent):
                    await self._order_event_db(event)
                    self.engine.on_event(event)  # position/PnL only: commands are no longer sent
            quiet_until = time.monotonic() + settle_s

    async def _close_orders_from_venue(
        self, how: str, cids: list[str] | None = None, extra: set[str] | frozenset = frozenset()
    ) -> None:
        """Give each order row still open in the database (or each of ``cids``), and the orders
        in ``extra``, the venue's final status (filled, cancelled, ...) instead of assuming it was
        cancelled; an order the venue still has open, or cannot tell about, is left as it is (a
        closed row only ever changes to ``filled``)."""
        inst = self.setup.instrument
        updates = []
        if cids is None:
            cids = await self.host.db.call(records.open_order_ids, self.bot_id)
        for cid in sorted(set(cids) | set(extra)):
            try:
                rep = await self.venue.fetch_order(cid)
            except (LeaseLost, AuthFailure, asyncio.CancelledError):
                raise
            except Exception as exc:  # unknown: leave it to the blanket close below
                logger.info("bot %s: order %s not looked up at stop: %s", self.bot_id, cid, exc)
                continue
            if rep is None or rep.status not in VENUE_FINAL_STATUS:
                continue  # unknown to the venue (cancelled by the caller) or still open: left as is
            status = VENUE_FINAL_STATUS[rep.status]
            updates.append((cid, status, rep.venue_order_id, rep.filled_qty, how, inst))
        if updates:
            await self.host.db.call(records.orders_update, updates)

    async def _cancel_on_venue(self, cid: str, reason: str) -> None:
        """Cancel one order the venue holds (known to the matching engine or not)."""
        venue = self.venue
        try:
            if venue.matches(cid):
                for ev in await venue.cancel(cid, reason):
                    await self._order_event_db(ev)
            else:
                await venue.remove(cid, "cancel")
        except (LeaseLost, AuthFailure, asyncio.CancelledError):
            raise
        except Exception as exc:  # injected/temporary venue error: the confirm loop tries again
            self.place_errors += 1
            logger.info("bot %s: cancel %s failed (%s); retrying", self.bot_id, cid, exc)

    async def _flatten(self) -> None:
        engine = self.engine
        pos = engine.portfolio.position
        bid, ask = engine.book.best_bid(), engine.book.best_ask()
        if not pos:
            self._event("lifecycle", "flatten", "flatten: the position is already flat")
            return
        if bid is None or ask is None:
            self._event("lifecycle", "flatten_failed", "flatten: no book to price the taker order; position kept")
            return
        side = Side.SELL if pos > 0 else Side.BUY
        cross = max(5, (bid + ask) * FLATTEN_CROSS_BPS // 20_000)  # ticks through the touch
        price = max(1, bid - cross) if side is Side.SELL else ask + cross
        cmd = PlaceOrder(engine.ids.next(), side, price, abs(pos), TimeInForce.IOC, reason="flatten", reduce_only=True)
        engine.orders.on_place_sent(cmd, time.time_ns())
        self._event("lifecycle", "flatten", f"flattening {self.setup.instrument.quantity(abs(pos))} with a taker order")
        await self._send([cmd])

    # ----------------------------------------------------------------------------------------
    def _event(self, kind: str, code: str, message: str, data: dict | None = None) -> None:
        self.host.db.submit(records.bot_events_record, [(self.bot_id, time.time_ns(), kind, code, message, data)])

    def _flush_notes(self) -> None:
        notes = self.engine.notes
        if not notes:
            return
        rows = []
        while notes:
            n = notes.popleft()
            rows.append((self.bot_id, n.ts, n.kind, n.code, n.message, None))
        self.host.db.submit(records.bot_events_record, rows)

    def _snapshot(self, ts: int) -> None:
        """PnL snapshot (every second) and the live status for the UI."""
        engine, inst = self.engine, self.setup.instrument
        snap = engine.portfolio.snapshot(ts)
        self.host.db.submit(
            records.pnl_snapshots_record,
            [(ts, self.bot_id, inst, snap.position, snap.cash, snap.mid, snap.realized, snap.unrealized, snap.fees,
              snap.equity, snap.peak, snap.drawdown)],
            owner=self.bot_id,
        )  # fmt: skip
        quotes = [
            {
                "side": "buy" if o.side is Side.BUY else "sell",
                "price": str(inst.price(o.price)),
                "qty": str(inst.quantity(o.remaining)),
            }
            for o in engine.orders.orders.values()
        ]
        status = {
            "type": "status",
            "state": self.state,
            "owner": self.host.host_id,
            "token": self.lease.token,
            "position": str(inst.quantity(snap.position)),
            "equity": str(inst.cash(snap.equity)),
            "realized": str(inst.cash(snap.realized)),
            "unrealized": str(inst.cash(snap.unrealized)),
            "drawdown": str(inst.cash(snap.drawdown)),
            "orders": quotes,
            "risk": engine.status.action.name.lower(),
            "ts": ts,
        }
        self.host.set_bot_status(self.bot_id, status)
