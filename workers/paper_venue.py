"""A paper venue whose state lives in Redis, so it survives the death of the process.

Matching is ``trading.fillsim.SimulatedExchange`` (the backtester's fill model, its state in
memory) run in the owning bot loop; every change it makes — an order accepted, filled, cancelled —
is recorded in Redis through a :class:`workers.paper_store.PaperStore` (fenced Lua writes: the
caller must still hold the bot's lease; each place/cancel logged with its fencing token). A new
owner finds the open orders "on the venue" (``restore``), the trades it missed
(``fetch_my_trades``) and the paper balance changes (``fetch_balances``).
"""

from __future__ import annotations

import time
from decimal import Decimal

from trading.book import OrderBook
from trading.events import (
    CancelOrder,
    OrderAccepted,
    OrderCancelled,
    OrderEvent,
    OrderFilled,
    OrderRejected,
    PlaceOrder,
    TimeInForce,
)
from trading.fillsim import SimulatedExchange
from trading.instruments import Instrument, Side
from trading.latency import LatencyModel
from trading.oms import to_base36
from trading.ports import FillReport, OrderReport
from trading.queue import QueueModel
from workers.paper_faults import InjectedVenueError, PaperFaults
from workers.paper_matching import PaperMatching
from workers.paper_reports import moved_balances, order_record, order_report, trade_record, with_trade_ids
from workers.paper_store import PaperStore

CLOSED_KEPT = 16  # closed orders the matching engine of one bot remembers


class LeaseLost(Exception):
    """The bot's lease is no longer ours: the write was refused and the loop must stop."""


