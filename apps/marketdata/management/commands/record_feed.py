"""Record a live feed (any ccxt venue, or a replay) to a gzip file the replay venue can read.

    python manage.py record_feed --venue binance --symbol BTC/USDT --duration 600 \
        --out data/recordings/mine/btcusdt_$(date +%Y%m%d).gz

The file has the format of ``data/recordings/binance-spot/*.gz``: Binance venues
(``binance``, ``binanceusdm``) are recorded raw, frame for frame (``apps.marketdata.binance_raw``);
other venues as Binance-shaped messages synthesized from the normalized feed
(``apps.marketdata.recording``); play it back with ``connectors.replay.ReplayFeed(instrument,
[path])`` or read it with ``connectors.binance_recording.iter_recording``.
"""

from __future__ import annotations

import asyncio
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

    def handle(
        self, *args, venue: str, symbol: str, out: str, duration, max_events, depth, speed, force, normalized, **options
    ):
        path = Path(out)
        if path.suffix != ".gz":
            raise CommandError(f"--out: {out!r} must end in .gz (the replay venue reads gzip files)")
        if path.exists() and not force:
            raise CommandError(f"--out: {out!r} exists; pass --force to overwrite it")
        if duration is None and max_events is None:
            raise CommandError("--duration/--max-events: give at least one, or the recording never ends")
        if venue in BINANCE_VENUES and not normalized:
            self._record_raw(venue, symbol, path, duration, max_events, options["ws_base"], options["rest_base"])
            return
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

    def _record_raw(self, venue, symbol, path, duration, max_events, ws_base, rest_base) -> None:
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
