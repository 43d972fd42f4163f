"""Recordings users own: validate uploaded gzip files as they are read, measure their quality,
and register them — whole or not at all.

The documented line format (docs/research.md): one message per line, ``<local receive time, ns
since epoch> <JSON>``, the JSON a Binance combined-stream envelope ``{"stream", "data"}`` or a
REST ``/depth`` snapshot ``{"lastUpdateId", "bids", "asks"}`` — what ``record_feed`` writes and
the shipped recordings hold. Several files form one continuous stream, in the order given.

Refused outright (with the file, the line number and the reason): a corrupt gzip or a file that
is not gzip, a file of another format (none of its first 50 lines readable), a stream of another
symbol than the market's, no book snapshot at all, time going backwards between files, a total
past ``RECORDING_MAX_UPLOAD_MB``. Otherwise every bad line is counted (the first 20 kept with
their line numbers) and the book is replayed: a delta that does not chain leaves the book
unsynced until the next snapshot, and the time without a synced book is part of the report.
"""

from __future__ import annotations

import gzip
import shutil
import tempfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import orjson
from django.conf import settings
from django.db import transaction

from apps.research.models import UserRecording
from connectors.binance_parser import BinanceMessageParser, RecordingError
from trading.book import OrderBook, SequenceGap

SAMPLES = 20
MAX_PENDING = 100_000
FORMAT_PROBE = 50
MAX_REASONS = 50  # distinct reasons kept in the counts; the rest count as "other"


class RecordingRefused(ValueError):
    """An upload that cannot be registered; ``errors`` maps fields to messages."""

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))


@dataclass
class Quality:
    lines: int = 0
    counts: dict[str, int] = field(default_factory=lambda: {"snapshots": 0, "deltas": 0, "tops": 0, "trades": 0})
    bad_lines: int = 0
    bad_samples: list[dict] = field(default_factory=list)
    bad_reasons: dict[str, int] = field(default_factory=dict)
    gaps: int = 0
    unsynced_ns: int = 0
    first_ts: int | None = None
    last_ts: int | None = None

    def bad(self, name: str, line_no: int, reason: str, key: str) -> None:
        self.bad_lines += 1
        if key not in self.bad_reasons and len(self.bad_reasons) >= MAX_REASONS:
            key = "other"
        self.bad_reasons[key] = self.bad_reasons.get(key, 0) + 1
        if len(self.bad_samples) < SAMPLES:
            self.bad_samples.append({"file": name, "line": line_no, "reason": reason[:200]})


def venue_symbol(market_symbol: str) -> str:
    """Binance's stream symbol of a unified one: BTC/USDT -> BTCUSDT, BTC/USDT:USDT -> BTCUSDT,
    BTC/USD:BTC -> BTCUSD_PERP (coin-margined perpetual)."""
    pair, _, settle = market_symbol.partition(":")
    base, _, quote = pair.partition("/")
    inverse = bool(settle) and settle == base
    return f"{base}{quote}_PERP" if inverse else f"{base}{quote}"


def inspect(files: list[tuple[str, Path]], instrument, symbol: str) -> Quality:
    """Read every line of ``files`` (display name, path) in order; raise :class:`RecordingRefused`
    at the first fatal problem, else return the quality report."""
    parser = BinanceMessageParser(instrument)
    book = OrderBook()
    q = Quality()
    unsynced_since: int | None = None
    pending: list = []
    expected = venue_symbol(symbol)
    for name, path in files:
        readable = 0
        line_no = 0
        try:
            with gzip.open(path, "rb") as fh:
                for line_no, raw in enumerate(fh, 1):
                    if not raw.strip():
                        continue
                    q.lines += 1
                    ts_text, _, payload = raw.partition(b" ")
                    if not (ts_text.isdigit() and len(ts_text) <= 19 and payload.strip()):
                        q.bad(
                            name,
                            line_no,
                            "not '<local_ns> <json>' (an integer time in ns, a space, JSON)",
                            "not '<local_ns> <json>'",
                        )
                        _probe(name, line_no, readable)
                        continue
                    ts = int(ts_text)
                    if q.last_ts is not None and ts < q.last_ts and line_no == 1:
                        raise RecordingRefused(
                            {
                                "files": f"{name} starts at {ts}, before the previous file ends ({q.last_ts}); give the files in time order"
                            }
                        )
                    try:
                        event = _event(parser, ts, payload, expected, name, line_no)
                    except RecordingRefused:
                        raise
                    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, RecordingError) as exc:
                        q.bad(name, line_no, f"{type(exc).__name__}: {exc}", _reason_key(exc))
                        _probe(name, line_no, readable)
                        if unsynced_since is None:
                            unsynced_since = ts  # a lost message may be a lost book update
                        continue
                    readable += 1
                    q.first_ts = ts if q.first_ts is None else q.first_ts
                    q.last_ts = ts if q.last_ts is None else max(q.last_ts, ts)
                    unsynced_since = _apply(book, event, ts, q, unsynced_since, pending)
        except (OSError, EOFError, zlib.error) as exc:
            raise RecordingRefused(
                {"files": f"{name}: not a readable gzip file near line {line_no + 1} ({exc})"}
            ) from None
        if readable == 0:
            raise RecordingRefused({"files": f"{name}: no readable line; expected the documented line format"})
    if q.counts["snapshots"] == 0:
        raise RecordingRefused(
            {"files": 'no book snapshot ({"lastUpdateId", "bids", "asks"}) in the recording: a book cannot be built'}
        )
    if unsynced_since is not None and q.last_ts is not None:
        q.unsynced_ns += q.last_ts - unsynced_since
    return q


