"""Per-fill attribution of a hedged maker: each maker fill paired with the hedge fill(s) that
covered it.

Maker fills and hedge fills go through one first-in-first-out ledger of signed base amounts
(buys positive). A hedge fill covers the oldest open maker fills of the opposite sign; a maker
fill that meets an older opposite maker fill nets against it (no hedge needed for that part);
a hedge fill larger than what is open (the hedge is rounded to whole hedge lots) leaves a
surplus that the next maker fill of the other sign takes as already hedged.

Per maker fill: the expected edge (the hedge price the quote was priced from), the realized
edge (the hedge fills' prices, both legs' fees), the hedge slippage against the expected hedge
price, and the hedge latency (maker fill to first and to last covering hedge fill). Amounts are
exact ``Fraction`` in the quote currency; :func:`attribution_records` gives decimal strings.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from fractions import Fraction
from statistics import median
from typing import Any

from trading.contracts import decimal_text


@dataclass(slots=True)
class Cover:
    """Part of a maker fill covered by a hedge fill (or netted against another maker fill)."""

    ts: int
    price: Fraction  # quote per base
    base: Fraction
    fee: Fraction  # quote currency, the covering fill's fee share
    netted: bool = False


@dataclass(slots=True)
class MakerFillRecord:
    ts: int
    side: int  # +1 buy, -1 sell
    price: Fraction  # quote per base
    base: Fraction
    fee: Fraction  # maker fee in quote currency (negative = rebate)
    expected_hedge: Fraction | None  # the walked hedge price the quote was priced from
    expected_hedge_fee_rate: Fraction
    open: Fraction = Fraction(0)
    covers: list[Cover] = field(default_factory=list)
    done_ts: int | None = None

    @property
    def covered(self) -> Fraction:
        return self.base - self.open

    def expected_edge(self) -> Fraction | None:
        """Edge the quote was priced for: hedge vs maker price, less both fees, in quote currency."""
        if self.expected_hedge is None:
            return None
        gross = (self.expected_hedge - self.price) * self.base * self.side
        return gross - self.fee - self.expected_hedge * self.base * self.expected_hedge_fee_rate

    def realized_edge(self) -> Fraction:
        """Realized on the covered part: covering price vs maker price, less the maker fee share
        and the covering fills' fees."""
        if not self.base:
            return Fraction(0)
        covered = self.covered
        gross = sum(((c.price - self.price) * c.base * self.side for c in self.covers), Fraction(0))
        return gross - self.fee * covered / self.base - sum((c.fee for c in self.covers), Fraction(0))

    def hedge_vwap(self) -> Fraction | None:
        hedged = [c for c in self.covers if not c.netted]
        base = sum((c.base for c in hedged), Fraction(0))
        return sum((c.price * c.base for c in hedged), Fraction(0)) / base if base else None

    def slippage_bps(self) -> float | None:
        """How much worse the hedge filled than expected, in bps of the expected price (positive = worse)."""
        vwap = self.hedge_vwap()
        if vwap is None or not self.expected_hedge:
            return None
        # A maker buy is hedged by a sell: a lower hedge price is worse.
        return float((self.expected_hedge - vwap) * self.side / self.expected_hedge * 10_000)

    def latency_ns(self) -> tuple[int | None, int | None]:
        first = min((c.ts for c in self.covers if not c.netted), default=None)
        return (None if first is None else first - self.ts), (None if self.done_ts is None else self.done_ts - self.ts)


