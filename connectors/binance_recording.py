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
arithmetic only (see :func:`decimal_parser`), never through a float. Once the venue's number
format is learned, raw lines of the three common shapes are decoded without ``orjson`` by
:class:`connectors.binance_lines.LineDecoder` (exact, and tested equal to the general path);
any other line takes the general path.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import orjson

from connectors.binance_lines import LineDecoder
from trading import margin
from trading.contracts import SPOT, ContractSpec
from trading.events import BookDelta, BookSnapshot, MarketEvent, TopOfBook, TradeTick
from trading.instruments import Instrument, Side
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


_BUY = Side.BUY
_SELL = Side.SELL


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


def fixed_decimals_format(step: Decimal, sample: str) -> tuple[int, int | None, str] | None:
    """Describe how to read strings shaped like ``sample`` (same number of decimals) exactly.

    Return ``(dot_index, cut, zeros)`` for the hot-path expression
    ``int(s[:cut].replace(".", "", 1)) if s[dot_index] == "." and s.endswith(zeros)``: the dot
    must sit exactly ``d`` characters from the end and the ``d - k`` digits finer than the step
    (``10**-k``) must be zeros, so the integer is exact. ``None`` when no such shortcut exists
    (a step that is not a power of ten, or samples with fewer decimals than the step).
    """
    _sign, digits, exponent = step.normalize().as_tuple()
    if digits != (1,) or not isinstance(exponent, int) or exponent > 0:
        return None
    k = -exponent
    dot = sample.find(".")
    if dot < 0:
        # Whole numbers (COIN-M contracts, a lot of 1): ``(0, None, "")``, no dot to find.
        return (0, None, "") if k == 0 and sample.isascii() and sample.isdigit() else None
    d = len(sample) - dot - 1
    if d < k or d == 0:
        return None
    extra = d - k
    return -(d + 1), (-extra if extra else None), "0" * extra


