"""Client order ids: deterministic, unique, venue-safe ``<prefix>-<sequence in base 36>``."""

from __future__ import annotations

import re

__all__ = ["MAX_CLIENT_ORDER_ID_LENGTH", "ClientOrderIds", "to_base36"]

MAX_CLIENT_ORDER_ID_LENGTH = 32
_PREFIX_RE = re.compile(r"^[A-Za-z0-9_-]+$")
_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"


_BASE36_PAIRS = [a + b for a in _BASE36 for b in _BASE36]


def to_base36(n: int) -> str:
    """Encode a non-negative integer in lower-case base 36."""
    if n < 0:
        raise ValueError(f"n: {n} is negative; base-36 sequence numbers start at 0")
    if n < 36:
        return _BASE36[n]
    pairs = _BASE36_PAIRS
    parts = []
    while n >= 1296:
        n, r = divmod(n, 1296)
        parts.append(pairs[r])
    parts.append(pairs[n] if n >= 36 else _BASE36[n])
    parts.reverse()
    return "".join(parts)


class ClientOrderIds:
    """Deterministic, unique client order ids ``<prefix>-<sequence in base 36>``.

    Ids are at most 32 characters of ``[A-Za-z0-9_-]`` (valid on Binance, which allows 36, and
    on every ccxt venue we target). Persist :attr:`sequence` and pass it back as ``start`` to
    resume after a restart without reusing an id.
    """

    __slots__ = ("_head", "_high", "_high_text", "_seq", "prefix")

    def __init__(self, prefix: str, start: int = 0) -> None:
        if not isinstance(prefix, str) or not _PREFIX_RE.match(prefix):
            raise ValueError(f"prefix: {prefix!r} must be 1+ characters of A-Z, a-z, 0-9, '_' or '-'")
        # Leave room for the dash and at least 8 base-36 digits (2.8e12 orders).
        if len(prefix) > MAX_CLIENT_ORDER_ID_LENGTH - 9:
            raise ValueError(
                f"prefix: {prefix!r} is {len(prefix)} characters; at most "
                f"{MAX_CLIENT_ORDER_ID_LENGTH - 9} are accepted so ids stay within "
                f"{MAX_CLIENT_ORDER_ID_LENGTH} characters"
            )
        if not isinstance(start, int) or start < 0:
            raise ValueError(f"start: {start!r} must be a non-negative integer sequence number")
        self.prefix = prefix
        self._seq = start
        self._head = prefix + "-"
        # to_base36(n) == to_base36(n // 1296) + two digits of n % 1296 for n >= 1296: the id's
        # text up to its last two digits changes once every 1296 ids and is kept here.
        self._high = -1
        self._high_text = ""

    @property
    def sequence(self) -> int:
        """The next sequence number to be used (persist this to resume)."""
        return self._seq

    def next(self) -> str:
        """Return a fresh id and advance the sequence."""
        seq = self._seq
        if seq >= 1296:
            high, low = divmod(seq, 1296)
            if high != self._high:
                self._high = high
                self._high_text = self._head + to_base36(high)
            cid = self._high_text + _BASE36_PAIRS[low]
        else:
            cid = self._head + to_base36(seq)
        self._seq = seq + 1
        if len(cid) > MAX_CLIENT_ORDER_ID_LENGTH:  # pragma: no cover - needs 2.8e12 orders
            raise OverflowError(f"client order id {cid!r} exceeds {MAX_CLIENT_ORDER_ID_LENGTH} characters")
        return cid

    def skip_past(self, client_order_id: str) -> None:
        """Never issue ``client_order_id`` nor any id before it: an id of this prefix seen
        elsewhere (an order the venue holds whose row the sequence was resumed from lacks)."""
        if not client_order_id.startswith(self._head):
            return
        try:
            seq = int(client_order_id[len(self._head) :], 36)
        except ValueError:
            return
        if seq >= self._seq:
            self._seq = seq + 1

    def owns(self, client_order_id: str) -> bool:
        """Whether an id was made with this prefix (for orphan-order reconciliation)."""
        return client_order_id.startswith(self._head)
