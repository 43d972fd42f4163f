"""Record a live feed to a gzip file the replay venue reads (``connectors.binance_recording``).

The file format is the one of ``data/recordings/binance-spot/*.gz``: one line per message,
``<local receive ns> <JSON>``, JSON being Binance's combined-stream envelope
``{"stream": "<sym>@depth@100ms" | "<sym>@bookTicker" | "<sym>@trade", "data": {...}}`` plus a
REST ``/depth`` snapshot line ``{"lastUpdateId", "bids", "asks"}``.

Feeds of any venue give normalized events (``trading.events``); :class:`BinanceStyleWriter`
synthesizes Binance-shaped messages from them:

- the first :class:`BookSnapshot` becomes the REST snapshot line; every later snapshot (ccxt
  feeds send depth-limited snapshots) becomes a ``depthUpdate`` holding only the levels that
  changed (quantity ``"0"`` for a level that went away), and a :class:`BookDelta` a
  ``depthUpdate`` with its own levels. Update ids are synthesized consecutively
  (``U = u = previous u + 1``), so the reader's Binance sequencing rules accept every diff;
- :class:`TopOfBook` becomes ``bookTicker``, :class:`TradeTick` becomes ``trade`` (``m``: the
  buyer was the maker, i.e. the aggressor sold);
- prices and quantities are written as plain decimal strings from the instrument's exact
  ticks and lots, so reading back gives the same integers.
"""

from __future__ import annotations

import asyncio
import gzip
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from trading.events import BookDelta, BookSnapshot, MarketEvent, TopOfBook, TradeTick
from trading.instruments import Instrument, Side
from trading.ports import MarketDataFeed

NS_PER_MS = 1_000_000


def stream_symbol(symbol: str) -> str:
    """``BTC/USDT`` and ``BTC/USDT:USDT`` -> ``btcusdt`` (Binance's stream name)."""
    return symbol.split(":")[0].replace("/", "").replace("-", "").replace("_", "").lower()


@dataclass
class RecordStats:
    """What was written: lines per message kind, and events skipped (and why)."""

    lines: int = 0
    snapshots: int = 0
    depth_updates: int = 0
    tickers: int = 0
    trades: int = 0
    skipped: dict[str, int] = field(default_factory=dict)

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1


