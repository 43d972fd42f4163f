"""Market-making quality analytics, the same for backtests and for paper/live bots.

- PnL decomposed into spread capture, inventory PnL and fees, and fill markouts at 1 s / 10 s /
  60 s: :func:`replay_pnl` books fills and mids into a :class:`trading.portfolio.Portfolio`
  (which keeps those identities exactly, in cash units).
- Quote uptime, time at top of book, average quoted spread and the inventory distribution:
  :class:`QuoteSampler` samples our best bid/ask, the market's best bid/ask and our position on
  a regular grid (time-weighted, through :class:`trading.metrics.TimeWeightedTracker`).
  For a backtest, :class:`AnalyticsBacktest` feeds it at every timer; for a bot, :func:`sample_quoting`
  rebuilds the same samples from stored order lifetimes, top-of-book snapshots and fills.
- Order-to-trade ratio: orders placed per fill.

Prices are ticks, sizes lots, money cash units (see ``trading.instruments``); no wall clock.
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from sortedcontainers import SortedList

from trading.backtest import Backtest
from trading.events import OrderFilled
from trading.instruments import Instrument, Side
from trading.metrics import InventoryStats, QuotingStats, TimeWeightedTracker
from trading.portfolio import Portfolio

NS = 1_000_000_000
MARKOUT_HORIZONS_NS = (1 * NS, 10 * NS, 60 * NS)
HISTOGRAM_BINS = 10
PER_UNIT_PLACES = Decimal("1e-10")


@dataclass(frozen=True, slots=True)
class Top:
    """The market's best bid and ask (ticks) from ``ts`` on."""

    ts: int
    bid: int
    ask: int


@dataclass(frozen=True, slots=True)
class QuoteInterval:
    """One of our orders resting at ``price`` from ``start`` until ``end`` (ns; ``None``: still open)."""

    side: Side
    price: int
    start: int
    end: int | None


class QuoteSampler:
    """Time-weighted quoting and inventory statistics plus the average quoted spread and an
    inventory histogram (share of time per position bucket)."""

    def __init__(self) -> None:
        self.tracker = TimeWeightedTracker()
        self._last: int | None = None
        self._spread_state: int | None = None
        self._spread_time = 0
        self._spread_sum = 0
        self._position = 0
        self._positions: list[tuple[int, int]] = []  # (position, duration)

    def observe(
        self,
        ts: int,
        position: int,
        our_bid: int | None,
        our_ask: int | None,
        best_bid: int | None,
        best_ask: int | None,
    ) -> None:
        """Record the state at ``ts``; it is assumed to hold until the next observation."""
        last = self._last
        if last is not None and ts > last:
            dt = ts - last
            if self._spread_state is not None:
                self._spread_time += dt
                self._spread_sum += self._spread_state * dt
            self._positions.append((self._position, dt))
        if last is None or ts >= last:
            self._last = ts
        self._spread_state = our_ask - our_bid if our_bid is not None and our_ask is not None else None
        self._position = position
        self.tracker.observe(ts, position, our_bid, our_ask, best_bid, best_ask)

    def quoting(self) -> QuotingStats:
        return self.tracker.quoting()

    def inventory(self) -> InventoryStats:
        return self.tracker.inventory()

    def average_spread_ticks(self) -> float | None:
        """Our ask minus our bid, time-weighted over the time both sides were quoted."""
        return self._spread_sum / self._spread_time if self._spread_time else None

    def inventory_histogram(self, bins: int = HISTOGRAM_BINS) -> list[dict[str, float | int]]:
        """Share of the sampled time spent with the position in each of ``bins`` equal buckets
        between the smallest and the largest position (lots; ``high`` inclusive in the last)."""
        if not self._positions:
            return []
        low = min(p for p, _ in self._positions)
        high = max(p for p, _ in self._positions)
        total = sum(d for _, d in self._positions)
        if low == high:
            return [{"low": low, "high": high, "share": 1.0}]
        width = (high - low) / bins
        shares = [0] * bins
        for position, duration in self._positions:
            shares[min(bins - 1, int((position - low) / width))] += duration
        return [
            {"low": round(low + i * width), "high": round(low + (i + 1) * width), "share": shares[i] / total}
            for i in range(bins)
        ]


