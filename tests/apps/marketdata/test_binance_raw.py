"""Raw Binance recording against a local server speaking Binance's combined stream and REST
depth endpoint (fed with real recorded frames): the file holds the frames byte for byte plus
the snapshot, and the replay reader rebuilds the same book and trades."""

from __future__ import annotations

import asyncio
import gzip
import itertools

import orjson
import pytest
from aiohttp import web

from apps.marketdata.binance_raw import record_binance_raw
from connectors.binance_recording import RECORDINGS, iter_lines, iter_recording
from trading.events import BookDelta, BookSnapshot, TradeTick

SPOT = RECORDINGS["binance-spot-btcusdt"]
FRAMES = 400


def recorded_messages():
    """The first FRAMES stream frames of the real recording and its REST snapshot."""
    frames, snapshot = [], None
    for _, payload in itertools.islice(iter_lines(SPOT.paths), FRAMES + 50):
        if payload.lstrip().startswith(b'{"lastUpdateId"'):
            snapshot = payload.strip()
        elif len(frames) < FRAMES:
            frames.append(payload.strip())
    return frames, snapshot


def fake_binance_app(frames: list[bytes], snapshot: bytes, seen: dict) -> web.Application:
    """Binance's combined stream (the frames, then close) and REST depth endpoint (the snapshot)."""

    async def stream(request):
        seen["streams"] = request.query["streams"]
        seen["connections"] = seen.get("connections", 0) + 1
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        for frame in frames:
            await ws.send_str(frame.decode())
            await asyncio.sleep(0.0005)
        await ws.close()
        return ws

    async def depth(request):
        seen["depth_query"] = dict(request.query)
        return web.Response(body=snapshot, content_type="application/json")

    app = web.Application()
    app.router.add_get("/stream", stream)
    app.router.add_get("/api/v3/depth", depth)
    return app


@pytest.fixture
async def fake_binance():
    frames, snapshot = recorded_messages()
    seen: dict[str, object] = {}
    runner = web.AppRunner(fake_binance_app(frames, snapshot, seen))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}", frames, seen
    await runner.cleanup()


def final_book(events):
    bids, asks = {}, {}
    for e in events:
        if isinstance(e, BookSnapshot):
            bids, asks = dict(e.bids), dict(e.asks)
        elif isinstance(e, BookDelta):
            for side, levels in ((bids, e.bids), (asks, e.asks)):
                for p, q in levels:
                    if q:
                        side[p] = q
                    else:
                        side.pop(p, None)
    return bids, asks


async def test_raw_recording_keeps_frames_and_replays_to_the_same_book(fake_binance, tmp_path):
    base, frames, seen = fake_binance
    path = tmp_path / "raw.gz"
    stats = await record_binance_raw(
        venue="binance",
        symbol="BTC/USDT",
        path=path,
        max_frames=FRAMES,
        ws_base=base.replace("http", "ws"),
        rest_base=base,
    )
    assert stats.frames == FRAMES and stats.snapshot_written, stats
    assert seen["streams"] == "btcusdt@depth@100ms/btcusdt@bookTicker/btcusdt@trade"
    assert seen["depth_query"] == {"symbol": "BTCUSDT", "limit": "1000"}
    lines = gzip.decompress(path.read_bytes()).splitlines()
    payloads = [line.split(b" ", 1)[1] for line in lines]
    assert [p for p in payloads if not p.startswith(b'{"lastUpdateId"')] == frames  # byte for byte
    stamps = [int(line.split(b" ", 1)[0]) for line in lines]
    assert stamps == sorted(stamps)

    ours = list(iter_recording([path], SPOT.instrument))
    # The same frames read by the reader from the original file (its snapshot sits elsewhere
    # in time, but Binance's update-id rules make the books agree once both are synced).
    original = list(itertools.islice(iter_recording(SPOT.paths, SPOT.instrument), 10_000))
    last_u = max(orjson.loads(f)["data"]["u"] for f in frames if b"depthUpdate" in f)
    original_until = [e for e in original if not isinstance(e, BookDelta) or e.last_sequence <= last_u]
    assert final_book(ours) == final_book(original_until)
    our_trades = [e.trade_id for e in ours if isinstance(e, TradeTick)]
    all_trades = [str(orjson.loads(f)["data"]["t"]) for f in frames if b"@trade" in f]
    assert our_trades and our_trades == all_trades[len(all_trades) - len(our_trades) :]


async def test_record_feed_command_records_binance_raw(fake_binance, tmp_path):
    import subprocess
    import sys

    from django.conf import settings

    base, _, _ = fake_binance
    out = tmp_path / "cmd.gz"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "manage.py",
        "record_feed",
        "--venue",
        "binance",
        "--symbol",
        "BTC/USDT",
        "--out",
        str(out),
        "--max-events",
        "100",
        "--ws-base",
        base.replace("http", "ws"),
        "--rest-base",
        base,
        "--no-register",
        cwd=settings.BASE_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, stderr.decode()
    assert "Recorded 100 frames" in stdout.decode() and "snapshot" in stdout.decode()
    events = list(iter_recording([out], SPOT.instrument))
    assert isinstance(events[0], BookSnapshot)


async def test_unknown_venue_and_endless_recording_are_refused(tmp_path):
    with pytest.raises(ValueError, match="venue"):
        await record_binance_raw(venue="kraken", symbol="BTC/USDT", path=tmp_path / "x.gz", max_frames=1)
    with pytest.raises(ValueError, match="duration_s/max_frames"):
        await record_binance_raw(venue="binance", symbol="BTC/USDT", path=tmp_path / "x.gz")
