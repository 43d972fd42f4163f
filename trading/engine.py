"""The engine: one kernel for backtest, paper and live.

``Engine.on_event`` takes any event (market data, order lifecycle, timer) and returns the
commands to send. Per event it updates the order book or the order bookkeeper and portfolio,
evaluates running risk, asks the strategy what it wants quoted, adjusts that for risk (widen,
reduce-only, pause, flatten), diffs it against the working orders, checks every new order
pre-trade, and adds inventory rebalancing when configured. Rejected orders are dropped and
recorded as :class:`EngineNote` entries a trader can read.

The engine assumes every command it returns is handed to a gateway; a gateway that cannot
send an order reports it back as :class:`~trading.events.OrderRejected`. It never reads the
wall clock: time is the ``ts`` of each event.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from trading.book import OrderBook, SequenceGap
from trading.engine_orders import EMPTY, NS, QuoteActions
from trading.events import (
    BookDelta,
    BookSnapshot,
    CancelOrder,
    Command,
    OrderAccepted,
    OrderAmended,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    Timer,
    TopOfBook,
    TradeTick,
)
from trading.instruments import Instrument, Side
from trading.oms import OrderBookkeeper, OrderState
from trading.order_ids import ClientOrderIds
from trading.portfolio import Portfolio
from trading.rebalance import RebalanceConfig, Rebalancer
from trading.risk import RiskLimits, RiskManager, RiskState, RiskStatus
from trading.strategy import Quote, QuoteSet, StrategyContext

_ORDER_EVENTS = (OrderAccepted, OrderFilled, OrderCancelled, OrderRejected, OrderAmended)


@dataclass(frozen=True, slots=True)
class EngineNote:
    """A readable record for the bot's event log: risk rejects, pauses, rebalances and more."""

    ts: int
    kind: str  # risk_reject, risk, rebalance, flatten, order, feed, lifecycle, strategy
    code: str
    message: str


def _config_number(config: Any, name: str) -> float | None:
    value = getattr(config, name, None) if config is not None else None
    return None if value is None else float(value)


