"""Queue-position models: where our resting order stands in the venue's FIFO queue.

A resting order joins its price level behind the displayed size (``queue_ahead``). Trades at
our price eat the queue ahead of us first; only the volume left over can fill us. What a
*book decrease* (a cancel by someone else) does to our place is unknowable from L2 data, so it
is a model choice:

* :class:`RiskAverseQueueModel` — only trades move us forward; a shrinking level can never
  leave more ahead of us than the level's whole size (the conservative model, like
  hftbacktest's ``RiskAdverseQueueModel``).
* :class:`ProbQueueModel` — a decrease is split between the orders ahead and behind us with
  probability ``f(back) / (f(front) + f(back))`` for the part *behind* us, ``f(x) = x**power``
  (like hftbacktest's ``PowerProbQueueModel``). Larger ``power`` assumes cancels come mostly
  from the far end of the queue. A trade at our level usually shows up again as a book decrease;
  the trade has already moved us and the decrease is then shared out again, so this model is the
  optimistic one of the two.

Queue positions are model estimates in lots (floats allowed); fills are always whole lots.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

from trading.events import TimeInForce
from trading.instruments import Side
from trading.ports import OrderReport, OrderStatus


class QueueModel(Protocol):
    """How our queue position evolves; pure functions of the numbers given."""

    def joined(self, level_qty: int) -> float:
        """Queue ahead of an order that starts resting at a level showing ``level_qty``."""
        ...

    def traded(self, queue_ahead: float, trade_qty: int) -> tuple[float, int]:
        """A trade of ``trade_qty`` at our price: return (new queue ahead, lots that can fill us)."""
        ...

    def level_changed(self, queue_ahead: float, prev_qty: int, new_qty: int) -> float:
        """The displayed size at our level went from ``prev_qty`` to ``new_qty`` (not by a trade)."""
        ...


def _after_trade(queue_ahead: float, trade_qty: int) -> tuple[float, int]:
    if trade_qty <= queue_ahead:
        return queue_ahead - trade_qty, 0
    # Whole lots only: a fractional estimate of the queue never gives us a fractional fill.
    return 0.0, math.floor(trade_qty - queue_ahead + 1e-9)


class RiskAverseQueueModel:
    """Only trades advance us; the queue ahead is capped by the level's displayed size."""

    name = "risk_averse"

    def joined(self, level_qty: int) -> float:
        return float(max(level_qty, 0))

    def traded(self, queue_ahead: float, trade_qty: int) -> tuple[float, int]:
        return _after_trade(queue_ahead, trade_qty)

    def level_changed(self, queue_ahead: float, prev_qty: int, new_qty: int) -> float:
        return min(queue_ahead, float(max(new_qty, 0)))

    def __repr__(self) -> str:
        return "RiskAverseQueueModel()"


class ProbQueueModel:
    """Cancels ahead of us are shared out by ``f(x) = x**power`` (see the module docstring)."""

    name = "probabilistic"

    def __init__(self, power: float = 3.0) -> None:
        if not isinstance(power, int | float) or isinstance(power, bool) or not power > 0:
            raise ValueError(f"power: {power!r} is not accepted; give a number > 0 (e.g. 2 or 3)")
        self.power = float(power)

    def joined(self, level_qty: int) -> float:
        return float(max(level_qty, 0))

    def traded(self, queue_ahead: float, trade_qty: int) -> tuple[float, int]:
        return _after_trade(queue_ahead, trade_qty)

    def level_changed(self, queue_ahead: float, prev_qty: int, new_qty: int) -> float:
        new_qty = max(new_qty, 0)
        decrease = prev_qty - new_qty
        if decrease <= 0:
            # New size joins behind us.
            return min(queue_ahead, float(new_qty))
        front = queue_ahead
        back = max(prev_qty - front, 0.0)
        f_front = front**self.power
        f_back = back**self.power
        total = f_front + f_back
        share_behind = f_back / total if total > 0 else 0.0
        estimate = front - (1.0 - share_behind) * decrease
        # If more was cancelled than stood behind us, the rest must have been ahead of us.
        overflow = back - share_behind * decrease
        if overflow < 0:
            estimate += overflow
        return max(0.0, min(estimate, float(new_qty)))

    def __repr__(self) -> str:
        return f"ProbQueueModel(power={self.power})"


