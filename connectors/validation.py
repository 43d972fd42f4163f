"""Market-data validation and feed statistics.

Turning ccxt payloads into events is :mod:`connectors.ccxt_normalize` (Binance's raw streams:
:mod:`connectors.binance_parser`).

:class:`FeedValidator` screens every normalized event before it reaches a book or a bot and
returns a short reason code for anything it refuses (``None`` when the event is fine). It
never raises: one bad message must not stop a feed loop.

Reject reasons (stable strings, counted in :class:`FeedStats` and shown in the UI):

``bad_price``      price missing, NaN, not an integer tick, zero or negative
``bad_size``       size missing, NaN, not an integer lot, negative (or zero where a size is required)
``crossed``        a snapshot or top of book with best bid >= best ask
``stale``          venue time older than ``max_staleness_ns`` at receipt
``outlier``        price jump far outside recent volatility
``sequence_gap``   update ids missing — the caller must resync from a snapshot
``duplicate``      a delta whose update ids were all seen already (replayed / out of order)
``unsupported``    not a market event this validator knows
``internal_error`` the check itself failed (logged by the caller; the message is dropped)
"""

from __future__ import annotations

import math
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from trading.events import BookDelta, BookSnapshot, Level, MarketEvent, TopOfBook, TradeTick
from trading.instruments import Instrument

__all__ = [
    "REJECT_REASONS",
    "FeedStats",
    "FeedValidator",
]

REJECT_REASONS = (
    "bad_price",
    "bad_size",
    "crossed",
    "stale",
    "outlier",
    "sequence_gap",
    "duplicate",
    "unsupported",
    "internal_error",
)


# ---------------------------------------------------------------------------------------------
# Statistics
# ---------------------------------------------------------------------------------------------
def _percentile(values: Sequence[int], q: float) -> int | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
    return ordered[index]


@dataclass
class FeedStats:
    """Counters and rolling latencies for one feed. Latencies are in nanoseconds."""

    window: int = 1000
    messages: int = 0
    accepted: int = 0
    rejects: Counter[str] = field(default_factory=Counter)
    reconnects: int = 0
    resyncs: int = 0
    exchange_to_receipt_ns: deque[int] = field(init=False)
    receipt_to_processed_ns: deque[int] = field(init=False)

    def __post_init__(self) -> None:
        self.exchange_to_receipt_ns = deque(maxlen=self.window)
        self.receipt_to_processed_ns = deque(maxlen=self.window)

    def record(self, reason: str | None) -> None:
        """Count one message and its outcome (``None`` = accepted)."""
        self.messages += 1
        if reason is None:
            self.accepted += 1
        else:
            self.rejects[reason] += 1

    def observe_latency(self, *, venue_ts: int, recv_ts: int, processed_ts: int | None = None) -> None:
        """Record exchange->receipt (when the venue sent a time) and receipt->processed latencies."""
        if venue_ts:
            self.exchange_to_receipt_ns.append(recv_ts - venue_ts)
        if processed_ts is not None:
            self.receipt_to_processed_ns.append(processed_ts - recv_ts)

    @property
    def rejected(self) -> int:
        """Messages refused, all reasons together."""
        return sum(self.rejects.values())

    def latency_percentiles(self) -> dict[str, int | None]:
        """p50/p99 of both latencies over the rolling window (``None`` when nothing recorded)."""
        return {
            "exchange_to_receipt_p50_ns": _percentile(self.exchange_to_receipt_ns, 0.50),
            "exchange_to_receipt_p99_ns": _percentile(self.exchange_to_receipt_ns, 0.99),
            "receipt_to_processed_p50_ns": _percentile(self.receipt_to_processed_ns, 0.50),
            "receipt_to_processed_p99_ns": _percentile(self.receipt_to_processed_ns, 0.99),
        }

    def as_dict(self) -> dict[str, object]:
        """A JSON-friendly summary for Redis, the API and the dashboard."""
        return {
            "messages": self.messages,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "rejects": dict(self.rejects),
            "reconnects": self.reconnects,
            "resyncs": self.resyncs,
            **self.latency_percentiles(),
        }


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------
_INT_ONLY = {int}
_COUNT_MAX = 2**63 - 1  # ticks and lots are int64 downstream (Redis scripts, bigint columns)


def _levels_reason(levels: Sequence[Level], *, allow_zero: bool) -> str | None:
    """Reject reason of the first bad level in order, or ``None`` when every level is fine.

    The common case (every level an ``(int, int)`` pair, prices > 0, sizes >= 0) is proven with
    C-level passes (``zip``, ``map``, ``min``) instead of a Python loop per level; anything
    else goes through the per-level loop, which finds the first bad level's reason.
    """
    if not levels:
        return None
    try:
        prices, qtys = zip(*levels, strict=True)  # every level is exactly a pair
        well_formed = True
    except (TypeError, ValueError):
        well_formed = False
    if (
        well_formed
        and {*map(type, prices), *map(type, qtys)} == _INT_ONLY
        and min(prices) > 0
        and max(prices) <= _COUNT_MAX
        and (min(qtys) > 0 or (allow_zero and min(qtys) == 0))
        and max(qtys) <= _COUNT_MAX
    ):
        return None
    return _first_bad_level(levels, allow_zero=allow_zero)


