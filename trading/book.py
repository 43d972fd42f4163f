"""L2 order book in integer ticks and lots, with venue sequence checking.

Each side is a ``dict`` price -> quantity plus a sorted ``list`` of its best prices kept with
``bisect``. Both lists keep their best price at the *end* (bids ascending; asks store the
negated price ascending), so the churn near the touch moves only a few list slots.
Quantity-only changes of an existing level touch just the dict. Best prices are therefore
O(1), ``top(n)`` is a slice, and a level insert or removal costs one C-level ``bisect`` plus
a short ``memmove``.

Without a ``depth_limit`` the list is a window: it holds every price at or better than its
*floor* and nothing worse, so a level appearing or disappearing behind the floor (most of a
venue's diffs land tens to thousands of levels deep) touches only the dict. The window is cut
back to its best ``_WINDOW_KEEP`` prices when it grows past ``_WINDOW_HIGH`` and refilled from
the dict when it shrinks below ``_WINDOW_LOW``; a query reaching behind the floor (``top(n)``
with a large ``n``, ``levels``, ``depth_within``, ``cost_to_trade``, ``snapshot``) sorts the
whole side first.

Sequence rules follow Binance (and fit any venue with monotonic update ids):

* after a snapshot with id ``S`` the first delta must cover ``S + 1``
  (``first_sequence <= S + 1 <= last_sequence``), or, on a venue that sends ``prev_sequence``,
  chain on ``S`` itself (Binance futures: the event whose ``u`` equals ``S`` is already in the
  snapshot and the next one has ``pu == S`` with a ``U`` far past ``S + 1``);
* afterwards a delta with ``prev_sequence`` (Binance futures ``pu``) must chain on the
  previous delta's ``last_sequence``; one without must start at ``last_sequence + 1``;
* a delta entirely at or before the book's sequence is stale and is ignored;
* anything else raises :class:`SequenceGap` and the book stays unsynced until the next snapshot.

A delta with all sequence fields 0 (a venue without update ids) is applied as it comes.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable
from heapq import nlargest, nsmallest

from trading.events import BookDelta, BookSnapshot, Level
from trading.instruments import Side

__all__ = ["CrossedBook", "OrderBook", "SequenceGap"]

_NO_FLOOR = -(1 << 62)  # below every price (bids) and every negated price (asks): the list is whole
_WINDOW_KEEP = 64
_WINDOW_HIGH = 160
_WINDOW_LOW = 16


class SequenceGap(Exception):
    """A delta does not follow the book's sequence; the caller must resync from a snapshot."""

    def __init__(self, message: str, *, expected: int = 0, received: int = 0) -> None:
        super().__init__(message)
        self.expected = expected
        self.received = received


class CrossedBook(Exception):
    """Best bid at or above best ask: the book (or the feed that built it) is inconsistent."""


