"""The loop of a hosted hedged bot (strategy ``hedged_maker``, :mod:`apps.bots.hedged`).

A :class:`workers.botloop.BotRunner` whose bot is hedged hands its loop to :class:`HedgedLoop`:
two legs (:mod:`workers.hedged_legs`: spot or linear perpetual, each a fenced paper venue on its
feed's shared book or a live ccxt account) with its own :class:`trading.runner.Runner` (the
backtester's per-event algorithm), and one :class:`trading.hedger.HedgedMaker` deciding for
both. Each leg's runner drives an adapter (:class:`LegEngine`) that hands market events, order
reports (a live leg's from its gateway, queued with its trades) and timers to the hedged maker and
routes its ``(venue, command)`` pairs to the runner of their leg (deferred, sent at the end of
the cycle). So a maker fill makes the hedge in the same cycle, sent in the same flush, with
partial fills hedged as they come; the records (order rows, fills, the held-until-confirmed
fills) are the single-venue bot's (:mod:`workers.bot_records`), written per leg.

Safety notes of the hedged maker (hedge book stale or unsynced, hedge failed or timed out,
retry budget spent, exposure limits) stop maker quoting at once inside the kernel; here each
``quoting_stopped`` / ``hedge_budget_exhausted`` also becomes a bot event of kind ``risk`` (which
the notifications' event scan sends as a risk breach) and an incident naming the exposure
left. Quoting resumes by itself only when flat with a fresh hedge book, or on the trader's
``hedge_resume`` control. Per-fill attribution rows are written as fills get covered. A paper
perpetual leg is liquidated by :mod:`workers.hedged_liquidation` (checked every pass).

Take-over: a new owner cancels both legs' open orders (a hedge left working by a dead owner
included), records the trades the venues made that the database lacks, rebuilds both positions
from every recorded fill, and its first timer hedges whatever exposure is left: a maker fill the
previous owner did not hedge is hedged once (the hedge fills already made are counted).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time

from apps.bots.services import bot_events_record
from apps.portfolio.services import perp_snapshots_record, pnl_snapshots_record
from connectors.errors import AuthFailure
from trading import hedge_margin
from trading.contracts import decimal_text
from trading.events import OrderEvent, OrderFilled, OrderRejected, PlaceOrder, Timer
from trading.hedger import HEDGE, MAKER, HedgedMaker
from workers import hedged_cancel, hedged_legs, hedged_liquidation, hedged_records, keys, records
from workers.bot_control import StopLoop
from workers.hedged_legs import HedgeLeg
from workers.hedged_pnl import HedgedPnl
from workers.paper_venue import LeaseLost

logger = logging.getLogger(__name__)
TIMER_S = 0.1  # hedge timeouts, retries and staleness are checked this often
STATUS_S = 1.0
STOP_CONFIRM_TIMEOUT_S = 10.0
STOP_CODES = {"quoting_stopped", "hedge_budget_exhausted"}


class LegEngine:
    """What a leg's runner takes for an engine: events to the hedged maker, commands routed."""

    def __init__(self, loop: HedgedLoop, leg: str) -> None:
        self.loop = loop
        self.leg = leg

    def on_event(self, event) -> list:
        loop = self.loop
        bot = loop.bot
        if type(event) is Timer:
            out = bot.on_timer(event.ts) if self.leg == MAKER else []
        elif isinstance(event, OrderEvent):
            before = len(bot.ledger.records)
            out = bot.on_order(self.leg, event)
            if isinstance(event, OrderFilled):
                loop.pnl.on_fill(self.leg, event)
            if self.leg == MAKER and len(bot.ledger.records) > before and getattr(event, "trade_id", None):
                loop.maker_trade_of[id(bot.ledger.records[-1])] = event.trade_id
        else:
            out = bot.on_market(self.leg, loop.r.clock())
        return loop.route(self.leg, out)


