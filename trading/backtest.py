"""The backtester: replay a stream of market events through the same engine and the same fill
simulation that paper and live trading use.

A backtest is a simulated clock (the events' own time), an event source (any iterable), the
simulated venue (``trading.fillsim.SimulatedExchange``) and the runner (``trading.runner.Runner``,
the same per-event algorithm the hosted bots use): per market event the venue sees it first and
answers with the order events that have reached us by then; the engine gets those, then the market
event; every command it returns goes to the venue stamped with the time the engine decided. Timer
events at ``timer_interval_ns`` drive quote refresh; quoting and inventory statistics are sampled at every
timer (a regular sample of the time, so fractions and means are time-weighted estimates), and the
inventory's minimum and maximum also count the position after every fill. The backtester takes any
iterable of ``trading.events`` (recorded data is read by ``connectors``, which this module never
imports) and never reads the wall clock, so the same engine, events and seeds give an identical
result.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from trading.book import OrderBook
from trading.events import (
    Event,
    OrderFilled,
)
from trading.fillsim import SimulatedExchange
from trading.instruments import Instrument, Side
from trading.metrics import (
    InventoryStats,
    QuotingStats,
    TimeWeightedTracker,
    max_drawdown,
    sharpe_ratio,
)
from trading.perp_ledger import PerpLedger, liquidation_text, perp_records
from trading.perp_liquidation import close_in_engine, mid2_bounds
from trading.runner import MAX_ROUNDS as MAX_ROUNDS  # re-exported: the backtest's limit is the runner's
from trading.runner import Runner

SECOND_NS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class PnlBreakdown:
    """Where the money came from, in cash units (see ``trading.instruments``)."""

    total: int  # final equity minus starting equity
    spread_capture: int  # fill price vs mid at fill time, signed per side
    inventory_pnl: int  # held inventory marked as the mid moved
    fees: int  # paid (positive) net of rebates
    realized: int
    unrealized: int


@dataclass(frozen=True, slots=True)
class BacktestResult:
    """Everything a backtest reports. Money in cash units, positions in lots, ratios as floats."""

    events: int
    timers: int
    first_ts: int
    last_ts: int
    cancelled: bool
    equity_curve: tuple[tuple[int, int], ...]  # (ts, equity) every equity_sample_ns
    equity_sample_ns: int
    pnl: PnlBreakdown
    sharpe: float | None
    max_drawdown: int
    max_drawdown_fraction: float
    fills: tuple[OrderFilled, ...]
    fill_count: int
    filled_qty: int
    placed_qty: int
    fill_ratio: float  # filled lots / placed lots
    orders_placed: int  # place commands sent
    cancels_sent: int
    amends_sent: int
    rejects: int
    final_position: int
    inventory: InventoryStats
    quoting: QuotingStats
    notes: tuple[Any, ...] = field(default=())
    perp: dict[str, Any] | None = None  # PerpLedger.report() for a perpetual market

    @property
    def total_pnl(self) -> int:
        return self.pnl.total


class Backtest:
    """Replay ``events`` through ``engine`` and ``exchange``; :meth:`run` returns a
    :class:`BacktestResult`.

    ``engine`` is an engine (anything with ``on_event(event) -> list[Command]`` and a
    ``portfolio``) or a zero-argument factory; ``exchange`` likewise. ``progress`` is called with
    the fraction done every ``progress_every`` events when the total is known (``total_events``
    or ``len(events)``). Stop early with :meth:`cancel` or a ``should_stop`` callback (checked
    every ``progress_every`` events); the result then covers the events seen so far.

    With ``share_book`` (the default) the venue and the engine keep one order book: the venue
    applies each market event first and the engine sees it as already applied, which halves the
    book work. The venue's taker fills take liquidity off that book until the next update.
    """

    def __init__(
        self,
        engine: Any,
        events: Iterable[Event],
        exchange: SimulatedExchange | Callable[[], SimulatedExchange],
        *,
        timer_interval_ns: int = 100_000_000,
        equity_sample_ns: int = SECOND_NS,
        progress: Callable[[float], None] | None = None,
        progress_every: int = 10_000,
        total_events: int | None = None,
        should_stop: Callable[[], bool] | None = None,
        max_fills_kept: int = 100_000,
        share_book: bool = True,
        perp: PerpLedger | None = None,
    ) -> None:
        for name, value in (
            ("timer_interval_ns", timer_interval_ns),
            ("equity_sample_ns", equity_sample_ns),
            ("progress_every", progress_every),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name}: {value!r} is not accepted; give a whole number > 0")
        self.engine = engine() if isinstance(engine, type) or not hasattr(engine, "on_event") else engine
        self.exchange = exchange if isinstance(exchange, SimulatedExchange) else exchange()
        engine_book = getattr(self.engine, "book", None)
        if share_book and isinstance(engine_book, OrderBook) and engine_book is not self.exchange.book:
            self.exchange.share_book(engine_book)
        self.events = events
        self.timer_interval_ns = timer_interval_ns
        self.equity_sample_ns = equity_sample_ns
        self.progress = progress
        self.progress_every = progress_every
        self.total_events = total_events if total_events is not None else _len_or_none(events)
        self.should_stop = should_stop
        self.max_fills_kept = max_fills_kept
        self._cancelled = False
        self._fills: list[OrderFilled] = []
        self.runner: Runner | None = None  # made by ``run``
        self._equity: list[tuple[int, int]] = []
        self._tracker = TimeWeightedTracker()
        self.perp = perp
        self._bounds: tuple | None = None  # perp: mid2 bounds of the liquidation prices (_watch_perp)

    def cancel(self) -> None:
        """Ask a running backtest to stop at its next check."""
        self._cancelled = True

    def _on_fill(self, fill: OrderFilled) -> None:
        """The runner's fill hook (after the engine booked it)."""
        if self.perp is not None:
            hedge = getattr(getattr(self.engine, "perp", None), "hedge", None)
            self.perp.on_fill(fill, None if hedge is None else hedge.leg_of(fill.client_order_id))
            self._bounds = None  # the position moved: its liquidation prices with it
        if len(self._fills) < self.max_fills_kept:
            self._fills.append(fill)
        self._tracker.note_position(self.engine.portfolio.position)

    # -----------------------------------------------------------------------------------------
    def run(self) -> BacktestResult:
        """Replay every event (or until cancelled) and report: the simulated clock is the events'
        own time, the venue the simulated exchange, and :class:`trading.runner.Runner` does the
        per-event work."""
        runner = self.runner = Runner(self.engine, self.exchange, on_fill=self._on_fill)
        market = runner.market
        interval = self.timer_interval_ns
        every = self.progress_every
        perp = self.perp
        next_timer: int | None = None
        next_sample: int | None = None
        first_ts = last_ts = 0
        count = timers = 0
        for event in self.events:
            ts = event.ts
            if next_timer is None:
                first_ts = ts
                next_timer = ts + interval
                next_sample = ts
            while ts >= next_timer:
                self._on_timer(next_timer)
                timers += 1
                next_timer += interval
            if perp is not None and perp.liquidated_at is not None:
                break
            market(event, ts)
            if perp is not None:
                self._watch_perp(ts)
            if ts >= next_sample:
                self._sample(ts)
                next_sample = ts - (ts - first_ts) % self.equity_sample_ns + self.equity_sample_ns
            last_ts = ts
            count += 1
            if count % every == 0:
                if self.progress is not None and self.total_events:
                    self.progress(min(count / self.total_events, 1.0))
                if self._cancelled or (self.should_stop is not None and self.should_stop()):
                    self._cancelled = True
                    break
        if count:
            runner.now = last_ts
            runner.reports(self.exchange.advance(last_ts))
            if perp is not None:
                self._mark_perp(last_ts)
            self._observe(last_ts)
            self._sample(last_ts)
        if self.progress is not None and not self._cancelled:
            self.progress(1.0)
        return self._report(count, timers, first_ts, last_ts)

    # -----------------------------------------------------------------------------------------
    def _on_timer(self, ts: int) -> None:
        if self.perp is not None:
            self._mark_perp(ts)
        self.runner.timer(ts)
        self._observe(ts)

    def _watch_perp(self, ts: int) -> None:
        """After each market event: mark the ledger at once when the book's mid reached a
        liquidation price (two integer comparisons; between timers a spike that comes back
        would otherwise go unseen)."""
        bounds = self._bounds
        if bounds is None:
            bounds = self._bounds = mid2_bounds(self.perp)
        low, high = bounds
        if low is None and high is None:
            return
        book = self.exchange.book
        bid, ask = book.best_bid(), book.best_ask()
        if bid is not None and ask is not None:
            mid2 = bid + ask
            if (low is not None and mid2 <= low) or (high is not None and mid2 >= high):
                self._mark_perp(ts)

    def _mark_perp(self, ts: int) -> None:
        """Mark the perpetual position at the book's mid (the recordings carry no mark price
        stream; :meth:`_watch_perp` also marks it between timers when the mid reaches a liquidation
        price). A liquidation of the position (one-way) or of the cross account ends the run,
        as the account has nothing left to trade; one of an isolated hedge-mode leg closes that
        leg in the engine too (its inventory, its PerpRisk) and the run goes on."""
        book = self.exchange.book
        bid, ask = book.best_bid(), book.best_ask()
        if bid is None or ask is None:
            return
        fundings = len(self.perp.fundings)
        done_all = self.perp.on_mark(ts, self.perp.instrument.price(bid + ask) / 2)
        if done_all or len(self.perp.fundings) != fundings:
            self._bounds = None  # funding or a liquidation moved the liquidation prices
        for done in done_all:
            if not done.ends_account:
                close_in_engine(self.engine, self.perp.instrument, done)
                self._tracker.note_position(self.engine.portfolio.position)
            note = getattr(self.engine, "_note", None)
            if note is not None:
                note(ts, "perp", "liquidated", liquidation_text(done, self.perp.spec.settle))

    def _observe(self, ts: int) -> None:
        ex = self.exchange
        book = ex.book
        self._tracker.observe(
            ts,
            self.engine.portfolio.position,
            ex.our_best(Side.BUY),
            ex.our_best(Side.SELL),
            book.best_bid(),
            book.best_ask(),
        )

    def _sample(self, ts: int) -> None:
        equity = self.engine.portfolio.equity()
        if equity is not None:
            self._equity.append((ts, equity))

    # -----------------------------------------------------------------------------------------
    def _report(self, count: int, timers: int, first_ts: int, last_ts: int) -> BacktestResult:
        portfolio = self.engine.portfolio
        stats = self.exchange.stats
        equity = [e for _, e in self._equity]
        start = portfolio.start_equity()
        final = portfolio.equity()
        total = (final - start) if final is not None and start is not None else 0
        drawdown, drawdown_fraction = max_drawdown(equity)
        notes = tuple(getattr(self.engine, "notes", ()))
        return BacktestResult(
            events=count,
            timers=timers,
            first_ts=first_ts,
            last_ts=last_ts,
            cancelled=self._cancelled,
            equity_curve=tuple(self._equity),
            equity_sample_ns=self.equity_sample_ns,
            pnl=PnlBreakdown(
                total=total,
                spread_capture=portfolio.spread_capture,
                inventory_pnl=portfolio.inventory_pnl,
                fees=portfolio.fees,
                realized=portfolio.realized,
                unrealized=portfolio.unrealized,
            ),
            sharpe=sharpe_ratio(equity, self.equity_sample_ns),
            max_drawdown=drawdown,
            max_drawdown_fraction=drawdown_fraction,
            fills=tuple(self._fills),
            fill_count=self.runner.fill_count,
            filled_qty=stats.qty_filled,
            placed_qty=stats.qty_placed,
            fill_ratio=stats.qty_filled / stats.qty_placed if stats.qty_placed else 0.0,
            orders_placed=self.runner.places,
            cancels_sent=self.runner.cancels,
            amends_sent=self.runner.amends,
            rejects=stats.rejects,
            final_position=portfolio.position,
            inventory=self._tracker.inventory(),
            quoting=self._tracker.quoting(),
            notes=notes,
            perp=self.perp.report() if self.perp is not None else None,
        )


