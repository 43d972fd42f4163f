"""Reader for recorded raw Binance websocket traffic (spot and USD-M futures).

Format (as recorded by hftbacktest's collector): gzip text, one message per line,
``<local receive time, ns since epoch> <JSON>``. The JSON is Binance's combined-stream envelope
``{"stream", "data"}`` for ``@depth`` (diff depth), ``@bookTicker`` and ``@trade``, except one
REST ``/depth`` snapshot line ``{"lastUpdateId", "bids", "asks"}``.

Binance's book rules: buffer diff events, take a snapshot with ``lastUpdateId``, drop buffered
events with ``u <= lastUpdateId``, then apply from the first event covering ``lastUpdateId + 1``.
:func:`iter_recording` does exactly that. It starts at the snapshot: trades and tickers recorded
before it are skipped, and buffered diffs released after it are stamped with the snapshot's
receive time so ``ts`` never goes backwards. Consecutive files (a recording split by day) are
read as one stream.

Numbers are parsed exactly: decimal strings become integer ticks / lots with integer
arithmetic only (see :func:`decimal_parser`), never through a float.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import orjson

from trading.events import BookDelta, BookSnapshot, MarketEvent, TopOfBook, TradeTick
from trading.instruments import Instrument, Side

__all__ = [
    "BINANCE_SPOT_BTCUSDT",
    "BINANCE_USDM_BTCUSDT",
    "RECORDINGS",
    "RECORDINGS_DIR",
    "BinanceMessageParser",
    "ReaderStats",
    "Recording",
    "RecordingError",
    "decimal_parser",
    "iter_lines",
    "iter_recording",
]

RECORDINGS_DIR = Path(__file__).resolve().parent.parent / "data" / "recordings"

BINANCE_SPOT_BTCUSDT = Instrument.create(
    symbol="BTC/USDT", tick_size="0.01", lot_size="0.00000001", min_notional="5", venue="binance"
)
BINANCE_USDM_BTCUSDT = Instrument.create(
    symbol="BTC/USDT:USDT", tick_size="0.1", lot_size="0.001", min_notional="100", venue="binanceusdm"
)


@dataclass(frozen=True)
class Recording:
    """A shipped recording: which instrument it is and the files, in order."""

    name: str
    instrument: Instrument
    paths: tuple[Path, ...]


RECORDINGS: dict[str, Recording] = {
    "binance-spot-btcusdt": Recording(
        "binance-spot-btcusdt",
        BINANCE_SPOT_BTCUSDT,
        (
            RECORDINGS_DIR / "binance-spot" / "btcusdt_20240808.gz",
            RECORDINGS_DIR / "binance-spot" / "btcusdt_20240809.gz",
        ),
    ),
    "binance-usdm-btcusdt": Recording(
        "binance-usdm-btcusdt",
        BINANCE_USDM_BTCUSDT,
        (RECORDINGS_DIR / "binance-usdm" / "btcusdt_20240808.gz",),
    ),
}


class RecordingError(ValueError):
    """A recorded line or value cannot be read; the message names the field and the value."""


# ---------------------------------------------------------------------------------------------
# Exact decimal strings -> integer units
# ---------------------------------------------------------------------------------------------
_PLAIN_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)")


def decimal_parser(step: Decimal, field_name: str = "value", *, strict: bool = True) -> Callable[[str], int]:
    """Return a function turning a plain decimal string into an exact integer count of ``step``.

    ``"61737.63000000"`` with step ``0.01`` gives ``6173763``. Only integer arithmetic is used;
    a value that is not a whole multiple of ``step`` (or not a plain decimal) raises
    :class:`RecordingError`. ``strict`` first checks the text is a plain ASCII decimal
    (``[+-]digits[.digits]``); the non-strict variant skips that check (``int()`` then also
    lets through ``_`` separators and surrounding whitespace) and is for the hot path of a
    trusted venue feed, where it is several times faster than ``Decimal`` + ``Instrument.ticks``.
    """
    sign, digits, exponent = step.normalize().as_tuple()
    if sign or step <= 0 or not isinstance(exponent, int):
        raise ValueError(f"step: {step!r} must be a positive finite decimal")
    mantissa = int("".join(map(str, digits)))
    scale = max(0, -exponent)  # decimals of the step
    if exponent > 0:
        mantissa *= 10**exponent
    pow10 = [10**i for i in range(40)]

    def parse(text: str) -> int:
        try:
            dot = text.find(".")
            if dot < 0:
                units = int(text) * pow10[scale]
            else:
                decimals = len(text) - dot - 1
                raw = int(text[:dot] + text[dot + 1 :]) if decimals else int(text[:dot])
                if decimals == scale:
                    units = raw
                elif decimals > scale:
                    units, rest = divmod(raw, pow10[decimals - scale])
                    if rest:
                        raise RecordingError(f"{field_name}: {text!r} is not a multiple of {step}")
                else:
                    units = raw * pow10[scale - decimals]
        except (ValueError, IndexError, TypeError, AttributeError) as exc:
            if isinstance(exc, RecordingError):
                raise
            raise RecordingError(f"{field_name}: {text!r} is not a plain decimal number such as '0.01'") from exc
        if mantissa != 1:
            units, rest = divmod(units, mantissa)
            if rest:
                raise RecordingError(f"{field_name}: {text!r} is not a multiple of {step}")
        return units

    if not strict:
        return parse

    def parse_strict(text: str) -> int:
        if type(text) is not str or _PLAIN_DECIMAL.fullmatch(text) is None:
            raise RecordingError(f"{field_name}: {text!r} is not a plain decimal number such as '0.01'")
        return parse(text)

    return parse_strict


# ---------------------------------------------------------------------------------------------
# Messages -> events
# ---------------------------------------------------------------------------------------------
@dataclass
class ReaderStats:
    """What the reader saw: lines, events by kind, and what it dropped and why."""

    lines: int = 0
    snapshots: int = 0
    deltas: int = 0
    tops: int = 0
    trades: int = 0
    skipped_before_snapshot: int = 0
    stale_deltas_dropped: int = 0
    unknown: int = 0
    bad_lines: list[str] = field(default_factory=list)


class BinanceMessageParser:
    """Turn one decoded Binance message (envelope or REST snapshot) into an event."""

    def __init__(self, instrument: Instrument) -> None:
        self.instrument = instrument
        # Binance always sends plain decimals: the unchecked parser is exact for them.
        self._price = decimal_parser(instrument.tick_size, "price", strict=False)
        self._qty = decimal_parser(instrument.lot_size, "qty", strict=False)

    def levels(self, raw: Iterable[list[str]]) -> tuple[tuple[int, int], ...]:
        """Parse ``[[price, qty], ...]`` into ``((ticks, lots), ...)``."""
        price = self._price
        qty = self._qty
        return tuple([(price(p), qty(q)) for p, q in raw])

    def snapshot(self, ts: int, msg: dict) -> BookSnapshot:
        """A REST ``/depth`` answer."""
        venue_ms = msg.get("E") or msg.get("T") or 0
        return BookSnapshot(
            ts=ts,
            bids=self.levels(msg["bids"]),
            asks=self.levels(msg["asks"]),
            sequence=msg["lastUpdateId"],
            venue_ts=venue_ms * 1_000_000,
        )

    def depth(self, ts: int, data: dict) -> BookDelta:
        """A ``depthUpdate`` (``U``..``u``; futures also ``pu``)."""
        return BookDelta(
            ts=ts,
            bids=self.levels(data["b"]),
            asks=self.levels(data["a"]),
            first_sequence=data["U"],
            last_sequence=data["u"],
            prev_sequence=data.get("pu", 0),
            venue_ts=data.get("E", 0) * 1_000_000,
        )

    def book_ticker(self, ts: int, data: dict) -> TopOfBook:
        """A ``bookTicker``: best bid/ask as of update id ``u``."""
        price = self._price
        qty = self._qty
        return TopOfBook(
            ts=ts,
            bid_price=price(data["b"]),
            bid_qty=qty(data["B"]),
            ask_price=price(data["a"]),
            ask_qty=qty(data["A"]),
            sequence=data["u"],
            venue_ts=data.get("E", 0) * 1_000_000,
        )

    def trade(self, ts: int, data: dict) -> TradeTick | None:
        """A ``trade``; ``m`` (buyer is maker) means the aggressor sold. Non-market futures
        prints (``X`` other than ``MARKET``, e.g. insurance-fund fills) give ``None``."""
        kind = data.get("X")
        if kind is not None and kind != "MARKET":
            return None
        return TradeTick(
            ts=ts,
            price=self._price(data["p"]),
            qty=self._qty(data["q"]),
            aggressor=Side.SELL if data["m"] else Side.BUY,
            trade_id=str(data["t"]),
            venue_ts=data.get("T", 0) * 1_000_000,
        )


def iter_lines(paths: Iterable[Path | str]) -> Iterator[tuple[int, bytes]]:
    """Yield ``(local_ns, json_bytes)`` for every line of the files, in order."""
    for path in paths:
        with gzip.open(path, "rb") as fh:
            for line in fh:
                space = line.find(b" ")
                if space <= 0:
                    if line.strip():
                        raise RecordingError(f"line in {path}: {line[:80]!r} is not '<local_ns> <json>'")
                    continue
                yield int(line[:space]), line[space + 1 :]


def iter_recording(
    paths: Iterable[Path | str], instrument: Instrument, *, stats: ReaderStats | None = None
) -> Iterator[MarketEvent]:
    """Yield the recording as events: the snapshot, then deltas, tickers and trades in order.

    Depth diffs recorded before the snapshot are buffered and released after it by Binance's
    update-id rules; everything else before the snapshot is skipped. A line that cannot be
    parsed is counted in ``stats.bad_lines`` (first 20 kept) and skipped — never fatal.
    """
    parser = BinanceMessageParser(instrument)
    st = stats if stats is not None else ReaderStats()
    loads = orjson.loads
    depth, ticker, trade = parser.depth, parser.book_ticker, parser.trade
    handlers: dict[str, Callable[[int, dict], MarketEvent | None]] = {}
    buffered: list[BookDelta] = []
    snapshot_id: int | None = None
    for ts, payload in iter_lines(paths):
        st.lines += 1
        try:
            msg = loads(payload)
            stream = msg.get("stream")
            if stream is None:
                if "lastUpdateId" not in msg:
                    st.unknown += 1
                    continue
                snap = parser.snapshot(ts, msg)
                snapshot_id = snap.sequence
                st.snapshots += 1
                yield snap
                for delta in buffered:
                    if delta.last_sequence <= snapshot_id:
                        st.stale_deltas_dropped += 1
                        continue
                    st.deltas += 1
                    yield BookDelta(
                        ts=ts,
                        bids=delta.bids,
                        asks=delta.asks,
                        first_sequence=delta.first_sequence,
                        last_sequence=delta.last_sequence,
                        prev_sequence=delta.prev_sequence,
                        venue_ts=delta.venue_ts,
                    )
                buffered.clear()
                continue
            handler = handlers.get(stream)
            if handler is None:
                if "@depth" in stream:
                    handler = depth
                elif stream.endswith("@bookTicker"):
                    handler = ticker
                elif stream.endswith("@trade"):
                    handler = trade
                else:
                    st.unknown += 1
                    continue
                handlers[stream] = handler
            event = handler(ts, msg["data"])
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError, RecordingError, ValueError) as exc:
            if len(st.bad_lines) < 20:
                st.bad_lines.append(f"{ts}: {type(exc).__name__}: {exc}")
            continue
        if event is None:
            continue
        if snapshot_id is None:
            if handler is depth:
                buffered.append(event)  # type: ignore[arg-type]
            else:
                st.skipped_before_snapshot += 1
            continue
        if handler is depth:
            if event.last_sequence <= snapshot_id:  # type: ignore[union-attr]
                st.stale_deltas_dropped += 1
                continue
            st.deltas += 1
        elif handler is ticker:
            st.tops += 1
        else:
            st.trades += 1
        yield event