class PaperVenue:
    """Paper order entry for one bot (client-id prefix) on one account and symbol: a
    :class:`trading.ports.BotVenue` whose orders, trades and balance movements live in Redis."""

    holds_orders = True  # Redis keeps every order it took: order rows may follow the venue
    reports_later = False  # every order event answers a call
    settle_s = 0.0
    round_trips = 0  # waits for Redis (a statistic: a quote cycle makes 0-3)

    def __init__(
        self,
        redis,
        *,
        account_id: int,
        instrument: Instrument,
        bot_id: int,
        prefix: str,
        lease_key: str,
        lease_value: str = "",
        token: int = 0,
        faults: PaperFaults | None = None,
        book: OrderBook | None = None,
        defer_fills: bool = False,
        balances: dict[str, Decimal] | None = None,
        clock=time.time_ns,
        latency: LatencyModel | None = None,
        queue: QueueModel | None = None,
    ) -> None:
        self._clock = clock  # ns; every stamp of this venue (a test gives a deterministic one)
        # ``defer_fills`` (a bot loop): the writes recording fills that market events made are
        # kept here and sent with the next write (see ``_persist``); else written at once.
        self.defer_fills = defer_fills
        self.balances = dict(balances or {})  # the account's paper balances before any fill
        self.account_id = account_id
        self.instrument = instrument
        self.symbol = instrument.symbol
        self.bot_id = bot_id
        self.prefix = prefix
        self.lease_key = lease_key
        self.lease_value = lease_value
        self.token = token
        # The matching engine remembers recently closed orders (a cancel that crosses a fill is
        # answered "already filled"); a backtest keeps 10,000, a bot loop needs far fewer: this
        # venue answers cancels of orders it no longer holds itself, and 10,000 closed orders
        # per bot (500 bots: millions of objects) made every garbage collection of the host slow.
        # ``latency``/``queue``: the fill model's (none and risk-averse by default, as a backtest's).
        self.sim = SimulatedExchange(
            instrument, latency=latency, queue=queue, venue_prefix=f"paper{account_id}", keep_closed=CLOSED_KEPT
        )
        self._matching = PaperMatching(self)
        self.store = PaperStore(redis, account_id=account_id, symbol=self.symbol, bot_id=bot_id,
                                lease_key=lease_key, lease_value=lease_value, token=token)  # fmt: skip
        # Venue trade ids are made here, not by Redis, so that a fill needs no answer before
        # the engine sees it (see ``_persist``): unique per owner (bot, fencing token and the
        # millisecond this owner started, in case Redis lost its counters) and fill.
        self._trade_ids = f"p{account_id}-{bot_id}.{token}.{to_base36(clock() // 1_000_000)}-"
        self._trades_made = 0
        # Fenced writes of fills that market events made, not yet sent (``confirm``, ``send_many``).
        self._unconfirmed: list[tuple] = []
        # A call that carried deferred fill writes failed (Redis error): whether Redis applied
        # them is unknown, so the next confirm() raises it and the held fill events are dropped
        # (the venue's trade list is the truth: take-over and reconciliation record what it holds).
        self._unconfirmed_failed: BaseException | None = None
        self._orders: dict[str, dict] = {}  # our open orders as stored in Redis
        # Places the venue took whose answer was lost (injected timeouts): ``recover_place`` must
        # not call them "never arrived" once they are gone (cancelled in the same batch).
        self._answer_lost: set[str] = set()
        self._last_ts = 0
        self.faults = faults if faults is not None else PaperFaults.from_env(account_id)
        # The host's book for this feed, shared by its bots and kept up to date by the host: the
        # matching engine reads it instead of applying every snapshot itself. It is attached
        # after ``restore`` (restored orders rest as if on an empty book, as a new owner's
        # would, and fill as makers on the next book event if they are crossed by then).
        self._shared_book = book

    @property
    def redis(self):
        """The Redis client of the venue's state (the store's)."""
        return self.store.redis

    @redis.setter
    def redis(self, client) -> None:
        self.store.redis = client

    # ----------------------------------------------------------------------------------------
    def _ts(self) -> int:
        ts = max(self._clock(), self._last_ts + 1)
        self._last_ts = ts
        return ts

    @property
    def matching(self) -> PaperMatching:
        """The matching engine as the runner drives it (its writes deferred: ``unconfirmed``)."""
        return self._matching

    @property
    def unconfirmed(self) -> bool:
        """Fill writes are queued that Redis has not answered yet (see :meth:`confirm`)."""
        return bool(self._unconfirmed)

    async def confirm(self) -> None:
        """Send the deferred fill writes and wait for Redis; raise :class:`LeaseLost` if one was
        refused (a Redis error escapes as from any write). Every other call of this venue
        confirms first (or sends them ahead of its own writes, in the same script call), so
        nothing reads or writes around an unconfirmed fill."""
        if self._unconfirmed_failed is not None:
            failed, self._unconfirmed_failed = self._unconfirmed_failed, None
            raise failed
        if not self._unconfirmed:
            return
        ops, self._unconfirmed = self._unconfirmed, []
        replies = await self._exec(ops)
        if not all(replies):
            raise LeaseLost("fill refused: lease no longer ours")

    async def restore(self) -> list[OrderReport]:
        """Load our open orders from Redis into the matching engine; return them."""
        ts = self._ts()
        for cid, o in (await self.store.orders(self.prefix)).items():
            self._orders[cid] = o
            leaves = o["qty"] - o["filled"]
            if leaves > 0:
                self.sim.submit(PlaceOrder(cid, Side(o["side"]), o["price"], leaves, TimeInForce.GTC), ts)
        self.sim.advance(ts)  # acknowledgements of restored orders are not news
        self._attach_book()
        return [order_report(self.symbol, o) for o in self._orders.values()]

    def _attach_book(self) -> None:
        if self._shared_book is not None:
            self.sim.use_shared_book(self._shared_book)
            self._shared_book = None

    async def fetch_open_orders(self) -> list[OrderReport]:
        """The venue's open orders with our prefix, read from Redis (the venue's truth)."""
        if self._unconfirmed:
            await self.confirm()
        return [order_report(self.symbol, o) for o in (await self.store.orders(self.prefix)).values()]

    async def fetch_order(self, client_order_id: str) -> OrderReport | None:
        """One of our orders while the venue holds it (open or partly filled), else None."""
        if self._unconfirmed:
            await self.confirm()
        o = await self.store.order(client_order_id)
        return None if o is None else order_report(self.symbol, o)

    async def fetch_balances(self) -> dict[str, Decimal]:
        """The account's paper balances of this symbol's two currencies: as configured, moved by
        every fill of the account on this symbol (``delta``, kept by the fill script)."""
        if self._unconfirmed:
            await self.confirm()
        return moved_balances(self.balances, self.instrument, await self.store.moved())

    def scrub(self, text: str) -> str:
        return text  # a paper account has no credential

    async def close(self) -> None:
        """Nothing to release: the venue's state is in Redis and the connections are the host's."""

    async def fetch_my_trades(self, since_ts: int = 0) -> list[FillReport]:
        """Our trades (this prefix) since ``since_ts`` from the venue's trade log, oldest first
        (fees in cash units)."""
        if self._unconfirmed:
            await self.confirm()
        return await self.store.trades(self.prefix, since_ts)

    # ----------------------------------------------------------------------------------------
    async def place(self, command: PlaceOrder) -> list[OrderEvent]:
        """Send an order (fenced); return the order events that result at once.

        May raise (injected 429/5xx before anything happened, or a lost response after the venue
        took the order): the caller then looks the order up by client id with
        :meth:`recover_place` before any retry, so an order is never placed twice."""
        if self._unconfirmed:
            await self.confirm()
        if self.faults is not None:
            await self.faults.before("place")
            if self.faults.drop_place():
                return []  # lost before the venue: no order, no answer
        ts = self._ts()
        record = order_record(self.account_id, command, ts)
        (ok,) = await self._exec([self.store.put(record)])
        if not ok:
            raise LeaseLost(f"place {command.client_order_id} refused: lease no longer ours")
        self._orders[command.client_order_id] = record
        if self.faults is not None and self.faults.lose_response():
            self._answer_lost.add(command.client_order_id)
            raise TimeoutError(f"place {command.client_order_id}: response lost (injected timeout)")
        self.sim.submit(command, ts)
        return await self._persist(self.sim.advance(ts))

    async def send_many(self, commands: list) -> tuple[list[OrderEvent], list[tuple[object, Exception]]]:
        """Send places and cancels (in order) with one Redis round trip; return the order events
        that result and the commands that failed, each with its error.

        The matching engine runs first, locally; then one script call carries, in order, every
        fenced write: each place (stored and logged with our token), each cancel (removed and
        logged), and what matching made of them (a post-only order that would cross is removed
        again, fills are recorded). A refused write (lease lost) raises :class:`LeaseLost`, a
        Redis error escapes: either way the loop stops and the next owner restores from Redis,
        the venue's truth, which holds a prefix of these writes (as with one call per command).
        A failed command (injected 429/5xx before anything happened, or a lost response after
        the venue took the order) is the caller's to recover as after :meth:`place`."""
        failed: list[tuple[object, Exception]] = []
        unknown: list[str] = []  # cancels of orders not open at the venue: answered as cancel() does
        ops: list[tuple] = []
        last = 0
        for cmd in commands:
            cid = cmd.client_order_id
            is_place = type(cmd) is PlaceOrder
            if not is_place and cid not in self._orders:
                unknown.append(cid)
                continue
            if self.faults is not None:
                try:
                    await self.faults.before("place" if is_place else "cancel")
                except InjectedVenueError as exc:
                    failed.append((cmd, exc))
                    continue
                if is_place and self.faults.drop_place():
                    continue  # lost before the venue: no order, no answer, no error
            ts = last = self._ts()
            if is_place:
                record = order_record(self.account_id, cmd, ts)
                ops.append(self.store.put(record))
                self._orders[cid] = record
                if self.faults is not None and self.faults.lose_response():
                    self._answer_lost.add(cid)
                    failed.append((cmd, TimeoutError(f"place {cid}: response lost (injected timeout)")))
                    continue  # the venue has it, this process does not know: recover_place
                self.sim.submit(cmd, ts)
            else:
                ops.append(self.store.remove(cid, "cancel"))
                self._orders.pop(cid, None)
                self.sim.submit(CancelOrder(cid, cmd.reason), ts)
        # The deferred fill writes go first, in the same script call: one round trip, in order.
        deferred, self._unconfirmed = self._unconfirmed, []
        sent = len(deferred) + len(ops)
        events = self.sim.advance(last) if last else []
        more, pending = self._persist_ops(events)
        try:
            replies = await self._exec(deferred + ops + more)
        except BaseException as exc:
            if deferred:
                self._unconfirmed_failed = exc
            raise
        for i, ok in enumerate(replies):
            if not ok:
                what = "fill" if i < len(deferred) else "place/cancel" if i < sent else "order update"
                raise LeaseLost(f"{what} refused: lease no longer ours")
        out = with_trade_ids(pending)
        for cid in unknown:
            out.append(OrderRejected(self._ts(), cid, f"unknown order {cid!r}", "unknown_order"))
        return out, failed

    async def recover_place(self, command: PlaceOrder) -> list[OrderEvent] | None:
        """After a failed place: if the venue has the order, carry on with it and return its
        events; ``None`` if the venue never got it (safe to send again with the same id)."""
        cid = command.client_order_id
        if self._unconfirmed:
            await self.confirm()
        stored = await self.store.order(cid)
        taken = cid in self._answer_lost
        self._answer_lost.discard(cid)
        if stored is None:
            self._orders.pop(cid, None)
            if taken:
                # The venue took it (its answer was lost) and it is gone since: cancelled in the
                # same batch that placed it. As an exchange reports a closed order looked up by
                # client id; "never arrived" would send it again (placed twice).
                return [OrderCancelled(self._ts(), cid, "cancelled before its lost answer was recovered")]
            return None
        self._orders[cid] = stored
        if self.sim.order(cid) is None:
            ts = self._ts()
            self.sim.submit(command, ts)
            return await self._persist(self.sim.advance(ts))
        return []

    async def cancel(self, client_order_id: str, reason: str = "cancel") -> list[OrderEvent]:
        if self._unconfirmed:
            await self.confirm()
        ts = self._ts()
        if client_order_id not in self._orders:
            # Not open at the venue (already done, or never arrived): answer as a venue would.
            return [OrderRejected(ts, client_order_id, f"unknown order {client_order_id!r}", "unknown_order")]
        if self.faults is not None:
            await self.faults.before("cancel")
        # One fenced write removes it from the venue and logs the cancel with our token; the
        # matching engine then confirms (fills are persisted as they happen, so an order that
        # filled is no longer in ``_orders`` and was answered above).
        await self._delete(client_order_id, "cancel")
        self.sim.submit(CancelOrder(client_order_id, reason), ts)
        return await self._persist(self.sim.advance(ts))

    async def on_market(self, event) -> list[OrderEvent]:
        """Feed a market event to the matching engine; return the resulting order events, their
        writes queued (``defer_fills``) or written at once."""
        out = self._matching.on_market(event)
        if self._unconfirmed and not self.defer_fills:
            await self.confirm()
        return out

    async def advance(self) -> list[OrderEvent]:
        """The matching engine's answers due now, written at once."""
        if self._unconfirmed:
            await self.confirm()
        out = self._matching.advance(self._ts())
        if self._unconfirmed:
            await self.confirm()
        return out

    # ----------------------------------------------------------------------------------------
    def matches(self, client_order_id: str) -> bool:
        """Whether the order is open in this process's matching engine."""
        return client_order_id in self._orders

    async def remove(self, client_order_id: str, action: str = "cancel") -> None:
        """Take an order off the venue directly (fenced and logged): for an order the matching
        engine does not hold (e.g. left by an earlier owner and not restored)."""
        await self._delete(client_order_id, action)

    async def _delete(self, cid: str, action: str = "") -> None:
        if self._unconfirmed:
            await self.confirm()
        (ok,) = await self._exec([self.store.remove(cid, action)])
        if not ok:
            raise LeaseLost(f"removing {cid} refused: lease no longer ours")
        self._orders.pop(cid, None)

    async def _exec(self, ops: list[tuple]) -> list:
        """Run fenced writes of the store in order (one round trip; counted)."""
        if not ops:
            return []
        self.round_trips += 1
        return await self.store.execute(ops)

    async def _persist(self, events: list[OrderEvent]) -> list[OrderEvent]:
        """Record what the matching engine did (fenced, at once) and return the events."""
        ops, pending = self._persist_ops(events)
        if ops:
            if self._unconfirmed:
                await self.confirm()
            replies = await self._exec(ops)
            if not all(replies):
                raise LeaseLost("order update refused: lease no longer ours")
        return with_trade_ids(pending)

    def _queue(self, events: list[OrderEvent]) -> list[OrderEvent]:
        """Queue the writes that record what the matching engine did (``PaperMatching``); they go
        to Redis with this venue's next write (ahead of it, in one script call) or with
        :meth:`confirm`, and the caller must not let anything outside this venue learn of the
        events before (the runner holds their records until then). A quote cycle whose trade
        fills an order so makes one round trip (fill and the engine's answer together)."""
        ops, pending = self._persist_ops(events)
        if ops:
            self._unconfirmed.extend(ops)
        return with_trade_ids(pending)

    def _persist_ops(self, events: list[OrderEvent]) -> tuple[list[tuple], list]:
        """The writes that record what the matching engine did (fills; orders it closed), in
        order, with our copy of the open orders updated as they will be; ``with_trade_ids`` then
        makes the events the caller gets (fills with their venue trade ids, made here)."""
        ops: list[tuple] = []
        pending: list = []
        for ev in events:
            t = type(ev)
            cid = ev.client_order_id
            if t is OrderAccepted:
                # The venue order id was fixed at place time (stored with the order): no write.
                o = self._orders.get(cid)
                pending.append(OrderAccepted(ev.ts, cid, o["voi"]) if o is not None else ev)
            elif t is OrderFilled:
                self._trades_made += 1
                trade_id = f"{self._trade_ids}{self._trades_made}"
                op, voi = self._fill_op(ev, trade_id)
                pending.append((trade_id, ev, voi))
                ops.append(op)
            elif t in (OrderCancelled, OrderRejected):
                if cid in self._orders:
                    ops.append(self.store.remove(cid, ""))
                    self._orders.pop(cid, None)
                pending.append(ev)
            else:
                pending.append(ev)
        return ops, pending

    def _fill_op(self, ev: OrderFilled, trade_id: str) -> tuple[tuple, str]:
        o = self._orders.get(ev.client_order_id)
        left = None  # the order's record while it stays open
        if o is not None:
            o["filled"] += ev.qty
            if ev.leaves_qty > 0:
                left = o
            else:
                self._orders.pop(ev.client_order_id, None)
        base = ev.qty * int(ev.side)
        notional = -ev.price * ev.qty * int(ev.side)  # ticks x lots (x FEE_SCALE = cash units)
        voi = o["voi"] if o is not None else ev.venue_order_id
        op = self.store.fill(ev.client_order_id, left, trade_record(ev, voi), base, notional, trade_id, ev.fee)
        return op, voi