class AnalyticsBacktest(Backtest):
    """A :class:`trading.backtest.Backtest` that also samples quoted spread and inventory
    distribution at every timer (``self.sampler``)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.sampler = QuoteSampler()

    def _observe(self, ts: int) -> None:
        super()._observe(ts)
        ex = self.exchange
        self.sampler.observe(
            ts,
            self.engine.portfolio.position,
            ex.our_best(Side.BUY),
            ex.our_best(Side.SELL),
            ex.book.best_bid(),
            ex.book.best_ask(),
        )


def replay_pnl(
    instrument: Instrument,
    fills: Iterable[OrderFilled],
    tops: Iterable[Top],
    *,
    horizons_ns: Sequence[int] = MARKOUT_HORIZONS_NS,
    end_ns: int | None = None,
    initial_base: int = 0,
    initial_quote: int = 0,
) -> Portfolio:
    """Book ``fills`` and mark at the mids of ``tops`` in time order (a mid change and a fill at
    the same ns: the mark first, as the fill happened against that book). Markouts settle as
    later mids arrive; with ``end_ns`` the last mid is carried to that time."""
    portfolio = Portfolio(
        instrument, initial_base=initial_base, initial_quote=initial_quote, markout_horizons_ns=horizons_ns
    )
    timeline: list[tuple[int, int, object]] = [(t.ts, 0, t) for t in tops]
    timeline += [(f.ts, 1, f) for f in fills]
    timeline.sort(key=lambda item: (item[0], item[1]))
    last_mid2 = None
    for ts, kind, item in timeline:
        if kind == 0:
            last_mid2 = item.bid + item.ask
            portfolio.mark(ts, last_mid2)
        else:
            portfolio.on_fill(item)
    if end_ns is not None and last_mid2 is not None:
        portfolio.mark(end_ns, last_mid2)
    return portfolio


def sample_quoting(
    quotes: Sequence[QuoteInterval],
    tops: Sequence[Top],
    fills: Sequence[OrderFilled],
    *,
    start_ns: int,
    end_ns: int,
    step_ns: int = NS,
    initial_position: int = 0,
) -> QuoteSampler:
    """Sample every ``step_ns`` in ``[start_ns, end_ns]``: our best quotes (from the order
    lifetimes), the market top (latest snapshot at or before the sample) and our position
    (fills up to the sample)."""
    if step_ns <= 0 or end_ns < start_ns:
        raise ValueError(f"step_ns/start_ns/end_ns: {step_ns}/{start_ns}/{end_ns}; give step > 0 and start <= end")
    sampler = QuoteSampler()
    tops = sorted(tops, key=lambda t: t.ts)
    top_ts = [t.ts for t in tops]
    fills = sorted(fills, key=lambda f: f.ts)
    fill_ts = [f.ts for f in fills]
    cumulative = [initial_position]
    for f in fills:
        cumulative.append(cumulative[-1] + int(f.side) * f.qty)
    live = {Side.BUY: _LiveQuotes(quotes, Side.BUY), Side.SELL: _LiveQuotes(quotes, Side.SELL)}
    ts = start_ns
    while ts <= end_ns:
        i = bisect.bisect_right(top_ts, ts) - 1
        top = tops[i] if i >= 0 else None
        position = cumulative[bisect.bisect_right(fill_ts, ts)]
        sampler.observe(
            ts,
            position,
            live[Side.BUY].best_at(ts),
            live[Side.SELL].best_at(ts),
            top.bid if top else None,
            top.ask if top else None,
        )
        ts += step_ns
    return sampler


class _LiveQuotes:
    """Our resting prices on one side as time moves forward (a sweep over order lifetimes)."""

    def __init__(self, quotes: Sequence[QuoteInterval], side: Side) -> None:
        self.pending = sorted((q for q in quotes if q.side is side), key=lambda q: q.start)
        self.buy = side is Side.BUY
        self.next = 0
        self.prices = SortedList()
        self.ends: list[tuple[int, int]] = []  # heap of (end, price)

    def best_at(self, ts: int) -> int | None:
        while self.next < len(self.pending) and self.pending[self.next].start <= ts:
            q = self.pending[self.next]
            self.next += 1
            if q.end is None or q.end > ts:
                self.prices.add(q.price)
                if q.end is not None:
                    heapq.heappush(self.ends, (q.end, q.price))
        while self.ends and self.ends[0][0] <= ts:
            self.prices.remove(heapq.heappop(self.ends)[1])
        if not self.prices:
            return None
        return self.prices[-1] if self.buy else self.prices[0]


def order_to_trade_ratio(orders_placed: int, fills: int) -> float | None:
    """Orders placed per fill (``None`` without fills)."""
    return orders_placed / fills if fills else None


def report(
    instrument: Instrument,
    portfolio: Portfolio,
    sampler: QuoteSampler,
    *,
    orders_placed: int,
    total_pnl: int | None = None,
) -> dict:
    """The analytics as JSON-friendly values: money as decimal strings in quote currency,
    markouts per horizon (quote total and ticks per lot), ratios as floats, positions in base."""
    cash = instrument.cash
    tick = float(instrument.tick_size)
    markouts = {}
    for horizon, m in portfolio.markout_summary().items():
        markouts[f"{horizon // NS}s"] = {
            "quantity": str(instrument.quantity(m["lots"])),
            "total": str(cash(m["total"])),
            "per_unit": (
                str((cash(m["total"]) / instrument.quantity(m["lots"])).quantize(PER_UNIT_PLACES))
                if m["lots"]
                else None
            ),
            "avg_ticks": m["avg_ticks_per_lot"],
        }
    quoting = sampler.quoting()
    inventory = sampler.inventory()
    spread = sampler.average_spread_ticks()
    lot = instrument.lot_size
    return {
        "pnl": {
            "total": str(cash(portfolio.trading_pnl if total_pnl is None else total_pnl)),
            "spread_capture": str(cash(portfolio.spread_capture)),
            "inventory_pnl": str(cash(portfolio.inventory_pnl)),
            "fees": str(cash(portfolio.fees)),
            "realized": str(cash(portfolio.realized)),
            "unrealized": str(cash(portfolio.unrealized)),
        },
        "markouts": markouts,
        "fills": portfolio.fill_count,
        "volume": str(instrument.quantity(portfolio.volume_lots)),
        "orders_placed": orders_placed,
        "order_to_trade": order_to_trade_ratio(orders_placed, portfolio.fill_count),
        "quote_uptime": quoting.quote_uptime,
        "time_at_top": quoting.time_at_top,
        "bid_at_top": quoting.bid_at_top,
        "ask_at_top": quoting.ask_at_top,
        "avg_quoted_spread": None if spread is None else spread * tick,
        "avg_quoted_spread_bps": (
            None if spread is None or portfolio.mid2 is None else spread / (portfolio.mid2 / 2) * 10_000
        ),
        "inventory": {
            "mean": inventory.mean * float(lot),
            "std": inventory.std * float(lot),
            "min": str(instrument.quantity(inventory.min)),
            "max": str(instrument.quantity(inventory.max)),
            "time_weighted_mean": inventory.time_weighted_mean * float(lot),
            "histogram": [
                {
                    "low": str(instrument.quantity(b["low"])),
                    "high": str(instrument.quantity(b["high"])),
                    "share": b["share"],
                }
                for b in sampler.inventory_histogram()
            ],
        },
    }