class Engine(QuoteActions):
    """Run one strategy on one instrument: events in, commands out.

    Balances are integers: ``initial_base`` in lots, ``initial_quote`` in cash units.
    ``refresh_tolerance``, ``max_order_age_ns`` and ``target_base_ratio`` default to the
    strategy config's ``refresh_tolerance``, ``max_order_age`` (seconds) and
    ``target_base_ratio`` when it has them. With ``external_book=True`` the ``book`` given is
    kept up to date by the caller (one book per feed shared by many engines): market events
    then only make the engine look at it again, they are not applied to it.
    """

    def __init__(
        self,
        strategy: Any,
        instrument: Instrument,
        *,
        bot_id: str,
        risk: RiskLimits,
        refresh_tolerance: float | None = None,
        max_order_age_ns: int | None = None,
        size_tolerance: float = 0.0,
        allow_amend: bool = False,
        hanging_orders: bool | None = None,
        target_base_ratio: float | None = None,
        rebalance: RebalanceConfig | None = None,
        initial_base: int = 0,
        initial_quote: int = 0,
        markout_horizons_ns: tuple[int, ...] = (1 * NS, 10 * NS, 60 * NS),
        client_id_start: int = 0,
        client_id_prefix: str | None = None,
        flatten_cross_ticks: int = 5,
        book: OrderBook | None = None,
        external_book: bool = False,
        max_notes: int = 1000,
        reject_backoff_ns: int = 100_000_000,
        max_markouts: int = 10_000,
        balance_check: bool = False,
        perp: Any = None,
    ) -> None:
        cfg = getattr(strategy, "config", None)
        self.strategy = strategy
        self.instrument = instrument
        self.bot_id = str(bot_id)
        self.book = book if book is not None else OrderBook()
        # The book is kept by the caller (e.g. one book per feed shared by a host's bots, read
        # only here): market events no longer update it, they only make the engine look again.
        self.external_book = external_book
        self.ids = ClientOrderIds(client_id_prefix or f"mm{self.bot_id}", client_id_start)
        self.orders = OrderBookkeeper()
        self.portfolio = Portfolio(
            instrument,
            initial_base=initial_base,
            initial_quote=initial_quote,
            markout_horizons_ns=markout_horizons_ns,
            max_markouts=max_markouts,
        )
        self.risk = RiskManager(risk, instrument)
        self.risk_state = RiskState()
        self.perp = perp  # a trading.perp_risk.PerpRisk on a perpetual market: its limits and funding
        # ``initial_base``/``initial_quote`` are the account's real balances: pre-trade risk
        # refuses (spot) an order they cannot pay for.
        self.balance_check = balance_check
        self.refresh_tolerance = (
            refresh_tolerance if refresh_tolerance is not None else _config_number(cfg, "refresh_tolerance") or 0.0
        )
        if max_order_age_ns is None:
            max_order_age_ns = int((_config_number(cfg, "max_order_age") or 0) * NS)
        self.max_order_age_ns = max_order_age_ns
        self.size_tolerance = size_tolerance
        self.hanging_orders = bool(getattr(cfg, "hanging_orders", False) if hanging_orders is None else hanging_orders)
        self.allow_amend = allow_amend
        self.target_base_ratio = (
            target_base_ratio if target_base_ratio is not None else _config_number(cfg, "target_base_ratio")
        )
        self.rebalancer = (
            Rebalancer(rebalance, instrument, self.target_base_ratio, risk.price_band)
            if rebalance is not None and rebalance.enabled and self.target_base_ratio is not None
            else None
        )
        self.flatten_cross_ticks = flatten_cross_ticks
        self.ctx = StrategyContext(
            ts=0,
            instrument=instrument,
            book=self.book,
            position=0,
            base_balance=initial_base,
            quote_balance=initial_quote,
        )
        self.notes: deque[EngineNote] = deque(maxlen=max_notes)
        self.desired: QuoteSet | None = None
        self.status: RiskStatus = self.risk.status
        self.paused = False
        self.stopped = False
        self.book_ok = True
        self._need_ratio = risk.max_inventory_deviation is not None and self.target_base_ratio is not None
        self._applied: tuple[Any, ...] | None = None
        # The last diff sent everything it wanted, and nothing it depends on moves with time or
        # the mid alone (widening, flattening, rebalancing, hanging orders): diffing again with
        # the same inputs would send nothing, so a timer need not diff again either.
        self._settled = False
        self._next_expiry: int | None = None
        self._last_reject: tuple[str, int] = ("", -(10**18))
        self._last_flatten_ts = -(10**18)
        # A quote the venue rejected (e.g. post-only would cross) is not re-sent at the same side
        # and price until this backoff passes: the venue saw a book we had not seen yet.
        self.reject_backoff_ns = reject_backoff_ns
        self._blocked: dict[tuple[Side, int], int] = {}
        self._ctx_version = -1
        self._regime: str | None = getattr(strategy, "regime", None)
        self._tracks_regime = hasattr(strategy, "regime")

    # --------------------------------------------------------------------------------------
    # Events
    # --------------------------------------------------------------------------------------
    def on_event(self, event: Any) -> list[Command]:
        """Apply one event and return the commands to send now (often none)."""
        try:
            ts = event.ts
        except AttributeError:
            self._note(self.ctx.ts, "feed", "bad_event", f"ignored {type(event).__name__}: it has no ts")
            return []
        t = type(event)
        book = self.book
        port = self.portfolio
        if t is TradeTick:
            pass  # a public print: the book and our orders are as they were
        elif t is BookDelta:
            if not self.external_book:
                try:
                    book.apply_delta(event)
                except SequenceGap as exc:
                    return self._on_gap(ts, str(exc))
        elif t is BookSnapshot:
            if not self.external_book:
                book.apply_snapshot(event)
            if not self.book_ok:
                self.book_ok = True
                self._note(ts, "feed", "book_resynced", "order book rebuilt from a snapshot; quoting resumes")
        elif t is TopOfBook:
            if not self.external_book and not book.is_synced:  # a top-of-book-only feed: the touch
                book.clear()
                book.set_level(Side.BUY, event.bid_price, event.bid_qty)
                book.set_level(Side.SELL, event.ask_price, event.ask_qty)
        elif t in _ORDER_EVENTS:
            if t is OrderRejected and self.reject_backoff_ns:
                rejected = self.orders.orders.get(event.client_order_id)
                if rejected is not None and rejected.reason == "quote":
                    self._blocked[(rejected.side, rejected.price)] = ts + self.reject_backoff_ns
            if t is OrderAccepted and not self._settled:
                # An acknowledgement changes nothing a diff reads (the bookkeeper keeps its
                # version); with a reject from the last diff pending, diff again as on any change.
                self._applied = None
            fill = self.orders.apply(event)
            if fill is not None:
                port.on_fill(fill)
                if self.perp is not None:
                    self.perp.on_fill(fill)
                if self.hanging_orders:
                    self._hang_opposite(fill)
            notes = self.orders.notes
            while notes:
                n = notes.popleft()
                self._note(n.ts, "order", n.code, n.message)
        bid = book.best_bid()
        ask = book.best_ask()
        mid2 = None
        if bid is not None and ask is not None and bid < ask:
            mid2 = bid + ask
            if mid2 != port.mid2 or t is Timer:
                port.mark(ts, mid2)
        status = self.risk.evaluate(
            ts,
            port.equity(),
            port.inventory_ratio() if self._need_ratio else None,
            self.target_base_ratio,
            mid2,
        )
        ctx = self.ctx
        if self.perp is not None:
            status = self.perp.evaluate(ts, status, mid2, ctx)
        if status is not self.status:
            self._on_status_change(ts, status)
        ctx.ts = ts
        ctx.position = port.position
        ctx.base_balance = port.initial_base + port.position
        ctx.quote_balance = port.cash
        if self._ctx_version != self.orders.version:
            self._ctx_version = self.orders.version
            ctx.working_bids, ctx.working_asks = self.orders.count_live()
        try:
            wanted = self.strategy.on_event(event, ctx)
        except Exception as exc:  # one bad event never stops the bot; pull quotes instead
            self._note(ts, "strategy", "strategy_error", f"{type(exc).__name__}: {exc}; quotes pulled")
            wanted = EMPTY
        if self._tracks_regime and self.strategy.regime != self._regime:
            self._on_regime_change(ts)
        if wanted is not None:
            old = self.desired
            if old is None or wanted.bids != old.bids or wanted.asks != old.asks:
                if old is not None and bool(wanted.bids or wanted.asks) != bool(old.bids or old.asks):
                    self._note(
                        ts,
                        "strategy",
                        "quotes_" + ("on" if wanted.bids or wanted.asks else "off"),
                        wanted.reason or "strategy changed its quotes",
                    )
                self.desired = _one_per_price(wanted)
        if self.stopped:
            return []
        return self._act(ts, status, bid, ask, mid2, t is Timer)

    def _on_regime_change(self, ts: int) -> None:
        new = self.strategy.regime
        cause = getattr(self.strategy, "regime_cause", "")
        message = f"regime {self._regime or 'none'} -> {new}" + (f": {cause}" if cause else "")
        self._regime = new
        self._note(ts, "strategy", "regime_change", message)

    def _hang_opposite(self, fill: OrderFilled) -> None:
        """After a fill, leave the other side's quotes working outside the diff (hanging orders)."""
        for o in self.orders.orders.values():
            if o.reason == "quote" and o.side is not fill.side and o.status is not OrderState.PENDING_CANCEL:
                o.reason = "hanging"

    def _on_gap(self, ts: int, message: str) -> list[Command]:
        if not self.book_ok:
            return []
        self.book_ok = False
        self._note(ts, "feed", "sequence_gap", f"{message}; quotes pulled until the book resyncs")
        if self.stopped:
            return []
        return self._send(ts, self._cancels(quotes_only=True, reason="feed_gap"))

    def _on_status_change(self, ts: int, status: RiskStatus) -> None:
        before = {b.code for b in self.status.breaches}
        after = {b.code for b in status.breaches}
        for b in status.breaches:
            if b.code not in before:
                self._note(ts, "risk", b.code, f"{b.action.name.lower()}: {b.message}")
        for code in sorted(before - after):
            self._note(ts, "risk", code + "_cleared", f"{code.replace('_', ' ')} back within limits")
        self.status = status

    def submit(self, ts: int, commands: list[Command]) -> list[Command]:
        """Commands from outside the strategy (a trader's manual order): the same pre-trade risk
        and order tracking as the engine's own; returns what may be sent (a refusal is noted)."""
        self._last_reject = ("", 0)  # a manual refusal is always noted, never folded into the last
        return self._send(ts, commands)

    def _cancels(self, *, quotes_only: bool, reason: str) -> list[Command]:
        return [
            CancelOrder(o.client_order_id, reason=reason)
            for o in self.orders.orders.values()
            if o.status is not OrderState.PENDING_CANCEL
            and (not quotes_only or o.reason == "quote" or o.reason == "hanging")
        ]

    @property
    def decisions(self) -> deque[EngineNote]:
        """The bounded log of readable records (same object as :attr:`notes`); drain with popleft."""
        return self.notes

    def _note(self, ts: int, kind: str, code: str, message: str) -> None:
        self.notes.append(EngineNote(ts, kind, code, message))

    # --------------------------------------------------------------------------------------
    # Lifecycle
    # --------------------------------------------------------------------------------------
    def pause(self, ts: int, reason: str = "paused by user") -> list[Command]:
        """Stop quoting and pull every quote; state keeps updating until :meth:`resume`."""
        self.paused = True
        self._note(ts, "lifecycle", "paused", reason)
        return self._send(ts, self._cancels(quotes_only=True, reason="pause"))

    def resume(self, ts: int, reason: str = "resumed by user") -> None:
        """Quote again from the next event; re-arms the drawdown limit at the current equity.

        A daily-loss breach still holds until the UTC day ends, and after :meth:`kill` the kill
        switch stays on until ``engine.risk.set_kill_switch(False)``.
        """
        self.paused = False
        self.stopped = False
        self.risk.reset_latches(self.portfolio.equity())
        self._note(ts, "lifecycle", "resumed", reason)

    def stop(self, ts: int, reason: str = "stopped") -> list[Command]:
        """Cancel every working order; afterwards events update state but send nothing."""
        self.stopped = True
        self._note(ts, "lifecycle", "stopped", reason)
        return self._send(ts, self._cancels(quotes_only=False, reason="stop"))

    def kill(self, ts: int, reason: str = "kill switch") -> list[Command]:
        """Turn the kill switch on: cancel everything and refuse every new order."""
        self.risk.set_kill_switch(True)
        self.stopped = True
        self._note(ts, "lifecycle", "killed", reason)
        return self._send(ts, self._cancels(quotes_only=False, reason="kill"))

    def state(self) -> dict[str, Any]:
        """Plain values for persistence and the UI."""
        snap = self.portfolio.snapshot(self.ctx.ts)
        return {
            "bot_id": self.bot_id,
            "client_id_sequence": self.ids.sequence,
            "paused": self.paused,
            "stopped": self.stopped,
            "book_ok": self.book_ok,
            "risk_action": self.status.action.name.lower(),
            "risk_breaches": [{"code": b.code, "message": b.message} for b in self.status.breaches],
            "working_orders": [o.as_dict() for o in self.orders.orders.values()],
            "pnl": snap,
            "markouts": self.portfolio.markout_summary(),
        }


def _one_per_price(quotes: QuoteSet) -> QuoteSet:
    """Keep one quote per side and price (the best level): two orders at one price only split
    queue priority, and several ladder levels can round onto the same tick near the touch."""
    bids, asks = quotes.bids, quotes.asks
    if len({q.price for q in bids}) == len(bids) and len({q.price for q in asks}) == len(asks):
        return quotes
    return QuoteSet(_first_per_price(bids), _first_per_price(asks), quotes.reason)


def _first_per_price(quotes: tuple[Quote, ...]) -> tuple[Quote, ...]:
    seen: set[int] = set()
    out = []
    for q in sorted(quotes, key=lambda q: q.level):
        if q.price not in seen:
            seen.add(q.price)
            out.append(q)
    return tuple(out)
