"""Backtests of a hedged maker over two venues' synchronized event streams.

The two streams are merged by timestamp (``heapq.merge``; at one instant the maker venue's event
comes first). Each venue is its own :class:`~trading.fillsim.SimulatedExchange` — its own book,
latency and fees — so both legs go through the one fill simulation paper and the single-venue
backtester use. Per event: both venues deliver the answers that have reached the bot by then,
the event's venue applies it to its book, the bot looks, and its commands go to their venues
stamped with that time. Timers at ``timer_interval_ns`` drive requotes, hedge timeouts,
retries and the safety checks.

:class:`HedgeFaults` injects hedge-venue faults for tests and what-if runs: windows where hedge
orders are rejected (``429 rate_limited``), where they vanish unanswered (a timeout), and where
the hedge feed stops reaching the bot (a stale book; the venue keeps matching against the real
market).

A perpetual leg can carry a :class:`~trading.perp_ledger.PerpLedger` (``perp``): its fills and
a mark at the book's mid every timer give margin used, funding and the liquidation watch. Such a
leg also gets the hosted bot's pre-trade check (:mod:`trading.hedge_margin`): a
:class:`~trading.perp_risk.PerpRisk` on the ledger's account (wallet, leverage, margin mode,
funding; ``perp_limits`` per leg), marked at the leg's mid on each of its book events and booking
the leg's fills, refuses a maker quote or hedge the leg's free margin cannot carry. A refused
order is not sent; it is answered ``OrderRejected`` (the check's code and message) at the next
event or timer, as the hosted loop answers it on the leg's next pass, and counted per leg
(``HedgedResult.refused``, the first message of each leg in ``refused_first``).

Liquidation: a perpetual leg's ledger watches its liquidation price at every timer's mark, and
between timers each book event of the leg is compared with the ledger's liquidation prices (two
integer comparisons on the mid; a crossing marks the ledger at once). When the mark reaches one, the ledger
closes the position at the bankruptcy price (:class:`~trading.perp_ledger.Liquidation`), the
leg's PerpRisk closes it too, and the bot is told (:meth:`~trading.hedger.HedgedMaker.on_liquidation`):
the leg's position is gone, quoting stops and nothing is re-hedged; the exposure the leg was
hedging is left unhedged. ``HedgedResult.liquidations`` lists each with that exposure.

Exposure (maker + hedge base) is tracked at every change: its maximum, time-weighted mean of
its absolute value, the longest stretch above half a hedge lot, and a series for charts.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from trading import hedge_margin
from trading.events import Event, OrderFilled, OrderRejected, PlaceOrder
from trading.fillsim import SimulatedExchange
from trading.hedger import HEDGE, MAKER, HedgedMaker, VenueCommand
from trading.perp_ledger import Liquidation, PerpLedger, liquidation_text
from trading.perp_limits import PerpRiskLimits
from trading.perp_liquidation import close_in_risk, mid2_bounds
from trading.perp_risk import PerpRisk
from trading.risk import NORMAL


@dataclass(frozen=True, slots=True)
class HedgeFaults:
    """Hedge-venue fault windows, each ``(start_ns, end_ns)`` in event time."""

    reject: tuple[tuple[int, int], ...] = ()  # hedge orders answered 429
    drop: tuple[tuple[int, int], ...] = ()  # hedge orders lost: never answered
    stale: tuple[tuple[int, int], ...] = ()  # the hedge feed stops reaching the bot

    @staticmethod
    def _in(windows: tuple[tuple[int, int], ...], ts: int) -> bool:
        return any(start <= ts < end for start, end in windows)


@dataclass(slots=True)
class ExposureTracker:
    """Net exposure over time (base units, exact)."""

    half_lot: Fraction
    max_abs: Fraction = Fraction(0)
    longest_above_ns: int = 0
    series: list[tuple[int, Fraction]] = field(default_factory=list)
    _area: Fraction = Fraction(0)
    _last_ts: int | None = None
    _last: Fraction = Fraction(0)
    _above_since: int | None = None
    first_ts: int | None = None

    def note(self, ts: int, exposure: Fraction) -> None:
        if self._last_ts is not None:
            self._area += abs(self._last) * (ts - self._last_ts)
        else:
            self.first_ts = ts
        self._last_ts = ts
        if exposure != self._last or not self.series:
            self.series.append((ts, exposure))
        self._last = exposure
        self.max_abs = max(self.max_abs, abs(exposure))
        if self._above_since is not None:
            self.longest_above_ns = max(self.longest_above_ns, ts - self._above_since)
        if abs(exposure) > self.half_lot:
            if self._above_since is None:
                self._above_since = ts
        else:
            self._above_since = None

    def time_weighted(self) -> Fraction:
        span = (self._last_ts or 0) - (self.first_ts or 0)
        return self._area / span if span > 0 else Fraction(0)


@dataclass(frozen=True, slots=True)
class HedgedResult:
    events: int
    first_ts: int
    last_ts: int
    maker_fills: tuple[OrderFilled, ...]
    hedge_fills: tuple[OrderFilled, ...]
    exposure: ExposureTracker
    bot: HedgedMaker
    maker_stats: Any
    hedge_stats: Any
    cancelled: bool = False
    perp: dict[str, dict[str, Any]] = field(default_factory=dict)  # PerpLedger.report() per perp leg
    refused: dict[str, dict[str, int]] = field(default_factory=dict)  # per leg: refusals by code
    refused_first: dict[str, str] = field(default_factory=dict)  # per leg: the first refusal's message
    liquidations: tuple[LegLiquidation, ...] = ()


@dataclass(frozen=True, slots=True)
class LegLiquidation:
    """A perpetual leg liquidated by its venue, with the net exposure (base) it left unhedged."""

    venue: str
    liquidation: Liquidation
    exposure: Fraction

    @property
    def lots(self) -> int:
        """Lots closed (signed, as held)."""
        return sum(self.liquidation.closed.values())


class HedgedBacktest:
    """Replay ``maker_events`` and ``hedge_events`` through two simulated venues and ``bot``."""

    def __init__(
        self,
        bot: HedgedMaker,
        maker_events: Iterable[Event],
        hedge_events: Iterable[Event],
        maker: SimulatedExchange,
        hedge: SimulatedExchange,
        *,
        timer_interval_ns: int = 100_000_000,
        faults: HedgeFaults | None = None,
        should_stop: Any = None,
        progress_every: int = 10_000,
        perp: dict[str, PerpLedger] | None = None,
        perp_limits: dict[str, PerpRiskLimits] | None = None,
    ) -> None:
        if bot.maker_book is not maker.book or bot.hedge_book is not hedge.book:
            raise ValueError("bot: read the venues' books (maker.book, hedge.book); the venues keep them")
        self.bot = bot
        self.maker_events = maker_events
        self.hedge_events = hedge_events
        self.venues = {MAKER: maker, HEDGE: hedge}
        self.timer_interval_ns = timer_interval_ns
        self.faults = faults or HedgeFaults()
        self.should_stop = should_stop
        self.progress_every = progress_every
        self.exposure = ExposureTracker(bot.legs.hedge.base_per_lot / 2)
        self.fills: dict[str, list[OrderFilled]] = {MAKER: [], HEDGE: []}
        self._injected: list[tuple[int, OrderRejected]] = []  # fault answers due to the bot
        self.perp = perp or {}  # a PerpLedger per perpetual leg: margin, funding, liquidation watch
        limits = perp_limits or {}
        # each perpetual leg's pre-trade check, on the ledger's account
        self.risk = {venue: PerpRisk.from_ledger(ledger, limits.get(venue)) for venue, ledger in self.perp.items()}
        self._refusals: list[tuple[str, OrderRejected]] = []  # answered at the next event or timer
        self.refused: dict[str, dict[str, int]] = {}
        self.refused_first: dict[str, str] = {}
        self.liquidations: list[LegLiquidation] = []
        self._bounds: dict[str, tuple] = {}  # per perpetual leg: mid2 bounds of its liquidation prices
        self.count = 0

    def _merged(self) -> Iterator[tuple[int, int, str, Event]]:
        def tag(events: Iterable[Event], rank: int, venue: str) -> Iterator[tuple[int, int, str, Event]]:
            for event in events:
                yield event.ts, rank, venue, event

        return heapq.merge(tag(self.maker_events, 0, MAKER), tag(self.hedge_events, 1, HEDGE), key=lambda x: x[:2])

    def run(self) -> HedgedResult:
        bot = self.bot
        interval = self.timer_interval_ns
        next_timer: int | None = None
        first_ts = last_ts = 0
        cancelled = False
        for ts, _, venue, event in self._merged():
            if next_timer is None:
                first_ts, next_timer = ts, ts + interval
            while ts >= next_timer:
                self._deliver(next_timer)
                self._send(bot.on_timer(next_timer), next_timer)
                self._mark(next_timer)
                next_timer += interval
            self._deliver(ts)
            answers = self.venues[venue].on_market(event)
            if answers:
                self._answer(venue, answers)
            risk = self.risk.get(venue)
            if risk is not None:
                book = self.venues[venue].book
                bid, ask = book.best_bid(), book.best_ask()
                if bid is not None and ask is not None:
                    risk.evaluate(ts, NORMAL, bid + ask)
                    self._watch(venue, ts, bid + ask)
            if not (venue == HEDGE and HedgeFaults._in(self.faults.stale, ts)):
                self._send(bot.on_market(venue, ts), ts)
            last_ts = ts
            self.count += 1
            if self.should_stop is not None and self.count % self.progress_every == 0 and self.should_stop(self.count):
                cancelled = True
                break
        if self.count:
            self._deliver(last_ts)
            self._mark(last_ts)
            self.exposure.note(last_ts, bot.exposure())
        return HedgedResult(
            events=self.count,
            first_ts=first_ts,
            last_ts=last_ts,
            maker_fills=tuple(self.fills[MAKER]),
            hedge_fills=tuple(self.fills[HEDGE]),
            exposure=self.exposure,
            bot=bot,
            maker_stats=self.venues[MAKER].stats,
            hedge_stats=self.venues[HEDGE].stats,
            cancelled=cancelled,
            perp={venue: ledger.report() for venue, ledger in self.perp.items()},
            refused=self.refused,
            refused_first=self.refused_first,
            liquidations=tuple(self.liquidations),
        )

    # -----------------------------------------------------------------------------------------
    def _deliver(self, ts: int) -> None:
        for venue, exchange in self.venues.items():
            if exchange.answers_due(ts):
                self._answer(venue, exchange.advance(ts))
        injected = self._injected
        if injected and injected[0][0] <= ts:
            due = [a for t, a in injected if t <= ts]
            self._injected = [(t, a) for t, a in injected if t > ts]
            self._answer(HEDGE, due)
        if self._refusals:  # those refused while these are answered wait for the next pass
            refused, self._refusals = self._refusals, []
            for venue, answer in refused:
                self._answer(venue, [answer])

    def _answer(self, venue: str, answers: list) -> None:
        for answer in answers:
            if type(answer) is OrderFilled:
                self.fills[venue].append(answer)
                if venue in self.perp:
                    self.perp[venue].on_fill(answer)
                    self.risk[venue].on_fill(answer)
                    self._bounds.pop(venue, None)
            commands = self.bot.on_order(venue, answer)
            if type(answer) is OrderFilled:
                self.exposure.note(answer.ts, self.bot.exposure())
            if commands:
                self._send(commands, answer.ts)

    def _mark(self, ts: int) -> None:
        """Mark each perpetual leg at its book's mid (the recordings carry no mark price stream)."""
        for venue in self.perp:
            self._mark_leg(venue, ts)

    def _watch(self, venue: str, ts: int, mid2: int) -> None:
        """Mark the leg's ledger at once when its book's mid reached one of its liquidation prices
        (:func:`trading.perp_liquidation.mid2_bounds`, recomputed after its fills and marks)."""
        bounds = self._bounds.get(venue)
        if bounds is None:
            bounds = self._bounds[venue] = mid2_bounds(self.perp[venue])
        low, high = bounds
        if (low is not None and mid2 <= low) or (high is not None and mid2 >= high):
            self._mark_leg(venue, ts)

    def _mark_leg(self, venue: str, ts: int) -> None:
        """Mark one perpetual leg; a liquidation closes it (module docstring)."""
        ledger = self.perp[venue]
        book = self.venues[venue].book
        bid, ask = book.best_bid(), book.best_ask()
        if bid is None or ask is None:
            return
        self._bounds.pop(venue, None)  # funding or a liquidation may move them
        for done in ledger.on_mark(ts, ledger.instrument.price(bid + ask) / 2):
            close_in_risk(self.risk[venue], done)
            lots = sum(done.closed.values())
            commands = self.bot.on_liquidation(venue, ts, lots, liquidation_text(done, ledger.spec.settle))
            exposure = self.bot.exposure()
            self.liquidations.append(LegLiquidation(venue, done, exposure))
            self.exposure.note(ts, exposure)
            self._send(commands, ts)

    def _send(self, commands: list[VenueCommand], ts: int) -> None:
        if not commands:
            return
        touched = set()
        hedge = self.venues[HEDGE]
        for venue, command in commands:
            if venue == HEDGE and type(command) is PlaceOrder:
                if HedgeFaults._in(self.faults.reject, ts):
                    due = ts + hedge.latency.entry_ns(ts) + hedge.latency.response_ns(ts)
                    rejected = OrderRejected(due, command.client_order_id, "429 Too Many Requests", "rate_limited")
                    self._injected.append((due, rejected))
                    continue
                if HedgeFaults._in(self.faults.drop, ts):
                    continue
            if type(command) is PlaceOrder and self._refused(venue, command, ts):
                continue
            self.venues[venue].submit(command, ts)
            touched.add(venue)
        for venue in touched:  # with no latency the venue answers at once
            exchange = self.venues[venue]
            if exchange.answers_due(ts):
                self._answer(venue, exchange.advance(ts))

    def _refused(self, venue: str, command: PlaceOrder, ts: int) -> bool:
        """The leg's pre-trade check (:func:`trading.hedge_margin.refusal`): a refused order is
        counted, kept out of the venue and answered at the next event or timer."""
        decision = hedge_margin.refusal(self.risk.get(venue), self.bot, venue, command)
        if decision is None:
            return False
        reason = hedge_margin.reason(venue, decision)
        counts = self.refused.setdefault(venue, {})
        counts[decision.code] = counts.get(decision.code, 0) + 1
        self.refused_first.setdefault(venue, reason)
        self._refusals.append((venue, OrderRejected(ts, command.client_order_id, reason, decision.code)))
        return True
