"""L2 order book in integer ticks and lots, with venue sequence checking.

Each side is a ``dict`` price -> quantity plus a sorted ``list`` of its prices kept with
``bisect``. Both lists keep their best price at the *end* (bids ascending; asks store the
negated price ascending), so the churn near the touch — where nearly all updates land —
moves only a few list slots. Quantity-only changes of an existing level touch just the dict.
Best prices are therefore O(1), ``top(n)`` is a slice, and a level insert or removal costs
one C-level ``bisect`` plus a short ``memmove``.

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

from trading.events import BookDelta, BookSnapshot, Level
from trading.instruments import Side

__all__ = ["CrossedBook", "OrderBook", "SequenceGap"]


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
        "_ask_negpx",
        "_asks",
        "_bid_px",
        "_bids",
        "_fresh",
        "_synced",
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
        for p, q in levels:
            if q > 0:
                if p not in book:
                    insort(px, p)
                book[p] = q
            elif q:
                raise ValueError(f"qty: {q!r} at bid price {p} is negative; give 0 to remove a level")
            elif book.pop(p, None) is not None:  # one lookup for a removal (or a no-op)
                del px[bisect_left(px, p)]
        limit = self.depth_limit
        if limit is not None and len(px) > limit + (limit >> 1) + 8:
            cut = len(px) - limit
            for p in px[:cut]:
                del book[p]
            del px[:cut]

    def _apply_asks(self, levels: Iterable[Level]) -> None:
        book = self._asks
        neg = self._ask_negpx
        for p, q in levels:
            if q > 0:
                if p not in book:
                    insort(neg, -p)
                book[p] = q
            elif q:
                raise ValueError(f"qty: {q!r} at ask price {p} is negative; give 0 to remove a level")
            elif book.pop(p, None) is not None:
                del neg[bisect_left(neg, -p)]
        limit = self.depth_limit
        if limit is not None and len(neg) > limit + (limit >> 1) + 8:
            cut = len(neg) - limit
            for k in neg[:cut]:
                del book[-k]
            del neg[:cut]

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
        return (
            [(p, bids[p]) for p in reversed(self._bid_px[-n:])],
            [(-k, asks[-k]) for k in reversed(self._ask_negpx[-n:])],
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
        px = self._bid_px
        i = bisect_left(px, lo)  # first bid price >= lo
        bids = self._bids
        bid_lots = sum(bids[p] for p in px[i:])
        neg = self._ask_negpx
        j = bisect_left(neg, -hi)  # first negated ask >= -hi, i.e. ask <= hi
        asks = self._asks
        ask_lots = sum(asks[-k] for k in neg[j:])
        return bid_lots, ask_lots

    def cost_to_trade(self, side: Side, qty: int) -> tuple[int, int]:
        """Walk the book as a taker of ``qty`` lots on ``side`` (BUY lifts asks, SELL hits bids).

        Return ``(lots filled, sum of price * lots)``; lots filled is below ``qty`` when the
        book runs out.
        """
        filled = 0
        cost = 0
        remaining = qty
        if remaining <= 0:
            return 0, 0
        if side is Side.BUY:
            asks = self._asks
            for k in reversed(self._ask_negpx):
                price = -k
                take = min(asks[price], remaining)
                filled += take
                cost += take * price
                remaining -= take
                if not remaining:
                    break
        else:
            bids = self._bids
            for price in reversed(self._bid_px):
                take = min(bids[price], remaining)
                filled += take
                cost += take * price
                remaining -= take
                if not remaining:
                    break
        return filled, cost

    def imbalance(self, levels: int = 5) -> float:
        """(bid lots - ask lots) / (bid lots + ask lots) over the best ``levels`` per side, in [-1, 1]."""
        bids = self._bids
        asks = self._asks
        bq = sum(bids[p] for p in self._bid_px[-levels:]) if levels > 0 else 0
        aq = sum(asks[-k] for k in self._ask_negpx[-levels:]) if levels > 0 else 0
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