class HedgedLoop:
    """Run a hedged bot for ``runner`` (a :class:`workers.botloop.BotRunner` holding its lease)."""

    def __init__(self, runner) -> None:
        self.r = runner
        self.bot: HedgedMaker | None = None
        self.pnl: HedgedPnl | None = None
        self.legs: dict[str, HedgeLeg] = {}
        self.paused = False
        self.maker_trade_of: dict[int, str] = {}  # ledger record -> maker venue trade id
        self._notes_seen = 0
        self._written_done: set[int] = set()
        self._mismatch: str | None = None

    # ----------------------------------------------------------------------------------------
    async def start(self) -> None:
        r = self.r
        host = r.host
        maker_setup, hedge_setup, settings = await host.db_setup.call(hedged_records.hedged_setup, r.bot_id)
        legs, config, errors = hedged_legs.configure(maker_setup, hedge_setup, settings)
        if config is None:
            await self.refuse(f"configuration refused: {errors}")
        try:
            await hedged_legs.open_legs(self, maker_setup, hedge_setup)
        except BaseException:
            await hedged_legs.close_venues(self.legs.values())
            raise
        self.bot = HedgedMaker(
            legs,
            config,
            host.book(maker_setup.venue, maker_setup.symbol),
            host.book(hedge_setup.venue, hedge_setup.symbol),
            prefix=maker_setup.prefix[:-1],
        )
        self.bot.maker_ids.skip_past(f"{maker_setup.prefix}-{_b36(maker_setup.client_id_start - 1)}")
        self.bot.hedge_ids.skip_past(f"{hedge_setup.prefix}-{_b36(hedge_setup.client_id_start - 1)}")
        self.pnl = HedgedPnl(maker_setup, hedge_setup, {name: leg.perp for name, leg in self.legs.items()})
        try:
            await self._take_over()
            hedged_legs.after_take_over(self.legs.values())
            self.liq = hedged_liquidation.watch(self, maker_setup)  # paper perpetual legs' liquidation
        except BaseException:
            await hedged_legs.close_venues(self.legs.values())
            raise
        r.check_desired_state = self.check_desired_state  # the host's periodic check, for two legs
        self._use(self.legs[MAKER])
        risk_reason = maker_setup.risk_paused_reason  # the risk sweep's pause, from the bot's row
        r.state = "paused" if maker_setup.desired_state == "paused" or risk_reason else "running"
        self.paused = r.state == "paused"
        await host.db.call(records.bot_state_set, r.bot_id, r.state, f"risk: {risk_reason}" if risk_reason else "")
        r._event("lifecycle", "owner", f"hedged loop started on {host.host_id} with fencing token {r.lease.token}")

    async def refuse(self, reason: str) -> None:
        """The bot cannot run as configured: ``error`` with the reason, lease released."""
        r = self.r
        await r.host.db.call(records.bot_state_set, r.bot_id, "error", reason)
        await r.host.release_bot(r.bot_id)
        raise StopLoop(reason)

    def _use(self, leg: HedgeLeg) -> None:
        """Point the runner's record/send machinery at one leg."""
        r = self.r
        r.setup, r.venue, r.runner = leg.setup, leg.venue, leg.runner
        r.filled, r._acked, r.recorded_trade_ids = leg.filled, leg.acked, leg.recorded_trade_ids

    async def _take_over(self) -> None:
        bot = self.bot
        cancelled = []
        for leg in self.legs.values():
            self._use(leg)
            setup = leg.setup
            ids = bot.maker_ids if leg.name == MAKER else bot.hedge_ids
            for rep in await leg.venue.restore():
                ids.skip_past(rep.client_order_id)
                for ev in await leg.venue.cancel(rep.client_order_id, "hedged bot take-over"):
                    self.r._record(ev)
                cancelled.append(rep.client_order_id)
            since = setup.fills[-1][0] if setup.fills else 0
            for f in await self.r._record_venue_trades(since):
                ids.skip_past(f.client_order_id)
                setup.fills.append((f.ts, f.client_order_id, f.side, f.price, f.qty, 0, f.maker, f.trade_id))
            position = sum(int(side) * qty for _ts, _cid, side, _p, qty, *_ in setup.fills)
            self.pnl.replay(leg.name, setup)
            if leg.name == MAKER:
                bot.maker_position = position
            else:
                bot.hedge_position = position
        await self.r.host.db.call(records.open_orders_close, self.r.bot_id, set(), "cancelled", "hedged take-over")
        self.r._event(
            "reconcile",
            "take_over",
            f"hedged take-over: {len(cancelled)} open orders cancelled; maker position "
            f"{bot.maker_position} lots, hedge position {bot.hedge_position} lots, exposure {float(bot.exposure()):g}",
            {"cancelled": cancelled},
        )

    # ----------------------------------------------------------------------------------------
    def route(self, leg: str, commands: list) -> list:
        """The hedged maker's commands: this leg's returned (its runner defers them), the other
        leg's handed to that leg's runner. While paused, maker places are dropped."""
        own = []
        for venue, command in commands:
            if venue == MAKER and self.paused and type(command) is PlaceOrder:
                self.bot.maker_orders.pop(command.client_order_id, None)
                continue
            if type(command) is PlaceOrder and self._margin_refused(venue, command):
                continue
            if venue == leg:
                own.append(command)
            else:
                self.legs[venue].runner.send([command], self.r.clock())
        return own

    def _margin_refused(self, venue: str, command: PlaceOrder) -> bool:
        """A perpetual leg's order its :class:`~trading.perp_risk.PerpRisk` refuses
        (:func:`trading.hedge_margin.refusal`, the rule the backtester applies too: position,
        working orders of that side, initial margin against the free margin) is not sent: it is
        answered on that leg's next pass, as an exchange refuses it, so the hedger handles it as
        any refused hedge (quoting stops, retried within the budget, an incident with the exposure
        left)."""
        leg = self.legs.get(venue)
        decision = hedge_margin.refusal(leg.perp if leg is not None else None, self.bot, venue, command)
        if decision is None:
            return False
        reason = hedge_margin.reason(venue, decision)
        leg.inbox.append((OrderRejected(self.r.clock(), command.client_order_id, reason, decision.code), 0))
        self.r.wake.set()
        return True

    async def loop(self) -> None:
        r = self.r
        try:
            for leg in self.legs.values():  # each leg hears its own feed (unsubscribed below)
                r.host.subscribe(leg, leg.setup.venue, leg.setup.symbol)
            await self._loop()
        finally:
            for leg in self.legs.values():
                for subs in r.host.subscribers.values():
                    subs.discard(leg)
            self._write_attribution(final=True)
            await hedged_legs.close_venues(self.legs.values())
            if r.venue is not None and getattr(r.venue, "reports_later", False):
                r.venue = None  # closed above (the bot's run() closes r.venue otherwise)

    async def _loop(self) -> None:
        r = self.r
        loop = asyncio.get_running_loop()
        next_timer = time.monotonic() + random.random() * TIMER_S
        next_status = time.monotonic()
        legs = list(self.legs.values())
        while True:
            if not r.lease.held:
                raise LeaseLost(r.lease.lost_reason or "lease not renewed")
            timeout = max(0.0, next_timer - time.monotonic())
            dues = [d for d in (leg.venue.matching.next_due() for leg in legs) if d is not None]
            if dues:
                timeout = min(timeout, max(0.0, (min(dues) - r.clock()) / 1e9))
            if not r.controls and not any(leg.inbox or leg.pending_book is not None for leg in legs):
                r.wake.clear()
                if timeout > 0:
                    handle = loop.call_later(timeout, r.wake.set)
                    await r.wake.wait()
                    handle.cancel()
            while r.controls:
                await self._control(r.controls.popleft())
            now = r.clock()
            for leg in legs:
                due = leg.venue.matching.next_due()
                if due is not None and now >= due:
                    self._guard(leg, lambda leg=leg, now=now: leg.runner.answers(now))
                for _ in range(len(leg.inbox)):  # trades and (live) the gateway's order events, in order
                    event, _published = leg.inbox.popleft()
                    if isinstance(event, OrderEvent):
                        self._guard(leg, lambda leg=leg, event=event: leg.runner.reports([event]))
                    else:
                        self._guard(leg, lambda leg=leg, event=event: leg.runner.market(event, r.clock()))
                if leg.pending_book is not None:
                    event, _published = leg.pending_book
                    leg.pending_book = None
                    self._guard(leg, lambda leg=leg, event=event: leg.runner.market(event, r.clock()))
            self.liq.check(r.clock())
            mono = time.monotonic()
            # Timers start once the hedge feed has been seen: before, the hedger would count a
            # hedge of a taken-over exposure against an empty book as failed.
            if mono >= next_timer:
                next_timer = mono + TIMER_S
                if self.bot.hedge_book_ts is not None:
                    for leg in legs:
                        self._guard(leg, lambda leg=leg: leg.runner.timer(r.clock()))
            await self._flush()
            self._notes()
            if mono >= next_status:
                next_status = mono + STATUS_S
                self._status()
                self._write_attribution()
                await self._feed_interest()

    def _guard(self, leg: HedgeLeg, step) -> None:
        """One step of a leg's runner; one bad event never kills the loop."""
        self._use(leg)
        try:
            step()
        except (LeaseLost, StopLoop, AuthFailure, asyncio.CancelledError):
            raise
        except Exception as exc:
            logger.exception("bot %s: hedged %s step failed", self.r.bot_id, leg.name)
            self.r._event("error", "event_failed", f"{leg.name}: {type(exc).__name__}: {exc}")

    async def _flush(self) -> None:
        """Send both legs' deferred commands (each leg one round trip), with their answers back
        through the runners, until neither leg has anything more to send (bounded)."""
        for _ in range(10):
            busy = False
            for leg in self.legs.values():
                if leg.runner.deferred or leg.runner.held is not None:
                    busy = True
                    self._use(leg)
                    await self.r._flush()
            if not busy:
                return

    # ----------------------------------------------------------------------------------------
    def _notes(self) -> None:
        bot, r = self.bot, self.r
        notes = bot.notes[self._notes_seen :]
        if not notes:
            return
        self._notes_seen = len(bot.notes)
        rows = []
        base = bot.legs.maker.instrument.base
        for n in notes:
            stop = n.code in STOP_CODES
            rows.append((r.bot_id, n.ts, "risk" if stop else "hedge", f"hedge_{n.code}" if stop else n.code, n.message,
                         {"exposure": n.exposure, "halted": bot.halted}))  # fmt: skip
            if stop:
                message = f"{n.message} (exposure left: {n.exposure} {base})"
                data = {"exposure": n.exposure, "asset": base, "halted": bot.halted, "exhausted": bot.exhausted}
                r.host.db.submit(hedged_records.hedge_incident, r.bot_id, n.code, message, data)
        r.host.db.submit(bot_events_record, rows)
        if len(bot.notes) > 10_000:  # keep the kernel's list short in a long-running host
            del bot.notes[:5_000]
            self._notes_seen = len(bot.notes)

    def _write_attribution(self, final: bool = False) -> None:
        """Rows of maker fills covered since the last write (and, at the end, the open ones).
        The covered records at the head of the kernel's list are then dropped from it (the
        FIFO pairing keeps its own references), so a long-running bot's list stays short."""
        bot, r = self.bot, self.r
        if bot is None:
            return
        rows = []
        records_ = bot.ledger.records
        for rec in records_:
            key = id(rec)
            if key in self._written_done:
                continue
            trade_id = self.maker_trade_of.get(key)
            if trade_id is None or (rec.done_ts is None and not final):
                continue
            rows.append(hedged_records.attribution_row(r.bot_id, trade_id, rec))
            if rec.done_ts is not None:
                self._written_done.add(key)
        if rows:
            r.host.db.submit(hedged_records.attributions_record, rows, owner=r.bot_id)
        head = 0
        while head < len(records_) and id(records_[head]) in self._written_done:
            key = id(records_[head])
            self._written_done.discard(key)
            self.maker_trade_of.pop(key, None)
            head += 1
        if head:
            del records_[:head]

    def _status(self) -> None:
        bot, r = self.bot, self.r
        maker, hedge = self.legs[MAKER].setup, self.legs[HEDGE].setup
        mi, hi = maker.instrument, hedge.instrument
        quotes = [
            {"side": o.side.name.lower(), "price": str(mi.price(o.price)), "qty": str(mi.quantity(o.leaves))}
            for o in bot.maker_orders.values()
        ]
        perps = {f"{name}_perp": leg.perp_status() for name, leg in self.legs.items() if leg.perp is not None}
        status = {
            "type": "status",
            "state": r.state,
            "owner": r.host.host_id,
            "token": r.lease.token,
            "position": str(mi.quantity(bot.maker_position)),
            "orders": quotes,
            "risk": "halted" if bot.halted else "ok",
            "ts": r.clock(),
            "hedged": {
                "maker": {
                    "venue": maker.venue,
                    "symbol": maker.symbol,
                    "position": str(mi.quantity(bot.maker_position)),
                },
                "hedge": {
                    "venue": hedge.venue,
                    "symbol": hedge.symbol,
                    "position": str(hi.quantity(bot.hedge_position)),
                    "in_flight": len(bot.hedge_orders),
                },
                **perps,
                "exposure": decimal_text(bot.exposure(), 12),
                "halted": bot.halted,
                "exhausted": bot.exhausted,
                "paused": self.paused,
            },
        }
        if "maker_perp" in perps:  # the bot's own market is the maker leg's: its page's perpetual card
            status["perp"] = perps["maker_perp"]
        r.host.set_bot_status(r.bot_id, status)
        self._snapshot()

    def _snapshot(self) -> None:
        """The PnL snapshot over both legs (read by the risk sweep and the bot's charts); funding
        a perpetual leg booked since the last one becomes a bot event naming the leg."""
        r, bot, now = self.r, self.bot, self.r.clock()
        pnl = self.pnl
        pnl.mark(MAKER, now, bot.maker_book)
        pnl.mark(HEDGE, now, bot.hedge_book)
        for leg, entry in pnl.take_funding():
            r._event(*hedged_records.funding_event(leg, self.legs[leg].perp, entry))
        row = pnl.row(now, r.bot_id)
        if row is not None:
            writer = perp_snapshots_record if pnl.exact else pnl_snapshots_record
            r.host.db.submit(writer, [row], owner=r.bot_id)

    async def _feed_interest(self) -> None:
        """Keep the hedge leg's feed wanted (the supervisor only asks for the maker market's)."""
        hedge = self.legs[HEDGE].setup
        member = f"{hedge.venue}|{hedge.symbol}"
        pipe = self.r.host.redis.pipeline()
        pipe.set(keys.feed_interest(hedge.venue, hedge.symbol), member, ex=60)
        pipe.sadd(keys.feeds_wanted(), member)
        await pipe.execute()

    # ----------------------------------------------------------------------------------------
    def check_desired_state(self, desired: str, kill: bool, risk_paused: bool) -> None:
        """Follow the desired state when a control message was lost (as a single-venue bot:
        act on a mismatch seen twice in a row)."""
        r = self.r
        if r.state not in ("running", "paused"):
            return
        wanted = None
        if desired == "stopped" or kill:
            wanted = "kill" if kill else "stop"
        elif (desired == "paused" or risk_paused) and r.state == "running":
            wanted = "pause"
        elif desired == "running" and r.state == "paused" and not risk_paused:
            wanted = "resume"
        if wanted is not None and wanted == self._mismatch:
            r.push_control(wanted)
            wanted = None
        self._mismatch = wanted

    async def _control(self, message: str) -> None:
        r, bot = self.r, self.bot
        now = r.clock()
        if message == "pause":
            self.paused = True
            for cmd in bot._cancel_quotes():
                self.legs[MAKER].runner.send([cmd[1]], now)
            await self._flush()
            r.state = "paused"
            r.host.db.submit(records.bot_state_set, r.bot_id, "paused", "")
        elif message == "resume":
            self.paused = False
            r.state = "running"
            r.host.db.submit(records.bot_state_set, r.bot_id, "running", "")
        elif message == "hedge_resume":  # the trader's decision: quote again, flat or not
            bot.resume(now, "resumed by the trader")
            self._notes()
        elif message.startswith("cancel:"):  # an order cancelled by the user or reconciliation
            await hedged_cancel.cancel_one(self, message.partition(":")[2])
        elif message in ("stop", "kill", "kill_flatten", "reload", "write_refused"):
            await self._stop(message)

    async def _stop(self, how: str) -> None:
        """Cancel both legs' orders, confirm with the venues that nothing is open, close the rows.
        An exposure left unhedged is said in the stop event (it is not flattened)."""
        r, bot = self.r, self.bot
        r.host.db.submit(records.bot_state_set, r.bot_id, "stopping", "")
        self.paused = True
        deadline = time.monotonic() + STOP_CONFIRM_TIMEOUT_S
        left: list = []
        for leg in self.legs.values():
            self._use(leg)
            left = await leg.venue.fetch_open_orders()
            while left and time.monotonic() < deadline:
                for rep in left:
                    await r._cancel_on_venue(rep.client_order_id, how)
                left = await leg.venue.fetch_open_orders()
            if left:
                break
        await self._flush()
        self._write_attribution(final=True)
        self._snapshot()  # the last one counts every fill
        exposure = f"{float(bot.exposure()):g} {bot.legs.maker.instrument.base}"
        if left:
            reason = f"{records.STOP_UNCONFIRMED}: {len(left)} orders still open after {STOP_CONFIRM_TIMEOUT_S:.0f}s"
            await r.host.db.call(records.bot_state_set, r.bot_id, "error", reason)
            await r.host.release_bot(r.bot_id)
            raise StopLoop(reason)
        await r.host.db.call(records.open_orders_close, r.bot_id, set(), "cancelled", how)
        r._event("lifecycle", how, f"stopped; no open order on either venue; exposure left {exposure}")
        if how == "reload":
            await r.host.db.call(records.bot_state_set, r.bot_id, "starting", "")
            await r.host.release_bot(r.bot_id, keep_wanted=True)
            raise StopLoop("reload")
        state, reason = ("error", r.refused_reason) if how == "write_refused" else ("stopped", "")
        await r.host.db.call(records.bot_state_set, r.bot_id, state, reason)
        await r.host.release_bot(r.bot_id)
        raise StopLoop(how)


def _b36(n: int) -> str:
    from trading.order_ids import to_base36

    return to_base36(max(n, 0)) if n >= 0 else ""