def result_records(result: BacktestResult, instrument: Instrument) -> dict[str, Any]:
    """The result as JSON-ready records for storage and display, money in quote currency.

    Returns ``{"metrics": {...}, "pnl_decomposition": {...}, "equity_curve": [[ts_ms, equity],
    ...], "fills": [{ts, side, price, qty, fee, liquidity}, ...]}``. Amounts are exact decimal
    strings (prices and quote amounts in quote currency, quantities in base); fill ``ts`` is a
    timezone-aware ``datetime`` (UTC); ratios are floats.
    """
    cash = instrument.cash
    pnl = result.pnl
    inventory = result.inventory
    quoting = result.quoting
    lot = instrument.lot_size
    metrics = {
        "events": result.events,
        "start_ts_ms": result.first_ts // 1_000_000,
        "end_ts_ms": result.last_ts // 1_000_000,
        "cancelled": result.cancelled,
        "total_pnl": str(cash(pnl.total)),
        "sharpe": result.sharpe,
        "sharpe_annualisation": f"sqrt(365 days / {result.equity_sample_ns / 1e9:g} s returns)",
        "max_drawdown": str(cash(result.max_drawdown)),
        "max_drawdown_fraction": result.max_drawdown_fraction,
        "fill_ratio": result.fill_ratio,
        "fills": result.fill_count,
        "filled_qty": str(instrument.quantity(result.filled_qty)),
        "placed_qty": str(instrument.quantity(result.placed_qty)),
        "orders_placed": result.orders_placed,
        "cancels_sent": result.cancels_sent,
        "amends_sent": result.amends_sent,
        "rejects": result.rejects,
        "final_position": str(instrument.quantity(result.final_position)),
        "inventory_mean": inventory.mean * float(lot),
        "inventory_std": inventory.std * float(lot),
        "inventory_min": str(instrument.quantity(inventory.min)),
        "inventory_max": str(instrument.quantity(inventory.max)),
        "inventory_time_weighted_mean": inventory.time_weighted_mean * float(lot),
        "quote_uptime": quoting.quote_uptime,
        "bid_at_top": quoting.bid_at_top,
        "ask_at_top": quoting.ask_at_top,
        "time_at_top": quoting.time_at_top,
    }
    decomposition = {
        "total": str(cash(pnl.total)),
        "spread_capture": str(cash(pnl.spread_capture)),
        "inventory_pnl": str(cash(pnl.inventory_pnl)),
        "fees": str(cash(pnl.fees)),
        "realized": str(cash(pnl.realized)),
        "unrealized": str(cash(pnl.unrealized)),
    }
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    fills = [
        {
            "ts": epoch + timedelta(microseconds=f.ts // 1000),
            "side": "buy" if f.side is Side.BUY else "sell",
            "price": str(instrument.price(f.price)),
            "qty": str(instrument.quantity(f.qty)),
            "fee": str(cash(f.fee)),
            "liquidity": f.liquidity.value,
        }
        for f in result.fills
    ]
    records: dict[str, Any] = {
        "metrics": metrics,
        "pnl_decomposition": decomposition,
        "equity_curve": [[ts // 1_000_000, str(cash(e))] for ts, e in result.equity_curve],
        "fills": fills,
    }
    if result.perp is not None:
        perp = records["perp"] = perp_records(result.perp, instrument)
        decomposition["funding"] = perp["funding"]
        if perp["kind"] == "inverse":
            # The engine's own PnL is spot arithmetic in the quote; an inverse contract's PnL,
            # fees and funding are the ledger's, in the settle coin.
            records["pnl_decomposition"] = {
                "currency": perp["settle"],
                "total": perp["net_pnl"],
                **{key: perp[key] for key in ("realized", "unrealized", "fees", "funding")},
            }
            metrics["total_pnl"] = perp["net_pnl"]
            metrics["pnl_currency"] = perp["settle"]
    return records


def _len_or_none(events: Iterable[Event]) -> int | None:
    try:
        return len(events)  # type: ignore[arg-type]
    except TypeError:
        return None