class AttributionLedger:
    """The FIFO pairing of maker and hedge fills (see the module docstring)."""

    def __init__(self, max_records: int = 100_000) -> None:
        self.records: list[MakerFillRecord] = []
        self.max_records = max_records
        self.dropped = 0
        # open entries: (record or None for a hedge surplus, sign, remaining base, surplus price, fee/base)
        self._open: deque[list[Any]] = deque()

    def on_maker_fill(self, record: MakerFillRecord) -> None:
        record.open = record.base
        if len(self.records) < self.max_records:
            self.records.append(record)
        else:
            self.dropped += 1
        remaining = self._consume(record.side, record.base, record.ts, record.price, record.fee / record.base, record)
        if remaining:
            self._open.append([record, record.side, remaining, None, None])

    def on_hedge_fill(self, ts: int, side: int, price: Fraction, base: Fraction, fee: Fraction) -> None:
        remaining = self._consume(side, base, ts, price, fee / base if base else Fraction(0), None)
        if remaining:
            self._open.append([None, side, remaining, price, fee / base])

    def open_base(self) -> Fraction:
        """Signed base amount not covered yet (maker fills awaiting a hedge, or hedge surplus)."""
        return sum((entry[1] * entry[2] for entry in self._open), Fraction(0))

    def _consume(
        self, side: int, base: Fraction, ts: int, price: Fraction, fee_per_base: Fraction, maker: MakerFillRecord | None
    ) -> Fraction:
        remaining = base
        open_ = self._open
        while remaining and open_ and open_[0][1] == -side:
            entry = open_[0]
            take = min(entry[2], remaining)
            other: MakerFillRecord | None = entry[0]
            if other is not None:
                # an open maker fill covered by this hedge fill, or netted by this maker fill
                other.covers.append(Cover(ts, price, take, fee_per_base * take, netted=maker is not None))
                other.open -= take
                if not other.open:
                    other.done_ts = ts
                if maker is not None:
                    maker.covers.append(Cover(ts, other.price, take, other.fee / other.base * take, netted=True))
            elif maker is not None:  # a hedge surplus the maker fill takes as its hedge
                maker.covers.append(Cover(ts, entry[3], take, entry[4] * take))
            entry[2] -= take
            remaining -= take
            if not entry[2]:
                open_.popleft()
        if maker is not None:
            maker.open = remaining
            if not remaining:
                maker.done_ts = ts
        return remaining


def attribution_records(records: list[MakerFillRecord], limit: int = 5_000) -> dict[str, Any]:
    """JSON-ready: per-fill rows (the first ``limit``) and the distribution of edge, slippage, latency."""

    def dec(value: Fraction | None, places: int = 8) -> str | None:
        return None if value is None else decimal_text(value, places)

    rows = []
    realized: list[float] = []
    expected: list[float] = []
    slippage: list[float] = []
    latency: list[float] = []
    for r in records:
        first, done = r.latency_ns()
        exp = r.expected_edge()
        real = r.realized_edge()
        slip = r.slippage_bps()
        if len(rows) < limit:
            rows.append(
                {
                    "ts_ms": r.ts // 1_000_000,
                    "side": "buy" if r.side > 0 else "sell",
                    "price": dec(r.price),
                    "qty": dec(r.base),
                    "expected_hedge_price": dec(r.expected_hedge),
                    "hedge_vwap": dec(r.hedge_vwap()),
                    "hedged_qty": dec(sum((c.base for c in r.covers if not c.netted), Fraction(0))),
                    "netted_qty": dec(sum((c.base for c in r.covers if c.netted), Fraction(0))),
                    "open_qty": dec(r.open),
                    "expected_edge": dec(exp),
                    "realized_edge": dec(real),
                    "slippage_bps": slip,
                    "hedge_latency_ms": None if first is None else first / 1e6,
                    "covered_latency_ms": None if done is None else done / 1e6,
                }
            )
        realized.append(float(real))
        if exp is not None:
            expected.append(float(exp))
        if slip is not None:
            slippage.append(slip)
        if first is not None:
            latency.append(first / 1e6)
    return {
        "fills": rows,
        "distribution": {
            "expected_edge": _summary(expected),
            "realized_edge": _summary(realized),
            "slippage_bps": _summary(slippage),
            "hedge_latency_ms": _summary(latency),
        },
    }


def _summary(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"count": 0, "min": None, "median": None, "mean": None, "max": None}
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]
    return {
        "count": len(values),
        "min": ordered[0],
        "median": median(ordered),
        "mean": sum(ordered) / len(ordered),
        "p90": p90,
        "max": ordered[-1],
    }
