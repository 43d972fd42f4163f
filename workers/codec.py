"""Compact encoding of market events on the Redis stream between feeds and bot loops.

Prices and sizes are integer ticks and lots of the market's instrument (the feed converts
once), so bots decode with no decimal arithmetic: ``["S", ts, [p, q, p, q, ...], [...]]`` for a
top-N book snapshot and ``["T", ts, price, qty, side, trade_id]`` for a public trade.
"""

from __future__ import annotations

import json

from trading.events import BookSnapshot, TradeTick
from trading.instruments import Side

SNAPSHOT_PREFIX = b'["S",'  # how every encoded book snapshot starts (the host skips superseded ones)


def encode_snapshot(ts: int, bids: list[tuple[int, int]], asks: list[tuple[int, int]]) -> bytes:
    flat_b = [x for level in bids for x in level]
    flat_a = [x for level in asks for x in level]
    return json.dumps(["S", ts, flat_b, flat_a], separators=(",", ":")).encode()


def encode_trade(event: TradeTick) -> bytes:
    return json.dumps(
        ["T", event.ts, event.price, event.qty, int(event.aggressor), event.trade_id], separators=(",", ":")
    ).encode()


def _pairs(flat: list[int]) -> tuple[tuple[int, int], ...]:
    return tuple((flat[i], flat[i + 1]) for i in range(0, len(flat), 2))


def snapshot_mid2(raw: bytes) -> int:
    """Best bid + best ask (ticks) of an encoded snapshot; 0 when it has no two-sided, uncrossed
    top or is malformed."""
    try:
        data = json.loads(raw)
        bids, asks = data[2][0::2], data[3][0::2]
        bid, ask = (max(bids), min(asks)) if bids and asks else (0, 0)
        return int(bid + ask) if 0 < bid < ask else 0
    except (TypeError, IndexError, ValueError):
        return 0


def decode(raw: bytes) -> BookSnapshot | TradeTick:
    """Decode one stream entry; raises ``ValueError`` on anything malformed."""
    try:
        data = json.loads(raw)
        kind = data[0]
        if kind == "S":
            return BookSnapshot(ts=int(data[1]), bids=_pairs(data[2]), asks=_pairs(data[3]))
        if kind == "T":
            return TradeTick(
                ts=int(data[1]), price=int(data[2]), qty=int(data[3]), aggressor=Side(int(data[4])), trade_id=data[5]
            )
    except (TypeError, IndexError, KeyError, json.JSONDecodeError) as exc:
        raise ValueError(f"feed entry {raw[:80]!r} is malformed: {exc}") from exc
    raise ValueError(f"feed entry kind {kind!r} is unknown; accepted: 'S' (book), 'T' (trade)")
