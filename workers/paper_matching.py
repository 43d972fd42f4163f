"""The paper venue's matching engine as :class:`trading.runner.Runner` drives it (see
:class:`PaperMatching`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from trading.events import OrderEvent

if TYPE_CHECKING:
    from workers.paper_venue import PaperVenue


class PaperMatching:
    """The paper venue's matching engine as :class:`trading.runner.Runner` drives it: synchronous,
    the fenced writes recording what it did queued on the venue (``unconfirmed``) until the venue's
    next write or :meth:`PaperVenue.confirm` takes them to Redis. Commands reach it through
    :meth:`PaperVenue.send_many` (the runner defers them), never through ``submit``."""

    __slots__ = ("_sim", "_venue", "answers_due", "next_due")

    def __init__(self, venue: PaperVenue) -> None:
        self._venue = venue
        self._sim = venue.sim
        self.answers_due = venue.sim.answers_due
        self.next_due = venue.sim.next_due

    @property
    def unconfirmed(self) -> bool:
        return bool(self._venue._unconfirmed)

    def on_market(self, event) -> list[OrderEvent]:
        venue = self._venue
        if event.ts > venue._last_ts:
            venue._last_ts = event.ts
        if venue._shared_book is not None:  # no restore (not a bot loop's take-over)
            venue._attach_book()
        out = self._sim.on_market(event)
        return venue._queue(out) if out else out

    def advance(self, ts: int) -> list[OrderEvent]:
        venue = self._venue
        if ts > venue._last_ts:
            venue._last_ts = ts
        out = self._sim.advance(venue._last_ts)
        return venue._queue(out) if out else out

    def submit(self, command, ts: int) -> None:
        raise TypeError("the paper venue takes commands through send_many (a hosted runner defers them)")