class OrderBook:
    """An L2 book for one instrument. Prices are ticks, quantities lots.

    ``depth_limit`` keeps at most that many levels per side (the rest are trimmed, in batches,
    from the far end); ``None`` keeps everything.
    """

    __slots__ = (
        "_ask_floor",
        "_ask_negpx",
        "_asks",
        "_bid_floor",
        "_bid_px",
        "_bids",
        "_fresh",
        "_synced",
        "_window",
        "depth_limit",
        "sequence",
    )

    def __init__(self, depth_limit: int | None = None) -> None:
        if depth_limit is not None and depth_limit <= 0:
            raise ValueError(f"depth_limit: {depth_limit!r} must be a positive number of levels or None")
        self._bids: dict[int, int] = {}
        self._asks: dict[int, int] = {}
        self._bid_px: list[int] = []  # ascending; best bid last
        self._ask_negpx: list[int] = []  # negated ask prices ascending; best ask last
        # Every bid price >= _bid_floor is in _bid_px (and no other); likewise every negated
        # ask >= _ask_floor is in _ask_negpx. A book with a depth limit keeps whole lists.
        self._bid_floor = _NO_FLOOR
        self._ask_floor = _NO_FLOOR
        self._window = depth_limit is None
        self.sequence = 0
        self.depth_limit = depth_limit
        self._synced = False  # a snapshot has been applied and no gap seen since
        self._fresh = False  # a snapshot was applied and no delta yet

    # ---------------------------------------------------------------------------------------
    # Updates
    # ---------------------------------------------------------------------------------------
    def clear(self) -> None:
        """Empty both sides and forget the sequence."""
        self._bids.clear()
        self._asks.clear()
        self._bid_px.clear()
        self._ask_negpx.clear()
        self._bid_floor = _NO_FLOOR
        self._ask_floor = _NO_FLOOR
        self.sequence = 0
        self._synced = False
        self._fresh = False

    def apply_snapshot(self, snapshot: BookSnapshot) -> None:
        """Replace the whole book with ``snapshot`` (levels with quantity 0 are skipped)."""
        self.clear()
        self.apply_levels(Side.BUY, snapshot.bids)
        self.apply_levels(Side.SELL, snapshot.asks)
        self.sequence = snapshot.sequence
        self._synced = True
        self._fresh = True

    @property
    def is_synced(self) -> bool:
        """Whether the book holds a snapshot and every delta since it chained correctly."""
        return self._synced

    def apply_delta(self, delta: BookDelta) -> bool:
        """Apply ``delta`` if it follows the book's sequence.

        Return ``True`` when applied, ``False`` when it is stale (entirely at or before the
        book's sequence). Raise :class:`SequenceGap` when updates are missing.
        """
        last = delta.last_sequence
        if last or delta.first_sequence or delta.prev_sequence:
            seq = self.sequence
            if not self._synced:
                raise SequenceGap(
                    f"delta {delta.first_sequence}..{last} arrived before a snapshot; resync from a snapshot",
                    expected=seq + 1,
                    received=delta.first_sequence,
                )
            if last <= seq:
                return False
            if self._fresh:
                # The first delta after a snapshot covers ``S + 1``, or (futures) chains on the
                # snapshot id through ``pu``: futures ids are not contiguous, and the event whose
                # ``u`` equals ``S`` was already in the snapshot (ignored above as stale).
                chains = delta.prev_sequence != 0 and delta.prev_sequence == seq
                if delta.first_sequence > seq + 1 and not chains:
                    self._synced = False
                    raise SequenceGap(
                        f"first delta after snapshot {seq} starts at {delta.first_sequence}; it must cover {seq + 1}",
                        expected=seq + 1,
                        received=delta.first_sequence,
                    )
            elif delta.prev_sequence:
                if delta.prev_sequence != seq:
                    self._synced = False
                    raise SequenceGap(
                        f"delta prev_sequence {delta.prev_sequence} does not chain on {seq}",
                        expected=seq,
                        received=delta.prev_sequence,
                    )
            elif delta.first_sequence != seq + 1:
                self._synced = False
                raise SequenceGap(
                    f"delta starts at {delta.first_sequence}; expected {seq + 1}",
                    expected=seq + 1,
                    received=delta.first_sequence,
                )
            self.sequence = last
            self._fresh = False
        if delta.bids:
            self._apply_bids(delta.bids)
        if delta.asks:
            self._apply_asks(delta.asks)
        return True

    def apply_levels(self, side: Side, levels: Iterable[Level]) -> None:
        """Set each ``(price, qty)`` on ``side``; quantity 0 removes the level. No sequence check."""
        if side is Side.BUY or side == 1:
            self._apply_bids(levels)
        else:
            self._apply_asks(levels)

    def set_level(self, side: Side, price: int, qty: int) -> None:
        """Set one level; quantity 0 removes it."""
        self.apply_levels(side, ((price, qty),))

    def _apply_bids(self, levels: Iterable[Level]) -> None:
        book = self._bids
        px = self._bid_px
        floor = self._bid_floor
        try:
            for p, q in levels:
                if q > 0:
                    if p not in book and p >= floor:
                        insort(px, p)
                    book[p] = q
                elif q:
                    raise ValueError(f"qty: {q!r} at bid price {p} is negative; give 0 to remove a level")
                elif book.pop(p, None) is not None and p >= floor:  # one lookup for a removal (or a no-op)
                    del px[bisect_left(px, p)]
        finally:
            n = len(px)
            if self._window:
                if n > _WINDOW_HIGH:
                    cut = n - _WINDOW_KEEP
                    self._bid_floor = px[cut]
                    del px[:cut]
                elif n < _WINDOW_LOW and len(book) > n:
                    self._refill_bids()
            else:
                limit = self.depth_limit
                if limit is not None and n > limit + (limit >> 1) + 8:
                    cut = n - limit
                    for p in px[:cut]:
                        del book[p]
                    del px[:cut]

    def _apply_asks(self, levels: Iterable[Level]) -> None:
        book = self._asks
        neg = self._ask_negpx
        floor = self._ask_floor
        try:
            for p, q in levels:
                if q > 0:
                    if p not in book and -p >= floor:
                        insort(neg, -p)
                    book[p] = q
                elif q:
                    raise ValueError(f"qty: {q!r} at ask price {p} is negative; give 0 to remove a level")
                elif book.pop(p, None) is not None and -p >= floor:
                    del neg[bisect_left(neg, -p)]
        finally:
            n = len(neg)
            if self._window:
                if n > _WINDOW_HIGH:
                    cut = n - _WINDOW_KEEP
                    self._ask_floor = neg[cut]
                    del neg[:cut]
                elif n < _WINDOW_LOW and len(book) > n:
                    self._refill_asks()
            else:
                limit = self.depth_limit
                if limit is not None and n > limit + (limit >> 1) + 8:
                    cut = n - limit
                    for k in neg[:cut]:
                        del book[-k]
                    del neg[:cut]

    def _refill_bids(self) -> None:
        """Load the best ``_WINDOW_KEEP`` bid prices from the dict (the window ran low)."""
        book = self._bids
        best = nlargest(_WINDOW_KEEP, book)
        best.reverse()
        self._bid_px[:] = best
        self._bid_floor = best[0] if len(book) > len(best) else _NO_FLOOR

    def _refill_asks(self) -> None:
        book = self._asks
        best = [-p for p in nsmallest(_WINDOW_KEEP, book)]
        best.reverse()
        self._ask_negpx[:] = best
        self._ask_floor = best[0] if len(book) > len(best) else _NO_FLOOR

    def _whole_bids(self) -> list[int]:
        """Every bid price ascending (sorts the side when the window leaves some out)."""
        px = self._bid_px
        if len(px) != len(self._bids):
            px[:] = sorted(self._bids)
            self._bid_floor = _NO_FLOOR
        return px

    def _whole_asks(self) -> list[int]:
        """Every negated ask price ascending."""
        neg = self._ask_negpx
        if len(neg) != len(self._asks):
            neg[:] = sorted([-p for p in self._asks])
            self._ask_floor = _NO_FLOOR
        return neg

    # ---------------------------------------------------------------------------------------
    # Queries
    # ---------------------------------------------------------------------------------------
    def best_bid(self) -> int | None:
        """Best bid price in ticks, or ``None`` when the bid side is empty."""
        px = self._bid_px
        return px[-1] if px else None

    def best_ask(self) -> int | None:
        """Best ask price in ticks, or ``None`` when the ask side is empty."""
        neg = self._ask_negpx
        return -neg[-1] if neg else None

    def best_bid_qty(self) -> int:
        """Lots at the best bid (0 when empty)."""
        px = self._bid_px
        return self._bids[px[-1]] if px else 0

    def best_ask_qty(self) -> int:
        """Lots at the best ask (0 when empty)."""
        neg = self._ask_negpx
        return self._asks[-neg[-1]] if neg else 0

    def spread(self) -> int | None:
        """Best ask minus best bid in ticks, or ``None`` when a side is empty."""
        if not self._bid_px or not self._ask_negpx:
            return None
        return -self._ask_negpx[-1] - self._bid_px[-1]

    def mid(self) -> float | None:
        """Mid price in ticks (a float: it may fall between ticks)."""
        if not self._bid_px or not self._ask_negpx:
            return None
        return (self._bid_px[-1] - self._ask_negpx[-1]) / 2

    def microprice(self) -> float | None:
        """Size-weighted mid in ticks: leans toward the side with less resting size."""
        if not self._bid_px or not self._ask_negpx:
            return None
        bid = self._bid_px[-1]
        ask = -self._ask_negpx[-1]
        bq = self._bids[bid]
        aq = self._asks[ask]
        return (bid * aq + ask * bq) / (bq + aq)

    def is_crossed(self) -> bool:
        """Whether best bid >= best ask (crossed or locked)."""
        return bool(self._bid_px and self._ask_negpx and self._bid_px[-1] >= -self._ask_negpx[-1])

    def check_not_crossed(self) -> None:
        """Raise :class:`CrossedBook` when the book is crossed or locked."""
        if self.is_crossed():
            raise CrossedBook(f"best bid {self.best_bid()} >= best ask {self.best_ask()}")

    def qty_at(self, side: Side, price: int) -> int:
        """Lots resting at ``price`` on ``side`` (0 when there is no level)."""
        return (self._bids if side is Side.BUY else self._asks).get(price, 0)

    def level_count(self, side: Side) -> int:
        """Number of price levels on ``side``."""
        return len(self._bids if side is Side.BUY else self._asks)

    def top(self, n: int) -> tuple[list[Level], list[Level]]:
        """The best ``n`` levels per side, best first: ``(bids, asks)``."""
        if n <= 0:
            return [], []
        bids = self._bids
        asks = self._asks
        px = self._bid_px if n <= len(self._bid_px) else self._whole_bids()
        neg = self._ask_negpx if n <= len(self._ask_negpx) else self._whole_asks()
        return (
            [(p, bids[p]) for p in reversed(px[-n:])],
            [(-k, asks[-k]) for k in reversed(neg[-n:])],
        )

    def levels(self, side: Side) -> list[Level]:
        """Every level on ``side``, best first."""
        return self.top(len(self._bids) if side is Side.BUY else len(self._asks))[0 if side is Side.BUY else 1]

    def depth_within(self, pct: float) -> tuple[int, int]:
        """Lots resting within ``pct`` percent of mid: ``(bid lots, ask lots)``.

        ``pct`` is in percent: ``0.5`` counts bids at or above ``mid * 0.995`` and asks at or
        below ``mid * 1.005``. Empty sides give 0.
        """
        mid = self.mid()
        if mid is None:
            return 0, 0
        band = mid * pct / 100.0
        lo = mid - band
        hi = mid + band
        px = self._bid_px if lo >= self._bid_floor else self._whole_bids()
        i = bisect_left(px, lo)  # first bid price >= lo
        bids = self._bids
        bid_lots = sum(bids[p] for p in px[i:])
        neg = self._ask_negpx if -hi >= self._ask_floor else self._whole_asks()
        j = bisect_left(neg, -hi)  # first negated ask >= -hi, i.e. ask <= hi
        asks = self._asks
        ask_lots = sum(asks[-k] for k in neg[j:])
        return bid_lots, ask_lots

    def cost_to_trade(self, side: Side, qty: int) -> tuple[int, int]:
        """Walk the book as a taker of ``qty`` lots on ``side`` (BUY lifts asks, SELL hits bids).

        Return ``(lots filled, sum of price * lots)``; lots filled is below ``qty`` when the
        book runs out.
        """
        if qty <= 0:
            return 0, 0
        if side is Side.BUY:
            filled, cost = _walk(self._asks, self._ask_negpx, -1, qty)
            if filled < qty and len(self._ask_negpx) != len(self._asks):
                filled, cost = _walk(self._asks, self._whole_asks(), -1, qty)  # deeper than the window
        else:
            filled, cost = _walk(self._bids, self._bid_px, 1, qty)
            if filled < qty and len(self._bid_px) != len(self._bids):
                filled, cost = _walk(self._bids, self._whole_bids(), 1, qty)
        return filled, cost

    def imbalance(self, levels: int = 5) -> float:
        """(bid lots - ask lots) / (bid lots + ask lots) over the best ``levels`` per side, in [-1, 1]."""
        bids = self._bids
        asks = self._asks
        px = self._bid_px if levels <= len(self._bid_px) else self._whole_bids()
        neg = self._ask_negpx if levels <= len(self._ask_negpx) else self._whole_asks()
        bq = sum(bids[p] for p in px[-levels:]) if levels > 0 else 0
        aq = sum(asks[-k] for k in neg[-levels:]) if levels > 0 else 0
        total = bq + aq
        return (bq - aq) / total if total else 0.0

    def snapshot(self, ts: int, depth: int | None = None) -> BookSnapshot:
        """The book as a :class:`BookSnapshot` (best first), optionally cut to ``depth`` levels."""
        n = depth if depth is not None else max(len(self._bids), len(self._asks))
        bids, asks = self.top(n)
        return BookSnapshot(ts=ts, bids=tuple(bids), asks=tuple(asks), sequence=self.sequence)

    def __len__(self) -> int:
        return len(self._bids) + len(self._asks)

    def __repr__(self) -> str:
        return (
            f"OrderBook(bid={self.best_bid()}x{self.best_bid_qty()}, ask={self.best_ask()}x{self.best_ask_qty()}, "
            f"levels={len(self._bids)}/{len(self._asks)}, sequence={self.sequence})"
        )


def _walk(book: dict[int, int], keys: list[int], sign: int, qty: int) -> tuple[int, int]:
    """Take up to ``qty`` lots from the best level down; ``keys`` are prices times ``sign``."""
    filled = 0
    cost = 0
    remaining = qty
    for k in reversed(keys):
        price = k * sign
        take = min(book[price], remaining)
        filled += take
        cost += take * price
        remaining -= take
        if not remaining:
            break
    return filled, cost