class BinanceStyleWriter:
    """Write normalized events as Binance combined-stream lines to a binary file object."""

    def __init__(self, fh: IO[bytes], instrument: Instrument, *, symbol: str | None = None) -> None:
        self._fh = fh
        self.instrument = instrument
        self.symbol = stream_symbol(symbol or instrument.symbol)
        self._upper = self.symbol.upper()
        self._bids: dict[int, int] = {}
        self._asks: dict[int, int] = {}
        self._update_id: int | None = None
        self._last_ns = 0
        self.stats = RecordStats()

    # --- formatting ---------------------------------------------------------------------------
    def _price(self, ticks: int) -> str:
        return format(self.instrument.price(ticks), "f")

    def _qty(self, lots: int) -> str:
        return format(self.instrument.quantity(lots), "f")

    def _levels(self, levels) -> list[list[str]]:
        return [[self._price(p), self._qty(q)] for p, q in levels]

    def _line(self, recv_ns: int, message: dict[str, Any]) -> None:
        # Receive times never go backwards in a recording (the reader stamps events with them).
        recv_ns = max(int(recv_ns), self._last_ns)
        self._last_ns = recv_ns
        self._fh.write(b"%d " % recv_ns + orjson.dumps(message) + b"\n")
        self.stats.lines += 1

    def _envelope(self, kind: str, data: dict[str, Any]) -> dict[str, Any]:
        return {"stream": f"{self.symbol}@{kind}", "data": data}

    # --- events -------------------------------------------------------------------------------
    def write(self, event: MarketEvent, recv_ns: int | None = None) -> None:
        """Write one event received at ``recv_ns`` (default: the event's ``ts``)."""
        recv = event.ts if recv_ns is None else recv_ns
        if isinstance(event, BookSnapshot):
            self._snapshot(event, recv)
        elif isinstance(event, BookDelta):
            self._delta(event, recv)
        elif isinstance(event, TopOfBook):
            self._ticker(event, recv)
        elif isinstance(event, TradeTick):
            self._trade(event, recv)
        else:
            self.stats.skip(type(event).__name__)

    def _snapshot(self, event: BookSnapshot, recv: int) -> None:
        bids = {p: q for p, q in event.bids if q > 0}
        asks = {p: q for p, q in event.asks if q > 0}
        if self._update_id is None:
            self._update_id = event.sequence if event.sequence > 0 else 1
            self._bids, self._asks = bids, asks
            message = {
                "lastUpdateId": self._update_id,
                "bids": self._levels(sorted(bids.items(), reverse=True)),
                "asks": self._levels(sorted(asks.items())),
            }
            if event.venue_ts:
                message["E"] = event.venue_ts // NS_PER_MS
            self._line(recv, message)
            self.stats.snapshots += 1
            return
        bid_changes = _diff(self._bids, bids)
        ask_changes = _diff(self._asks, asks)
        self._bids, self._asks = bids, asks
        if not bid_changes and not ask_changes:
            self.stats.skip("unchanged_snapshot")
            return
        self._depth_update(bid_changes, ask_changes, event.venue_ts, recv)

    def _delta(self, event: BookDelta, recv: int) -> None:
        if self._update_id is None:
            self.stats.skip("delta_before_snapshot")
            return
        for book, levels in ((self._bids, event.bids), (self._asks, event.asks)):
            for price, qty in levels:
                if qty > 0:
                    book[price] = qty
                else:
                    book.pop(price, None)
        self._depth_update(list(event.bids), list(event.asks), event.venue_ts, recv)

    def _depth_update(self, bids, asks, venue_ts: int, recv: int) -> None:
        assert self._update_id is not None
        self._update_id += 1
        venue_ms = venue_ts // NS_PER_MS if venue_ts else recv // NS_PER_MS
        data = {
            "e": "depthUpdate",
            "E": venue_ms,
            "s": self._upper,
            "U": self._update_id,
            "u": self._update_id,
            "b": self._levels(bids),
            "a": self._levels(asks),
        }
        self._line(recv, self._envelope("depth@100ms", data))
        self.stats.depth_updates += 1

    def _ticker(self, event: TopOfBook, recv: int) -> None:
        data: dict[str, Any] = {
            "u": self._update_id or event.sequence,
            "s": self._upper,
            "b": self._price(event.bid_price),
            "B": self._qty(event.bid_qty),
            "a": self._price(event.ask_price),
            "A": self._qty(event.ask_qty),
        }
        if event.venue_ts:
            data["E"] = event.venue_ts // NS_PER_MS
        self._line(recv, self._envelope("bookTicker", data))
        self.stats.tickers += 1

    def _trade(self, event: TradeTick, recv: int) -> None:
        trade_id: int | str = int(event.trade_id) if event.trade_id.isdigit() else (event.trade_id or str(event.ts))
        venue_ms = (event.venue_ts or recv) // NS_PER_MS
        data = {
            "e": "trade",
            "E": venue_ms,
            "s": self._upper,
            "t": trade_id,
            "p": self._price(event.price),
            "q": self._qty(event.qty),
            "T": venue_ms,
            "m": event.aggressor == Side.SELL,
            "M": True,
        }
        self._line(recv, self._envelope("trade", data))
        self.stats.trades += 1


def _diff(old: dict[int, int], new: dict[int, int]) -> list[tuple[int, int]]:
    changes = [(p, q) for p, q in new.items() if old.get(p) != q]
    changes += [(p, 0) for p in old if p not in new]
    return sorted(changes)


async def feed_record_to_file(
    *,
    feed: MarketDataFeed,
    instrument: Instrument,
    path: Path | str,
    duration_s: float | None = None,
    max_events: int | None = None,
    symbol: str | None = None,
    clock_ns: Callable[[], int] = time.time_ns,
    on_progress: Callable[[RecordStats], None] | None = None,
) -> RecordStats:
    """Record ``feed`` to gzip file ``path`` until ``duration_s`` has passed, ``max_events``
    events were written, or the feed ends. Each line carries the local receive time
    (``clock_ns()`` when the event arrived — for a live feed the event's own ``ts`` is that)."""
    if duration_s is None and max_events is None:
        raise ValueError("duration_s/max_events: give at least one, or the recording never ends")
    if max_events is not None and max_events < 1:
        raise ValueError(f"max_events: {max_events!r} is not accepted; give a whole number >= 1")
    if duration_s is not None and duration_s <= 0:
        raise ValueError(f"duration_s: {duration_s!r} is not accepted; give seconds > 0")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    await feed.connect()
    deadline = None if duration_s is None else clock_ns() + int(duration_s * 1e9)
    written = 0
    with gzip.open(path, "wb") as fh:
        writer = BinanceStyleWriter(fh, instrument, symbol=symbol)
        events = feed.events().__aiter__()
        try:
            while max_events is None or written < max_events:
                timeout = None if deadline is None else max(0.0, (deadline - clock_ns()) / 1e9)
                try:
                    event = await asyncio.wait_for(events.__anext__(), timeout)
                except (StopAsyncIteration, TimeoutError):
                    break
                writer.write(event, max(event.ts, 0))
                written += 1
                if on_progress is not None and written % 1000 == 0:
                    on_progress(writer.stats)
        finally:
            await feed.close()
            aclose = getattr(events, "aclose", None)
            if aclose is not None:
                try:
                    await aclose()
                except (RuntimeError, StopAsyncIteration):
                    pass
    return writer.stats