def _first_bad_level(levels: Sequence[Level], *, allow_zero: bool) -> str | None:
    for level in levels:
        p, q = level
        if type(p) is not int or not 0 < p <= _COUNT_MAX:
            return "bad_price"
        if type(q) is not int or not 0 <= q <= _COUNT_MAX or (q == 0 and not allow_zero):
            return "bad_size"
    return None


class FeedValidator:
    """Screen market events for one instrument; see the module docstring for reason codes.

    ``outlier_sigmas``: a price move larger than this many standard deviations of the recent
    log-returns (over ``window`` accepted prices) is an outlier, but never a move smaller than
    ``outlier_floor`` (relative, default 0.5 %). ``outlier_confirmations`` consecutive outliers
    that agree with each other are accepted as a real move (the market did jump). Volatility
    is measured over price *changes*: a print at the last accepted price is accepted at once
    and does not enter the window.
    """

    def __init__(
        self,
        instrument: Instrument,
        *,
        max_staleness_ns: int,
        outlier_sigmas: float = 10.0,
        window: int = 500,
        outlier_floor: float = 0.005,
        outlier_confirmations: int = 3,
        stats: FeedStats | None = None,
    ) -> None:
        if max_staleness_ns <= 0:
            raise ValueError(f"max_staleness_ns: {max_staleness_ns!r} must be a positive number of nanoseconds")
        if outlier_sigmas <= 0:
            raise ValueError(f"outlier_sigmas: {outlier_sigmas!r} must be positive")
        if window < 2:
            raise ValueError(f"window: {window!r} must be at least 2 prices")
        self.instrument = instrument
        self.max_staleness_ns = max_staleness_ns
        self.outlier_sigmas = outlier_sigmas
        self.outlier_floor = outlier_floor
        self.outlier_confirmations = outlier_confirmations
        self.stats = stats if stats is not None else FeedStats()
        self._returns: deque[float] = deque(maxlen=window)
        self._sum = 0.0
        self._sum_sq = 0.0
        self._last_price: float | None = None
        self._pending: list[float] = []  # consecutive outliers awaiting confirmation
        self._sequence: int | None = None  # last accepted update id; None until a snapshot
        self._fresh = False

    def reset(self) -> None:
        """Forget sequence and price history (after a reconnect or a resync)."""
        self._returns.clear()
        self._sum = self._sum_sq = 0.0
        self._last_price = None
        self._pending.clear()
        self._sequence = None
        self._fresh = False

    def check(self, event: MarketEvent, recv_ts: int) -> str | None:
        """Return a reject reason for ``event`` received at ``recv_ts`` (ns), or ``None`` if fine.

        Never raises; the outcome is also counted in :attr:`stats`.
        """
        try:
            kind = type(event)
            if kind is TopOfBook:  # most frequent first: ~3 of 4 messages on Binance
                # _check_top inlined for its common outcome: fresh, well-formed, mid unchanged
                bid = event.bid_price  # type: ignore[union-attr]
                ask = event.ask_price  # type: ignore[union-attr]
                venue_ts = event.venue_ts  # type: ignore[union-attr]
                if (
                    (not venue_ts or recv_ts - venue_ts <= self.max_staleness_ns)
                    and type(bid) is int
                    and type(ask) is int
                    and 0 < bid < ask
                    and (bid + ask) / 2 == self._last_price
                    and type(event.bid_qty) is int  # type: ignore[union-attr]
                    and type(event.ask_qty) is int  # type: ignore[union-attr]
                    and 0 < event.bid_qty <= _COUNT_MAX  # type: ignore[union-attr]
                    and 0 < event.ask_qty <= _COUNT_MAX  # type: ignore[union-attr]
                ):
                    reason = None
                else:
                    reason = self._check_top(event, recv_ts)  # type: ignore[arg-type]
            elif kind is TradeTick:
                reason = self._check_trade(event, recv_ts)  # type: ignore[arg-type]
            else:
                reason = self._check(event, recv_ts)
        except Exception:
            reason = "internal_error"
        stats = self.stats
        if reason is None and type(stats) is FeedStats:  # FeedStats.record, inlined for the hot path
            stats.messages += 1
            stats.accepted += 1
        else:
            stats.record(reason)
        return reason

    # -- per event type ---------------------------------------------------------------------
    def _check(self, event: MarketEvent, recv_ts: int) -> str | None:
        kind = type(event)
        if kind is TopOfBook:  # most frequent first: ~3 of 4 messages on Binance
            return self._check_top(event, recv_ts)  # type: ignore[arg-type]
        if kind is TradeTick:
            return self._check_trade(event, recv_ts)  # type: ignore[arg-type]
        if kind is BookDelta:
            return self._check_delta(event, recv_ts)  # type: ignore[arg-type]
        if kind is BookSnapshot:
            return self._check_snapshot(event, recv_ts)  # type: ignore[arg-type]
        return "unsupported"

    def _check_delta(self, delta: BookDelta, recv_ts: int) -> str | None:
        if delta.venue_ts and recv_ts - delta.venue_ts > self.max_staleness_ns:
            return "stale"
        reason = _levels_reason(delta.bids, allow_zero=True) or _levels_reason(delta.asks, allow_zero=True)
        if reason:
            return reason
        last = delta.last_sequence
        if not (last or delta.first_sequence or delta.prev_sequence):
            return None
        seq = self._sequence
        if seq is None:
            return "sequence_gap"  # no snapshot yet: nothing to apply it to
        if last <= seq:
            return "duplicate"
        if self._fresh:
            ok = delta.first_sequence <= seq + 1
        elif delta.prev_sequence:
            ok = delta.prev_sequence == seq
        else:
            ok = delta.first_sequence == seq + 1
        if not ok:
            self._sequence = None  # everything until the next snapshot is unusable
            return "sequence_gap"
        self._sequence = last
        self._fresh = False
        return None

    def _check_snapshot(self, snap: BookSnapshot, recv_ts: int) -> str | None:
        if snap.venue_ts and recv_ts - snap.venue_ts > self.max_staleness_ns:
            return "stale"
        reason = _levels_reason(snap.bids, allow_zero=False) or _levels_reason(snap.asks, allow_zero=False)
        if reason:
            return reason
        if snap.bids and snap.asks:
            best_bid = max(p for p, _ in snap.bids)
            best_ask = min(p for p, _ in snap.asks)
            if best_bid >= best_ask:
                return "crossed"
            reason = self._check_price((best_bid + best_ask) / 2)
            if reason:
                return reason
        self._sequence = snap.sequence
        self._fresh = True
        return None

    def _check_top(self, top: TopOfBook, recv_ts: int) -> str | None:
        if top.venue_ts and recv_ts - top.venue_ts > self.max_staleness_ns:
            return "stale"
        bid = top.bid_price
        ask = top.ask_price
        if not (type(bid) is int and type(ask) is int and 0 < bid <= _COUNT_MAX and 0 < ask <= _COUNT_MAX):
            return "bad_price"
        bq = top.bid_qty
        aq = top.ask_qty
        if not (type(bq) is int and type(aq) is int and 0 < bq <= _COUNT_MAX and 0 < aq <= _COUNT_MAX):
            return "bad_size"
        if bid >= ask:
            return "crossed"
        mid = (bid + ask) / 2
        if mid == self._last_price:
            return None
        return self._check_price(mid)

    def _check_trade(self, trade: TradeTick, recv_ts: int) -> str | None:
        if trade.venue_ts and recv_ts - trade.venue_ts > self.max_staleness_ns:
            return "stale"
        price = trade.price
        if not (type(price) is int and 0 < price <= _COUNT_MAX):
            return "bad_price"
        qty = trade.qty
        if not (type(qty) is int and 0 < qty <= _COUNT_MAX):
            return "bad_size"
        if price == self._last_price:
            return None
        return self._check_price(price)

    # -- outliers ---------------------------------------------------------------------------
    def _check_price(self, price: float) -> str | None:
        last = self._last_price
        if last is None:
            self._last_price = price
            return None
        r = math.log(price / last)
        n = len(self._returns)
        threshold = self.outlier_floor
        if n >= 20:
            mean = self._sum / n
            var = max(self._sum_sq / n - mean * mean, 0.0)
            threshold = max(threshold, self.outlier_sigmas * math.sqrt(var))
        if abs(r) > threshold:
            pending = self._pending
            if pending and abs(math.log(price / pending[-1])) > threshold:
                pending.clear()  # outliers that disagree with each other confirm nothing
            pending.append(price)
            if len(pending) < self.outlier_confirmations:
                return "outlier"
            # the market really moved: restart volatility from the new level
            self._returns.clear()
            self._sum = self._sum_sq = 0.0
            self._last_price = price
            pending.clear()
            return None
        self._pending.clear()
        returns = self._returns
        if len(returns) == returns.maxlen:
            old = returns[0]
            self._sum -= old
            self._sum_sq -= old * old
        returns.append(r)
        self._sum += r
        self._sum_sq += r * r
        self._last_price = price
        return None