# ------------------------------------------------------------------------------------------
# Our orders at the simulated venue and their places in the queues
# ------------------------------------------------------------------------------------------
@dataclass(slots=True)
class SimOrder:
    """One of our orders as the simulated venue sees it."""

    client_order_id: str
    venue_order_id: str
    side: Side
    price: int
    qty: int
    tif: TimeInForce
    created_ts: int
    filled: int = 0
    status: OrderStatus = OrderStatus.OPEN
    queue_ahead: float = 0.0
    resting: bool = False

    @property
    def leaves(self) -> int:
        """Lots still working."""
        return self.qty - self.filled

    def report(self, symbol: str) -> OrderReport:
        return OrderReport(
            client_order_id=self.client_order_id,
            venue_order_id=self.venue_order_id,
            symbol=symbol,
            side=self.side,
            price=self.price,
            qty=self.qty,
            filled_qty=self.filled,
            status=self.status,
            ts=self.created_ts,
        )


class RestingOrders:
    """Our resting orders by side and price level, in time priority, with their queue positions."""

    __slots__ = ("_best", "_levels", "count", "model")

    def __init__(self, model: QueueModel) -> None:
        self.model = model
        self._levels: dict[Side, dict[int, list[SimOrder]]] = {Side.BUY: {}, Side.SELL: {}}
        self._best: dict[Side, int | None] = {Side.BUY: None, Side.SELL: None}
        self.count = 0

    def _refresh_best(self, side: Side) -> None:
        levels = self._levels[side]
        if not levels:
            self._best[side] = None
        else:
            self._best[side] = max(levels) if side is Side.BUY else min(levels)

    def add(self, order: SimOrder, level_qty: int) -> None:
        """Rest ``order`` behind ``level_qty`` displayed lots at its price."""
        order.queue_ahead = self.model.joined(level_qty)
        order.resting = True
        self._levels[order.side].setdefault(order.price, []).append(order)
        self.count += 1
        self._refresh_best(order.side)

    def remove(self, order: SimOrder) -> None:
        """Take ``order`` off the book (no-op when it is not resting)."""
        if not order.resting:
            return
        levels = self._levels[order.side]
        level = levels[order.price]
        level.remove(order)
        if not level:
            del levels[order.price]
        order.resting = False
        self.count -= 1
        self._refresh_best(order.side)

    def best(self, side: Side) -> int | None:
        """Our best resting price on ``side`` (highest bid / lowest ask)."""
        return self._best[side]

    def prices(self, side: Side) -> list[int]:
        """Prices where we rest on ``side``."""
        return list(self._levels[side])

    def price_set(self, side: Side) -> dict[int, list[SimOrder]]:
        """Our levels on ``side`` keyed by price (for fast membership tests; do not mutate)."""
        return self._levels[side]

    def level_changed(self, side: Side, price: int, prev_qty: int, new_qty: int) -> None:
        """The displayed size at our level changed without a trade."""
        level = self._levels[side].get(price)
        if level:
            changed = self.model.level_changed
            for order in level:
                order.queue_ahead = changed(order.queue_ahead, prev_qty, new_qty)

    def crossed_by(self, side: Side, price: int, *, strict: bool = False) -> list[SimOrder]:
        """Our orders on ``side`` that a counterparty at ``price`` reaches (through it if strict)."""
        best = self._best[side]
        if best is None:
            return []
        levels = self._levels[side]
        if side is Side.BUY:
            if best < price or (strict and best == price):
                return []
            hit = [p for p in levels if p > price or (not strict and p == price)]
            hit.sort(reverse=True)
        else:
            if best > price or (strict and best == price):
                return []
            hit = [p for p in levels if p < price or (not strict and p == price)]
            hit.sort()
        return [order for p in hit for order in levels[p]]

    def traded_at(self, side: Side, price: int, qty: int) -> list[tuple[SimOrder, int]]:
        """A trade of ``qty`` at our ``price``: advance the queues; return (order, lots filled)."""
        level = self._levels[side].get(price)
        if not level:
            return []
        traded = self.model.traded
        fills: list[tuple[SimOrder, int]] = []
        used = 0  # lots of this trade already given to our earlier orders at this level
        for order in level:
            order.queue_ahead, executable = traded(order.queue_ahead, qty)
            available = executable - used
            if available > 0:
                take = min(order.leaves, available)
                used += take
                fills.append((order, take))
        return fills
