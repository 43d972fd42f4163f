"""Record a live feed (any ccxt venue, or a replay) to a gzip file the replay venue can read.

    python manage.py record_feed --venue binance --symbol BTC/USDT --duration 600 \
        --out data/recordings/mine/btcusdt_$(date +%Y%m%d).gz

The file has the format of ``data/recordings/binance-spot/*.gz``: Binance venues
(``binance``, ``binanceusdm``) are recorded raw, frame for frame (``apps.marketdata.binance_raw``);
other venues as Binance-shaped messages synthesized from the normalized feed
(``apps.marketdata.recording``); play it back with ``connectors.replay.ReplayFeed(instrument,
[path])`` or read it with ``connectors.binance_recording.iter_recording``.

Every file written is registered in the recording registry (``apps.research``) with its quality
report, as an upload is: under ``--name`` (default: the file's name without ``.gz``), owned by
``--owner`` (default: the system user ``recorder``, whose recordings operators see and use; see
``apps.research.recorder``), usable in backtests as ``user:<id>``. ``--rotate-events N`` starts a
new file (``<out>-001.gz``, ``-002.gz``, ...) every N events, each registered as soon as it is
closed; the files of one name, and of later runs with the same ``--name``, form one continuous
stream. ``--no-register`` only writes the file.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from apps.marketdata.binance_raw import VENUES as BINANCE_VENUES
from apps.marketdata.binance_raw import record_binance_raw
from apps.marketdata.recording import RecordStats, feed_record_to_file


async def _ccxt_feed(venue: str, symbol: str, depth: int) -> tuple[Any, Any]:
    from connectors.ccxt_feed import CcxtFeed
    from connectors.ccxt_venue import make_exchange
    from connectors.markets import MarketCache

    exchange = make_exchange(venue, streaming=True)
    try:
        instrument = await MarketCache(exchange).instrument(symbol)
    except Exception:
        await exchange.close()
        raise
    return CcxtFeed(exchange, instrument, depth=depth), instrument


def _replay_feed(name: str, speed: float) -> tuple[Any, Any]:
    from connectors.replay import ReplayFeed

    feed = ReplayFeed.from_recording(name, speed=speed, loop=False)
    return feed, feed.instrument


class Command(BaseCommand):
    help = "Record a live market-data feed to a gzip file in the Binance recording format the replay venue reads."

    def add_arguments(self, parser):
        parser.add_argument(
            "--venue", required=True, help="ccxt exchange id (e.g. binance, backpack) or replay:<recording>"
        )
        parser.add_argument("--symbol", default="BTC/USDT", help="unified symbol, e.g. BTC/USDT (ignored for replay)")
        parser.add_argument("--out", required=True, help="output .gz file")
        parser.add_argument("--duration", type=float, default=None, help="seconds to record")
        parser.add_argument("--max-events", type=int, default=None, help="stop after this many events")
        parser.add_argument("--depth", type=int, default=20, help="book levels per snapshot (ccxt venues)")
        parser.add_argument("--speed", type=float, default=0.0, help="replay speed factor (replay only; 0 = flat out)")
        parser.add_argument("--force", action="store_true", help="overwrite an existing file")
        parser.add_argument(
            "--normalized",
            action="store_true",
            help="Binance venues: write messages synthesized from normalized events instead of the raw frames",
        )
        parser.add_argument("--ws-base", default=None, help="Binance raw mode: websocket host override")
        parser.add_argument("--rest-base", default=None, help="Binance raw mode: REST host override")
        parser.add_argument(
            "--owner",
            default=None,
            help="username the recording is registered for (default: the system user 'recorder')",
        )
        parser.add_argument("--name", default=None, help="recording name in the registry (default: the file's name)")
        parser.add_argument("--no-register", action="store_true", help="write the file only; do not register it")
        parser.add_argument(
            "--rotate-events", type=int, default=None, help="start a new file (<out>-001.gz, ...) every N events"
        )

    def handle(
        self, *args, venue: str, symbol: str, out: str, duration, max_events, depth, speed, force, normalized, **options
    ):
        path = Path(out)
        if path.suffix != ".gz":
            raise CommandError(f"--out: {out!r} must end in .gz (the replay venue reads gzip files)")
        if duration is None and max_events is None:
            raise CommandError("--duration/--max-events: give at least one, or the recording never ends")
        rotate = options["rotate_events"]
        if rotate is not None and rotate < 1:
            raise CommandError(f"--rotate-events: {rotate!r} is not accepted; give a whole number >= 1")
        if rotate is None and path.exists() and not force:
            raise CommandError(f"--out: {out!r} exists; pass --force to overwrite it")
        self._registry = None if options["no_register"] else self._registry_for(venue, symbol, path, options)
        deadline = None if duration is None else time.monotonic() + duration
        left = max_events
        part = 0
        while True:
            part += 1
            file = path if rotate is None else path.with_name(f"{path.name[:-3]}-{part:03d}.gz")
            if file.exists() and not force:
                raise CommandError(f"--out: {str(file)!r} exists; pass --force to overwrite it")
            wanted = min((n for n in (left, rotate) if n is not None), default=None)
            seconds = None if deadline is None else max(deadline - time.monotonic(), 0.001)
            if venue in BINANCE_VENUES and not normalized:
                written = self._record_raw(
                    venue, symbol, file, seconds, wanted, options["ws_base"], options["rest_base"]
                )
            else:
                written = self._record_normalized(venue, symbol, file, seconds, wanted, depth, speed)
            self._register(file)
            if left is not None:
                left -= written
            ended = wanted is not None and written < wanted  # the feed closed or the time is up
            timed_out = deadline is not None and time.monotonic() >= deadline
            if rotate is None or ended or timed_out or (left is not None and left <= 0):
                break

    def _registry_for(self, venue: str, symbol: str, path: Path, options) -> dict:
        """Owner, market and name, checked before anything is recorded."""
        from apps.research.models import UserRecording
        from apps.research.recorder import RecorderSetupError, recorder_market, recorder_owner

        try:
            owner = recorder_owner(options["owner"])
            market = recorder_market(venue, symbol)
        except RecorderSetupError as exc:
            raise CommandError(str(exc)) from None
        name = (options["name"] or path.name[:-3]).strip()
        if not name or len(name) > 128:
            raise CommandError(f"--name: {name!r} is not accepted; give 1 to 128 characters")
        other = UserRecording.objects.filter(owner=owner, name=name).exclude(market=market).first()
        if other is not None:
            raise CommandError(f"--name: {owner.username}'s recording {name!r} is of {other.market}, not {market}")
        return {"owner": owner, "market": market, "name": name}

    def _register(self, file: Path) -> None:
        if self._registry is None:
            return
        from apps.research.recordings import RecordingRefused, register_recorded

        try:
            rec, created = register_recorded(**self._registry, path=file)
        except RecordingRefused as exc:
            raise CommandError(f"{file} was written but not registered: {exc}") from None
        reasons = ", ".join(f"{k}: {v}" for k, v in sorted(rec.bad_reasons.items())) or "none"
        self.stdout.write(
            f"{'Registered' if created else 'Appended to'} recording {rec.name!r} (user:{rec.pk}, owner "
            f"{rec.owner.username}): {len(rec.files)} file(s), {rec.lines} lines, {rec.first_ts:%Y-%m-%d %H:%M:%S} -> "
            f"{rec.last_ts:%Y-%m-%d %H:%M:%S} UTC, {rec.bad_lines} rejected lines ({reasons}), {rec.gaps} gaps, "
            f"book unsynced {rec.unsynced_seconds:.1f} s"
        )

    def _record_normalized(self, venue, symbol, path, duration, max_events, depth, speed) -> int:
        try:
            stats = asyncio.run(self._record(venue, symbol, path, duration, max_events, depth, speed))
        except (ValueError, KeyError) as exc:
            raise CommandError(str(exc.args[0] if exc.args else exc)) from None
        skipped = ", ".join(f"{k}={v}" for k, v in sorted(stats.skipped.items())) or "none"
        self.stdout.write(
            self.style.SUCCESS(
                f"Recorded {stats.lines} lines to {path}: {stats.snapshots} snapshot(s), {stats.depth_updates} depth "
                f"updates, {stats.tickers} tickers, {stats.trades} trades; skipped: {skipped}"
            )
        )
        return stats.lines + sum(stats.skipped.values())

    def _record_raw(self, venue, symbol, path, duration, max_events, ws_base, rest_base) -> int:
        try:
            stats = asyncio.run(
                record_binance_raw(
                    venue=venue,
                    symbol=symbol,
                    path=path,
                    duration_s=duration,
                    max_frames=max_events,
                    ws_base=ws_base,
                    rest_base=rest_base,
                )
            )
        except (ValueError, OSError) as exc:
            raise CommandError(str(exc)) from None
        if not stats.snapshot_written:
            raise CommandError(
                f"Recorded {stats.frames} frames to {path} but no depth snapshot ({stats.snapshot_error}); "
                "the replay venue cannot build a book from it"
            )
        self.stdout.write(self.style.SUCCESS(f"Recorded {stats.frames} frames and the depth snapshot to {path} (raw)"))
        return stats.frames

    async def _record(self, venue, symbol, path, duration, max_events, depth, speed) -> RecordStats:
        if venue.startswith("replay:"):
            feed, instrument = _replay_feed(venue.removeprefix("replay:"), speed)
        else:
            feed, instrument = await _ccxt_feed(venue, symbol, depth)

        def progress(stats: RecordStats) -> None:
            self.stderr.write(f"\r{stats.lines} lines ({stats.trades} trades)", ending="")

        return await feed_record_to_file(
            feed=feed,
            instrument=instrument,
            path=path,
            duration_s=duration,
            max_events=max_events,
            on_progress=progress if self.stderr.isatty() else None,
        )
