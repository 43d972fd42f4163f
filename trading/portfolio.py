"""Inventory and PnL in exact integers.

Money is integer cash units (``trading.instruments``): ``q`` lots at ``p`` ticks are worth
``p * q * FEE_SCALE`` units. The mark is the mid, kept as ``mid2 = bid + ask`` (twice the mid
in ticks) so half-tick mids stay exact: ``q`` lots marked at the mid are worth
``q * mid2 * FEE_SCALE // 2`` units, which is exact because ``FEE_SCALE`` is even.

Identities that hold exactly at every moment (tests check them):

* ``realized + unrealized - fees == trading_pnl``
* ``spread_capture + inventory_pnl - fees == trading_pnl``
* ``equity - start_equity == trading_pnl + initial_base * (mid2 - start_mid2) * FEE_SCALE // 2``

``position`` is what the bot has bought net of what it sold since it started; the base
balance is the initial base plus the position.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from trading.events import OrderFilled
from trading.instruments import FEE_SCALE, Instrument

HALF_SCALE = FEE_SCALE // 2


@dataclass(frozen=True, slots=True)
class PnlSnapshot:
    """Inventory and PnL at one moment. Money in cash units, position in lots, mid in ticks."""

    ts: int
    position: int
    base_balance: int
    cash: int  # quote balance in cash units
    mid: float | None
    realized: int
    unrealized: int
    fees: int  # paid (positive) net of rebates (negative)
    equity: int
    peak: int
    drawdown: int
    spread_capture: int
    inventory_pnl: int

    @property
    def trading_pnl(self) -> int:
        return self.realized + self.unrealized - self.fees


@dataclass(frozen=True, slots=True)
class Markout:
    """Mid ``horizon_ns`` after a fill minus the fill price, signed so positive favours us."""

    fill_ts: int
    trade_id: str
    horizon_ns: int
    side: int
    price: int
    qty: int
    value: int  # cash units: side * (mid_later - price) * qty, exact


class Portfolio:
    """Position, cost basis, realized/unrealized PnL, fees, equity, drawdown and markouts."""

    def __init__(
        self,
        instrument: Instrument,
        *,
        initial_base: int = 0,
        initial_quote: int = 0,
        markout_horizons_ns: Sequence[int] = (),
        max_markouts: int = 10_000,
    ) -> None:
        self.instrument = instrument
        self.initial_base = initial_base
        self.initial_quote = initial_quote
        self.position = 0
        self.cash = initial_quote
        self.cost_basis = 0  # signed cash units of the open position (negative when short)
        self.realized = 0
        self.fees = 0
        self.spread_capture = 0
        self.inventory_pnl = 0
        self.mid2: int | None = None
        self.start_mid2: int | None = None
        self.mark_ts = 0
        self.peak: int | None = None
        self.horizons = tuple(sorted({int(h) for h in markout_horizons_ns}))
        if any(h <= 0 for h in self.horizons):
            raise ValueError(f"markout_horizons_ns: {markout_horizons_ns!r} must all be positive nanoseconds")
        self._pending: list[deque[tuple[int, OrderFilled]]] = [deque() for _ in self.horizons]
        self.markouts: deque[Markout] = deque(maxlen=max_markouts)
        self.markout_sum = [0] * len(self.horizons)
        self.markout_lots = [0] * len(self.horizons)
        self.fill_count = 0
        self.volume_lots = 0

    # --- derived values --------------------------------------------------------------------
    @property
    def base_balance(self) -> int:
        return self.initial_base + self.position

    @property
    def avg_cost(self) -> float | None:
        """Average entry price of the open position in ticks (display only)."""
        if self.position == 0:
            return None
        return self.cost_basis / (self.position * FEE_SCALE)

    @property
    def unrealized(self) -> int:
        if self.mid2 is None or self.position == 0:
            return 0
        return self.position * self.mid2 * HALF_SCALE - self.cost_basis

    @property
    def trading_pnl(self) -> int:
        return self.realized + self.unrealized - self.fees

    def equity(self) -> int | None:
        """Quote cash plus base balance at the mid, in cash units (``None`` before any mid)."""
        if self.mid2 is None:
            return None
        return self.cash + self.base_balance * self.mid2 * HALF_SCALE

    def start_equity(self) -> int | None:
        if self.start_mid2 is None:
            return None
        return self.initial_quote + self.initial_base * self.start_mid2 * HALF_SCALE

    def inventory_ratio(self) -> float | None:
        """Base value / total value at the mid (``None`` before a mid or with no value)."""
        if self.mid2 is None:
            return None
        base_value = self.base_balance * self.mid2 * HALF_SCALE
        total = self.cash + base_value
        if total <= 0:
            return None
        return base_value / total

    def position_value(self) -> int:
        """Absolute value of the position at the mid in cash units (0 before a mid)."""
        if self.mid2 is None:
            return 0
        return abs(self.position) * self.mid2 * HALF_SCALE

    # --- updates ---------------------------------------------------------------------------
    def mark(self, ts: int, mid2: int) -> None:
        """Mark to the mid (``mid2 = best_bid + best_ask``) and settle due markouts.

        Call it when the mid changes and on timers; between calls the mid is taken as unchanged.
        """
        old = self.mid2
        if self.horizons and old is not None:
            # Horizons that passed before now saw the mid in force until now (the old one).
            for i, pending in enumerate(self._pending):
                while pending and pending[0][0] < ts:
                    self._settle_markout(i, pending.popleft()[1], old)
        if old is None:
            self.start_mid2 = mid2
        elif mid2 != old and self.position:
            self.inventory_pnl += self.position * (mid2 - old) * HALF_SCALE
        self.mid2 = mid2
        self.mark_ts = ts
        if self.horizons:
            for i, pending in enumerate(self._pending):
                while pending and pending[0][0] <= ts:
                    self._settle_markout(i, pending.popleft()[1], mid2)
        if old is None or mid2 != old or self.peak is None:
            eq = self.cash + self.base_balance * mid2 * HALF_SCALE
            if self.peak is None or eq > self.peak:
                self.peak = eq

    def _settle_markout(self, i: int, fill: OrderFilled, mid2: int) -> None:
        s = int(fill.side)
        value = s * (mid2 - 2 * fill.price) * fill.qty * HALF_SCALE
        self.markout_sum[i] += value
        self.markout_lots[i] += fill.qty
        self.markouts.append(Markout(fill.ts, fill.trade_id, self.horizons[i], s, fill.price, fill.qty, value))

    def on_fill(self, fill: OrderFilled) -> None:
        """Book a fill: cash, fees, position, cost basis, realized PnL, spread capture."""
        s = int(fill.side)
        p, q = fill.price, fill.qty
        if q <= 0:
            return
        notional = p * q * FEE_SCALE
        self.cash -= s * notional + fill.fee
        self.fees += fill.fee
        self.fill_count += 1
        self.volume_lots += q
        if self.mid2 is None:
            # No mid yet: mark at the fill price so spread capture is zero, not invented.
            self.mark(fill.ts, 2 * p)
        self.spread_capture += s * (self.mid2 - 2 * p) * q * HALF_SCALE
        pos = self.position
        if pos == 0 or (pos > 0) == (s > 0):
            self.cost_basis += s * notional
            self.position = pos + s * q
        else:
            size = abs(pos)
            closed = min(q, size)
            portion = self.cost_basis if closed == size else self.cost_basis * closed // size
            self.realized += -s * p * closed * FEE_SCALE - portion
            self.cost_basis -= portion
            self.position = pos + s * closed
            rest = q - closed
            if rest:  # flipped through zero: the rest opens a new position at this price
                self.cost_basis = s * p * rest * FEE_SCALE
                self.position = s * rest
        for i, h in enumerate(self.horizons):
            self._pending[i].append((fill.ts + h, fill))
        eq = self.equity()
        if eq is not None and (self.peak is None or eq > self.peak):
            self.peak = eq

    # --- views -----------------------------------------------------------------------------
    def snapshot(self, ts: int) -> PnlSnapshot:
        """A frozen picture of inventory and PnL."""
        eq = self.equity()
        equity = eq if eq is not None else self.cash
        peak = self.peak if self.peak is not None else equity
        return PnlSnapshot(
            ts=ts,
            position=self.position,
            base_balance=self.base_balance,
            cash=self.cash,
            mid=None if self.mid2 is None else self.mid2 / 2,
            realized=self.realized,
            unrealized=self.unrealized,
            fees=self.fees,
            equity=equity,
            peak=peak,
            drawdown=max(0, peak - equity),
            spread_capture=self.spread_capture,
            inventory_pnl=self.inventory_pnl,
        )

    def markout_summary(self) -> dict[int, dict[str, float | int]]:
        """Per horizon (ns): settled lots, total in cash units, average per lot in ticks."""
        out: dict[int, dict[str, float | int]] = {}
        for i, h in enumerate(self.horizons):
            lots = self.markout_lots[i]
            total = self.markout_sum[i]
            out[h] = {
                "lots": lots,
                "total": total,
                "avg_ticks_per_lot": (total / (lots * FEE_SCALE)) if lots else 0.0,
            }
        return out
