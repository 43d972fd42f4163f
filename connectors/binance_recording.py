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
arithmetic only (:mod:`connectors.binance_parser`, whose names are re-exported here), never
through a float. Once the venue's number
format is learned, raw lines of the three common shapes are decoded without ``orjson`` by
:class:`connectors.binance_lines.LineDecoder` (exact, and tested equal to the general path);
any other line takes the general path.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from connectors.binance_parser import BinanceMessageParser, RecordingError, decimal_parser, fixed_decimals_format
from trading import margin
from trading.contracts import SPOT, ContractSpec
from trading.events import BookDelta, MarketEvent, TopOfBook
from trading.instruments import Instrument
from trading.margin import BracketTable

__all__ = [
    "BINANCE_COINM_BTCUSD",
    "BINANCE_SPOT_BTCUSDT",
    "BINANCE_USDM_BTCUSDT",
    "RECORDINGS",
    "RECORDINGS_DIR",
    "BinanceMessageParser",
    "ReaderStats",
    "Recording",
    "RecordingError",
    "decimal_parser",
    "fixed_decimals_format",
    "iter_lines",
    "iter_messages",
    "iter_recording",
]

RECORDINGS_DIR = Path(__file__).resolve().parent.parent / "data" / "recordings"

BINANCE_SPOT_BTCUSDT = Instrument.create(
    symbol="BTC/USDT", tick_size="0.01", lot_size="0.00000001", min_notional="5", venue="binance"
)
BINANCE_USDM_BTCUSDT = Instrument.create(
    symbol="BTC/USDT:USDT", tick_size="0.1", lot_size="0.001", min_notional="100", venue="binanceusdm"
)

# COIN-M: a lot is one contract of 100 USD (inverse; see trading.contracts). The shipped file is
# converted from the USD-M recording (scripts/make_coinm_recording.py, data/recordings/SOURCE.md).
BINANCE_COINM_BTCUSD = Instrument.create(
    symbol="BTC/USD:BTC", tick_size="0.1", lot_size="1", base="BTC", quote="USD", venue="binancecoinm"
)


@dataclass(frozen=True)
class Recording:
    """A shipped recording: which instrument it is, the files in order, and the contract
    (spot, or a linear / inverse perpetual with its maintenance-margin tiers)."""

    name: str
    instrument: Instrument
    paths: tuple[Path, ...]
    contract: ContractSpec = SPOT
    tiers: BracketTable | None = None


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
        ContractSpec.create(kind="linear", contract_size=1, settle="USDT", max_leverage=125),
        margin.BINANCE_USDM_BTCUSDT,
    ),
    "binance-coinm-btcusd": Recording(
        "binance-coinm-btcusd",
        BINANCE_COINM_BTCUSD,
        (RECORDINGS_DIR / "binance-coinm" / "btcusd_perp_20240808.gz",),
        ContractSpec.create(kind="inverse", contract_size=100, settle="BTC", max_leverage=125),
        margin.BINANCE_COINM_BTCUSD,
    ),
}


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
    return iter_messages(iter_lines(paths), instrument, stats=stats)


def iter_messages(
    lines: Iterable[tuple[int, bytes | str]], instrument: Instrument, *, stats: ReaderStats | None = None
) -> Iterator[MarketEvent]:
    """Like :func:`iter_recording`, over ``(local_ns, json)`` pairs already in memory."""
    parser = BinanceMessageParser(instrument)
    st = stats if stats is not None else ReaderStats()
    loads = orjson.loads
    depth, ticker, trade = parser.depth, parser.book_ticker, parser.trade
    handlers: dict[str | None, Callable[[int, dict], MarketEvent | None]] = {}
    buffered: list[BookDelta] = []
    snapshot_id = -1
    have_snapshot = False
    # Per-kind counts are kept in locals (the hot loop) and written to ``st`` when done.
    n_lines = n_deltas = n_tops = n_trades = 0
    fast = None  # the raw-line decoder, once the parser has learned the number formats
    try:
        for ts, payload in lines:
            n_lines += 1
            if fast is None:
                if parser.line_decoder is not None:
                    fast = parser.line_decoder.decode_other
                    match_top = parser.line_decoder.match_top
            elif type(payload) is bytes:
                # ~3 in 4 lines are bookTickers: decoded inline as in LineDecoder.decode (tested equal)
                m = match_top(payload)
                if m is not None:
                    if have_snapshot:
                        n_tops += 1
                        u, bid_i, bid_f, bq_i, bq_f, ask_i, ask_f, aq_i, aq_f, venue_ms = m.groups()
                        yield TopOfBook(
                            ts,
                            int(bid_i + bid_f),
                            int(bq_i + bq_f),
                            int(ask_i + ask_f),
                            int(aq_i + aq_f),
                            int(u),
                            int(venue_ms) * 1_000_000 if venue_ms else 0,
                        )
                    else:
                        st.skipped_before_snapshot += 1
                    continue
                event = fast(ts, payload)
                if event is not None:
                    kind = type(event)
                    if kind is BookDelta:
                        if not have_snapshot:
                            buffered.append(event)  # type: ignore[arg-type]
                        elif event.last_sequence <= snapshot_id:  # type: ignore[union-attr]
                            st.stale_deltas_dropped += 1
                        else:
                            n_deltas += 1
                            yield event
                    elif have_snapshot:
                        n_trades += 1
                        yield event
                    else:
                        st.skipped_before_snapshot += 1
                    continue
            try:
                msg = loads(payload)
                handler = handlers.get(msg.get("stream"))
                if handler is None:
                    stream = msg.get("stream")
                    if stream is None:
                        if "lastUpdateId" not in msg:
                            st.unknown += 1
                            continue
                        snap = parser.snapshot(ts, msg)
                        snapshot_id = snap.sequence
                        have_snapshot = True
                        st.snapshots += 1
                        yield snap
                        for delta in buffered:
                            if delta.last_sequence <= snapshot_id:
                                st.stale_deltas_dropped += 1
                                continue
                            n_deltas += 1
                            yield BookDelta(
                                ts,
                                delta.bids,
                                delta.asks,
                                delta.first_sequence,
                                delta.last_sequence,
                                delta.prev_sequence,
                                delta.venue_ts,
                            )
                        buffered.clear()
                        continue
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
            if handler is ticker:
                if have_snapshot:
                    n_tops += 1
                    yield event  # type: ignore[misc]
                else:
                    st.skipped_before_snapshot += 1
            elif handler is depth:
                if not have_snapshot:
                    buffered.append(event)  # type: ignore[arg-type]
                elif event.last_sequence <= snapshot_id:  # type: ignore[union-attr]
                    st.stale_deltas_dropped += 1
                else:
                    n_deltas += 1
                    yield event  # type: ignore[misc]
            elif event is not None:
                if have_snapshot:
                    n_trades += 1
                    yield event
                else:
                    st.skipped_before_snapshot += 1
    finally:
        st.lines += n_lines
        st.deltas += n_deltas
        st.tops += n_tops
        st.trades += n_trades