def _reason_key(exc: Exception) -> str:
    """A short, low-cardinality name for why a line was rejected (the counts' key)."""
    if isinstance(exc, orjson.JSONDecodeError):
        return "not JSON"
    if isinstance(exc, KeyError):
        return f"missing field {exc.args[0]!r}" if exc.args else "missing field"
    if isinstance(exc, RecordingError):
        return f"bad {str(exc).split(':', 1)[0][:40]}"
    text = str(exc)
    if text.startswith("stream "):
        return "unknown stream"
    return f"{type(exc).__name__}: {text[:60]}"


def _probe(name: str, line_no: int, readable: int) -> None:
    if readable == 0 and line_no >= FORMAT_PROBE:
        raise RecordingRefused(
            {"files": f"{name}: none of the first {FORMAT_PROBE} lines is in the documented format; is it a recording?"}
        )


def _event(parser, ts: int, payload: bytes, expected: str, name: str, line_no: int):
    msg = orjson.loads(payload)
    if not isinstance(msg, dict):
        raise ValueError("the JSON is not an object")
    if "lastUpdateId" in msg:
        return parser.snapshot(ts, msg)
    stream, data = msg["stream"], msg["data"]
    if data.get("s") != expected:
        raise RecordingRefused(
            {"market": f"{name} line {line_no}: the stream is {data.get('s')!r}, the market's is {expected!r}"}
        )
    if "@depth" in stream:
        return parser.depth(ts, data)
    if stream.endswith("@bookTicker"):
        return parser.book_ticker(ts, data)
    if stream.endswith("@trade"):
        return parser.trade(ts, data)
    raise ValueError(f"stream {stream!r} is not depth, bookTicker or trade")


def _apply(book: OrderBook, event, ts: int, q: Quality, unsynced_since: int | None, pending: list) -> int | None:
    """Replay one event; return since when the book is unsynced (None: synced). Deltas that
    arrive while it is unsynced wait (at most ``MAX_PENDING``) and are replayed after the next
    snapshot, as a live feed buffers them: the snapshot may be taken after they were sent."""
    kind = type(event).__name__
    if kind == "BookSnapshot":
        q.counts["snapshots"] += 1
        book.apply_snapshot(event)
        waiting, pending[:] = list(pending), []
        for delta in waiting:
            try:
                book.apply_delta(delta)
            except SequenceGap:
                q.gaps += 1
                return unsynced_since if unsynced_since is not None else ts
        if unsynced_since is not None:
            q.unsynced_ns += ts - unsynced_since
        return None
    if kind == "BookDelta":
        q.counts["deltas"] += 1
        if not book.is_synced:
            if len(pending) < MAX_PENDING:
                pending.append(event)
            return unsynced_since if unsynced_since is not None else ts
        try:
            book.apply_delta(event)
        except SequenceGap:
            q.gaps += 1
            return ts if unsynced_since is None else unsynced_since
        return unsynced_since
    q.counts["tops" if kind == "TopOfBook" else "trades"] += 1
    return unsynced_since if book.is_synced or unsynced_since is not None else ts


