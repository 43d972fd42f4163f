"""The runner: one per-event algorithm for the backtester and the hosted bots.

Market events in -> matching (the venue's answers due by then, then what the event itself did
to our orders) -> engine -> commands -> venue -> order reports -> engine, and so on until the
engine has nothing more to say. What differs between a backtest, a hosted paper bot and a
hosted live bot is only what is plugged in:

* the **clock**: the caller gives every step its time (``market(event, now)``,
  ``timer(now)``); a backtest passes the event's own time, a hosted bot the wall clock it was
  built with (``clock``);
* the **event source**: an iterable of recorded or synthetic events (``trading.backtest``), or
  the host's Redis stream reader (``workers.botloop``);
* the **matching** side of the venue (:class:`Matching`): ``trading.fillsim.SimulatedExchange``
  itself in a backtest; in a hosted bot the venue's ``matching`` (paper: the same
  ``SimulatedExchange`` whose Redis writes are queued until the host confirms them; live: no
  matching, the exchange reports on its own).

Commands go to the venue at once (``submit`` then ``advance``: a backtest, where the venue is a
local object), or are **deferred**: kept in ``deferred`` in the order the engine made them, for
the host to send in one round trip at the end of its cycle and hand the venue's answers back with
:meth:`reports`. Reports whose venue writes are not confirmed yet are **held**: the engine sees
them at once (as it would see an exchange's answer), but the ``record`` hook (the database rows
and pushes of a hosted bot) gets them only after :meth:`release` — nothing outside the venue learns
of a fill the venue may still refuse. ``on_fill`` (called after the engine booked the fill) is the
PnL/telemetry hook: the backtest's fill list, perpetual ledger and inventory tracker.

The runner is plain synchronous code on the hot path of a backtest: bound methods are looked up
once, per-event work is a few attribute reads and calls, and nothing is allocated for an event
that makes no command or report.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from trading.events import AmendOrder, CancelAll, CancelOrder, Command, OrderEvent, OrderFilled, PlaceOrder, Timer

MAX_ROUNDS = 20  # venue round trips at one instant before the rest waits for the next event


class Matching(Protocol):
    """The synchronous matching side of a venue, as the runner drives it
    (``trading.fillsim.SimulatedExchange`` implements it)."""

    def answers_due(self, ts: int) -> bool: ...

    def advance(self, ts: int) -> list[OrderEvent]: ...

    def on_market(self, event: Any) -> list[OrderEvent]: ...

    def submit(self, command: Command, ts: int) -> None: ...

    def next_due(self) -> int | None: ...


class NoMatching:
    """The matching side of a venue that matches nothing itself (a live exchange: its reports
    arrive on their own and go to :meth:`Runner.reports`). ``check`` is called at every timer
    step (a live venue raises the failure its event pump saw there)."""

    __slots__ = ("_check",)
    unconfirmed = False

    def __init__(self, check: Callable[[], None] | None = None) -> None:
        self._check = check

    def answers_due(self, ts: int) -> bool:
        return False

    def advance(self, ts: int) -> list[OrderEvent]:
        if self._check is not None:
            self._check()
        return []

    def on_market(self, event: Any) -> list[OrderEvent]:
        return []

    def next_due(self) -> int | None:
        return None

    def submit(self, command: Command, ts: int) -> None:
        raise TypeError("this venue takes commands through its own calls (a hosted runner defers them)")


class Runner:
    """Drive ``engine`` (anything with ``on_event(event) -> list[Command]``) against ``matching``.

    ``defer``: keep commands in :attr:`deferred` instead of submitting them (a hosted bot sends
    them itself, see the module docstring). ``hold``: reports of a market or timer step are held
    from ``record`` while ``matching.unconfirmed`` says the venue has writes not yet confirmed.
    ``record(report)`` is called before the engine sees a report, ``on_fill(fill)`` after.
    ``clock`` is kept for the caller's steps that have no event time (hosted bots).
    """

    __slots__ = (
        "_advance",
        "_due",
        "_engine_on",
        "_match",
        "_submit",
        "amends",
        "cancels",
        "clock",
        "deferred",
        "engine",
        "fill_count",
        "held",
        "hold",
        "matching",
        "now",
        "on_fill",
        "places",
        "record",
    )

    def __init__(
        self,
        engine: Any,
        matching: Any,
        *,
        clock: Callable[[], int] | None = None,
        defer: bool = False,
        hold: bool = False,
        record: Callable[[OrderEvent], None] | None = None,
        on_fill: Callable[[OrderFilled], None] | None = None,
    ) -> None:
        self.engine = engine
        self.matching = matching
        self.clock = clock
        self.record = record
        self.on_fill = on_fill
        self.deferred: list[Command] | None = [] if defer else None
        self.held: list[OrderEvent] | None = None
        self.hold = hold
        self.now = 0
        self.places = self.cancels = self.amends = 0
        self.fill_count = 0
        self._engine_on = engine.on_event
        self._due = matching.answers_due
        self._advance = matching.advance
        self._match = matching.on_market
        self._submit = None if defer else matching.submit

    # -----------------------------------------------------------------------------------------
    def market(self, event: Any, now: int) -> None:
        """One market event at ``now``: the venue's answers due before it come first (and whatever
        the engine sends in reply reaches the venue before the event if its latency allows), then
        what the event did to our orders, then the engine's view of the event."""
        self.now = now
        if self._due(now):
            answers = self._advance(now)
            if answers:
                self._step_reports(answers)
        answers = self._match(event)
        if answers:
            self._step_reports(answers)
        commands = self._engine_on(event)
        if commands:
            self.send(commands, now)

    def timer(self, now: int) -> None:
        """A timer at ``now``: the venue's answers due by then, then the engine's timer step."""
        self.now = now
        answers = self._advance(now)
        if answers:
            self._step_reports(answers)
        commands = self._engine_on(Timer(now))
        if commands:
            self.send(commands, now)

    def answers(self, now: int) -> None:
        """The venue's answers due by ``now`` (a simulated venue with latency: a hosted bot steps
        here when :meth:`Matching.next_due` comes, as a backtest's venue answers between events)."""
        self.now = now
        answers = self._advance(now)
        if answers:
            self._step_reports(answers)

    def reports(self, answers: list[OrderEvent]) -> None:
        """Order reports that reached us (a hosted venue's answers to sent commands, a live
        gateway's events): to ``record`` and the engine, replies sent or deferred."""
        if answers:
            self.dispatch(answers)

    def command(self, commands: list[Command]) -> None:
        """Commands made outside a step (pause, stop, a user's cancel): sent as the engine's."""
        if commands:
            self.send(commands, self.now)

    # -----------------------------------------------------------------------------------------
    def send(self, commands: list[Command], ts: int) -> None:
        self._count(commands)
        deferred = self.deferred
        if deferred is not None:
            deferred.extend(commands)
            return
        submit = self._submit
        for command in commands:
            submit(command, ts)
        # With no latency the venue answers at once; let the engine see it at the same time.
        answers = self._advance(self.now)
        if answers:
            self.dispatch(answers)

    def take(self) -> list[Command]:
        """The deferred commands, in order (emptied)."""
        deferred = self.deferred
        if not deferred:
            return []
        self.deferred = []
        return deferred

    def _count(self, commands: list[Command]) -> None:
        for command in commands:
            kind = type(command)
            if kind is PlaceOrder:
                self.places += 1
            elif kind is CancelOrder or kind is CancelAll:
                self.cancels += 1
            elif kind is AmendOrder:
                self.amends += 1

    def _step_reports(self, answers: list[OrderEvent]) -> None:
        if self.hold and self.held is None and self.matching.unconfirmed:
            self.held = []
        self.dispatch(answers)

    def dispatch(self, answers: list[OrderEvent]) -> None:
        """Hand every answer to the engine; let the venue answer its replies at the same time.

        After ``MAX_ROUNDS`` exchanges at one instant (an engine that answers every reject with
        the same order), replies stay queued at the venue until the next event: nothing is
        dropped, the loop just cannot spin forever. Deferred commands end the round at once
        (the caller sends them)."""
        engine_on = self._engine_on
        record = self.record
        on_fill = self.on_fill
        submit = self._submit
        pending = answers
        rounds = 0
        while pending:
            sent = False
            for answer in pending:
                if record is not None:
                    held = self.held
                    if held is not None:
                        held.append(answer)
                    else:
                        record(answer)
                commands = engine_on(answer)
                if type(answer) is OrderFilled:
                    self.fill_count += 1
                    if on_fill is not None:
                        on_fill(answer)
                if commands:
                    self._count(commands)
                    if submit is None:
                        self.deferred.extend(commands)
                    else:
                        ts = answer.ts
                        for command in commands:
                            submit(command, ts)
                        sent = True
            rounds += 1
            if not sent or rounds >= MAX_ROUNDS:
                return
            pending = self._advance(self.now)

    # -----------------------------------------------------------------------------------------
    def release(self) -> list[OrderEvent]:
        """The held reports (emptied), for ``record`` once the venue has confirmed their writes."""
        held, self.held = self.held, None
        return held or []

    def drop_held(self) -> list[OrderEvent]:
        """Forget the held reports (their writes were refused or their fate is unknown)."""
        return self.release()