class BinanceMessageParser:
    """Turn one decoded Binance message (envelope or REST snapshot) into an event.

    Binance formats every price and quantity of a market with a fixed number of decimals
    (``"61737.63000000"``). The parser learns that shape from the first value and then reads
    each number with one slice, one ``replace`` and one ``int`` — exact, because the shape and
    the zero tail are checked on every value; any value of another shape goes through the
    general exact parser (:func:`decimal_parser`), which raises :class:`RecordingError` for
    values off the tick or lot grid.
    """

    def __init__(self, instrument: Instrument) -> None:
        self.instrument = instrument
        self._price = decimal_parser(instrument.tick_size, "price", strict=False)
        self._qty = decimal_parser(instrument.lot_size, "qty", strict=False)
        self._formats_ready = False
        #: Raw-line decoder for the common message shapes, once the number formats are learned.
        self.line_decoder: LineDecoder | None = None
        # Until learned, the zero tail "\x00" never matches: every value takes the exact slow path.
        self._p_fmt: tuple[int, int | None, str] = (0, None, "\x00")
        self._q_fmt: tuple[int, int | None, str] = (0, None, "\x00")

    def _learn(self, price: str, qty: str) -> None:
        p_fmt = fixed_decimals_format(self.instrument.tick_size, price)
        q_fmt = fixed_decimals_format(self.instrument.lot_size, qty)
        # A format that cannot be used keeps the impossible check: every value takes the slow path.
        self._p_fmt = p_fmt or (0, None, "\x00")
        self._q_fmt = q_fmt or (0, None, "\x00")
        self._formats_ready = True
        self.line_decoder = LineDecoder.for_formats(p_fmt, q_fmt)

    def price(self, text: str) -> int:
        """Price string -> ticks (exact)."""
        dot, cut, zeros = self._p_fmt
        if type(text) is str and len(text) > -dot and text[dot] == "." and text.endswith(zeros):
            try:
                return int(text[:cut].replace(".", "", 1))
            except ValueError:
                pass
        return self._price(text)

    def qty(self, text: str) -> int:
        """Quantity string -> lots (exact)."""
        dot, cut, zeros = self._q_fmt
        if type(text) is str and len(text) > -dot and text[dot] == "." and text.endswith(zeros):
            try:
                return int(text[:cut].replace(".", "", 1))
            except ValueError:
                pass
        return self._qty(text)

    def levels(self, raw: list[list[str]]) -> tuple[tuple[int, int], ...]:
        """Parse ``[[price, qty], ...]`` into ``((ticks, lots), ...)``."""
        if not raw:
            return ()
        if not self._formats_ready:
            self._learn(raw[0][0], raw[0][1])
        pd, pc, pz = self._p_fmt
        qd, qc, qz = self._q_fmt
        slow_p = self._price
        slow_q = self._qty
        try:
            if qc is None and not qz:  # quantities carry exactly the lot's decimals: no zero tail to check
                return tuple(
                    [
                        (
                            int(p[:pc].replace(".", "", 1)) if p[pd] == "." and p.endswith(pz) else slow_p(p),
                            int(q.replace(".", "", 1)) if q[qd] == "." else slow_q(q),
                        )
                        for p, q in raw
                    ]
                )
            return tuple(
                [
                    (
                        int(p[:pc].replace(".", "", 1)) if p[pd] == "." and p.endswith(pz) else slow_p(p),
                        int(q[:qc].replace(".", "", 1)) if q[qd] == "." and q.endswith(qz) else slow_q(q),
                    )
                    for p, q in raw
                ]
            )
        except (ValueError, IndexError, TypeError, AttributeError):
            # Some value is not shaped as learned: read every level the careful way (errors name it).
            return tuple([(self.price(p), self.qty(q)) for p, q in raw])

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
            ts,
            self.levels(data["b"]),
            self.levels(data["a"]),
            data["U"],
            data["u"],
            data.get("pu", 0),
            data.get("E", 0) * 1_000_000,
        )

    def book_ticker(self, ts: int, data: dict) -> TopOfBook:
        """A ``bookTicker``: best bid/ask as of update id ``u``."""
        if not self._formats_ready:
            self._learn(data["b"], data["B"])
        bid, bid_qty, ask, ask_qty = data["b"], data["B"], data["a"], data["A"]
        pd, pc, pz = self._p_fmt
        qd, qc, qz = self._q_fmt
        try:
            # The hot path of ~3 in 4 messages: the four numbers inline, exact (see ``levels``).
            if (
                bid[pd] == "."
                and ask[pd] == "."
                and bid_qty[qd] == "."
                and ask_qty[qd] == "."
                and bid.endswith(pz)
                and ask.endswith(pz)
                and bid_qty.endswith(qz)
                and ask_qty.endswith(qz)
            ):
                return TopOfBook(
                    ts,
                    int(bid[:pc].replace(".", "", 1)),
                    int(bid_qty[:qc].replace(".", "", 1)),
                    int(ask[:pc].replace(".", "", 1)),
                    int(ask_qty[:qc].replace(".", "", 1)),
                    data["u"],
                    data.get("E", 0) * 1_000_000,
                )
        except (IndexError, ValueError, TypeError, AttributeError):
            pass
        return TopOfBook(
            ts,
            self.price(bid),
            self.qty(bid_qty),
            self.price(ask),
            self.qty(ask_qty),
            data["u"],
            data.get("E", 0) * 1_000_000,
        )

    def trade(self, ts: int, data: dict) -> TradeTick | None:
        """A ``trade``; ``m`` (buyer is maker) means the aggressor sold. Non-market futures
        prints (``X`` other than ``MARKET``, e.g. insurance-fund fills) give ``None``."""
        kind = data.get("X")
        if kind is not None and kind != "MARKET":
            return None
        price, qty = data["p"], data["q"]
        if not self._formats_ready:
            self._learn(price, qty)
        pd, pc, pz = self._p_fmt
        qd, qc, qz = self._q_fmt
        try:
            if price[pd] == "." and qty[qd] == "." and price.endswith(pz) and qty.endswith(qz):
                price_ticks = int(price[:pc].replace(".", "", 1))
                qty_lots = int(qty[:qc].replace(".", "", 1))
            else:
                price_ticks, qty_lots = self.price(price), self.qty(qty)
        except (IndexError, ValueError, TypeError, AttributeError):
            price_ticks, qty_lots = self.price(price), self.qty(qty)
        return TradeTick(
            ts,
            price_ticks,
            qty_lots,
            _SELL if data["m"] else _BUY,
            str(data["t"]),
            data.get("T", 0) * 1_000_000,
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