def register(
    *,
    owner,
    name: str,
    market,
    uploads: Iterable[tuple[str, object]],
    source: str = "upload",
    max_bytes: int | None = -1,
) -> UserRecording:
    """Copy the uploaded files to a temporary folder, inspect them, then move them into place
    and create the row in one step; any refusal leaves nothing behind. ``max_bytes`` -1 is the
    upload limit (``RECORDING_MAX_UPLOAD_MB``), None no limit (files the recorder wrote)."""
    from apps.exchanges.markets import market_to_instrument

    name = (name or "").strip()
    if not name or len(name) > 128:
        raise RecordingRefused({"name": f"{name!r} is not accepted; give 1 to 128 characters"})
    if UserRecording.objects.filter(owner=owner, name=name).exists():
        raise RecordingRefused({"name": f"{name!r} is already the name of one of your recordings"})
    limit = settings.RECORDING_MAX_UPLOAD_MB * 1024 * 1024 if max_bytes == -1 else max_bytes
    root = Path(settings.RECORDINGS_DIR)
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="upload-", dir=root))
    try:
        files: list[tuple[str, Path]] = []
        total = 0
        for n, (display, stream) in enumerate(uploads):
            target = staging / f"{n:03d}.gz"
            with target.open("wb") as out:
                for chunk in iter(lambda s=stream: s.read(1 << 20), b""):
                    total += len(chunk)
                    if limit is not None and total > limit:
                        raise RecordingRefused(
                            {
                                "files": f"the upload is larger than {settings.RECORDING_MAX_UPLOAD_MB} MB (RECORDING_MAX_UPLOAD_MB)"
                            }
                        )
                    out.write(chunk)
            files.append((str(display)[:200], target))
        if not files:
            raise RecordingRefused({"files": "no file; give one or more gzip files"})
        quality = inspect(files, market_to_instrument(market), market.symbol)
        final: Path | None = None
        try:
            with transaction.atomic():
                rec = UserRecording.objects.create(
                    owner=owner, name=name, market=market, size_bytes=total, source=source, **_quality_fields(quality)
                )
                final = root / str(rec.pk)
                staging.rename(final)
                rec.files = [str((final / path.name).relative_to(root)) for _, path in files]
                rec.save(update_fields=["files"])
        except BaseException:
            if final is not None and final.exists():
                shutil.rmtree(final, ignore_errors=True)
            raise
        return rec
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def _quality_fields(quality: Quality) -> dict:
    return {
        "first_ts": _dt(quality.first_ts),
        "last_ts": _dt(quality.last_ts),
        "lines": quality.lines,
        "counts": quality.counts,
        "bad_lines": quality.bad_lines,
        "bad_samples": quality.bad_samples,
        "bad_reasons": quality.bad_reasons,
        "gaps": quality.gaps,
        "unsynced_seconds": quality.unsynced_ns / 1e9,
    }


def register_recorded(*, owner, name: str, market, path: Path | str) -> tuple[UserRecording, bool]:
    """Register a file ``record_feed`` wrote: a new recording named ``name`` (returns it and
    True), or the next file of the owner's recording of that name (False): the files before
    it and this one are read again as one stream and the quality report is the whole stream's.
    The file is copied under ``RECORDINGS_DIR``; a refusal leaves the recording as it was."""
    path = Path(path)
    existing = UserRecording.objects.filter(owner=owner, name=(name or "").strip()).first()
    if existing is None:
        with path.open("rb") as fh:
            rec = register(
                owner=owner, name=name, market=market, uploads=[(path.name, fh)], source="record_feed", max_bytes=None
            )
        return rec, True
    return _append(existing, market, path), False


def _append(rec: UserRecording, market, path: Path) -> UserRecording:
    from apps.exchanges.markets import market_to_instrument

    if rec.market_id != market.pk:
        raise RecordingRefused(
            {"market": f"recording {rec.name!r} is of {rec.market}; {path.name} is of {market}: give another --name"}
        )
    root = Path(settings.RECORDINGS_DIR)
    folder = root / str(rec.pk)
    folder.mkdir(parents=True, exist_ok=True)
    known = list(rec.files)
    target = folder / f"{len(known):03d}.gz"
    partial = folder / f"{len(known):03d}.gz.part"
    shutil.copyfile(path, partial)
    moved = False
    try:
        files = [(Path(f).name, root / f) for f in known] + [(path.name, partial)]
        quality = inspect(files, market_to_instrument(market), market.symbol)
        with transaction.atomic():
            locked = UserRecording.objects.select_for_update().get(pk=rec.pk)
            if locked.files != known:
                raise RecordingRefused({"files": f"recording {rec.name!r} changed while {path.name} was checked"})
            partial.rename(target)
            moved = True
            for key, value in _quality_fields(quality).items():
                setattr(locked, key, value)
            locked.files = [*known, str(target.relative_to(root))]
            locked.size_bytes = sum((root / f).stat().st_size for f in locked.files)
            locked.save()
        return locked
    except BaseException:
        partial.unlink(missing_ok=True)
        if moved:
            target.unlink(missing_ok=True)
        raise


def recording_paths(rec: UserRecording) -> list[Path]:
    root = Path(settings.RECORDINGS_DIR)
    return [root / f for f in rec.files]


def _dt(ns: int | None) -> datetime | None:
    return None if ns is None else datetime.fromtimestamp(ns / 1e9, tz=UTC)
