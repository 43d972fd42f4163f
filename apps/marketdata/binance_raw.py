"""Record Binance's own websocket traffic, byte for byte, in the shipped recording format.

For Binance venues nothing needs synthesizing: the combined stream
(``<sym>@depth@100ms`` / ``@0ms`` futures, ``<sym>@bookTicker``, ``<sym>@trade``) is written
as received, each frame prefixed with the local receive time in ns, and one REST ``/depth``
snapshot is fetched once the first frame has arrived (so diffs are already buffering, as
Binance's book rules require) and written as its own line — exactly what
``connectors.binance_recording.iter_recording`` expects.
"""

from __future__ import annotations

import asyncio
import gzip
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from apps.marketdata.recording import stream_symbol

VENUES = {
    # venue: (websocket base, REST base, REST depth path, depth stream suffix)
    "binance": ("wss://stream.binance.com:9443", "https://api.binance.com", "/api/v3/depth", "depth@100ms"),
    "binanceusdm": ("wss://fstream.binance.com", "https://fapi.binance.com", "/fapi/v1/depth", "depth@0ms"),
}


@dataclass
class RawRecordStats:
    frames: int = 0
    snapshot_written: bool = False
    snapshot_error: str = ""


async def record_binance_raw(
    *,
    venue: str,
    symbol: str,
    path: Path | str,
    duration_s: float | None = None,
    max_frames: int | None = None,
    ws_base: str | None = None,
    rest_base: str | None = None,
    snapshot_limit: int = 1000,
    clock_ns: Callable[[], int] = time.time_ns,
    timeout_s: float = 10.0,
) -> RawRecordStats:
    """Record ``symbol`` on ``venue`` (``binance`` or ``binanceusdm``) to gzip ``path``.

    Stops after ``duration_s`` or ``max_frames`` websocket frames. ``ws_base``/``rest_base``
    override the venue's hosts (tests point them at a local server)."""
    if venue not in VENUES:
        raise ValueError(f"venue: {venue!r} is not a Binance venue; accepted: {', '.join(VENUES)}")
    if duration_s is None and max_frames is None:
        raise ValueError("duration_s/max_frames: give at least one, or the recording never ends")
    default_ws, default_rest, depth_path, depth_stream = VENUES[venue]
    sym = stream_symbol(symbol)
    streams = f"{sym}@{depth_stream}/{sym}@bookTicker/{sym}@trade"
    ws_url = f"{(ws_base or default_ws).rstrip('/')}/stream?streams={streams}"
    rest_url = f"{(rest_base or default_rest).rstrip('/')}{depth_path}"
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    stats = RawRecordStats()
    deadline = None if duration_s is None else clock_ns() + int(duration_s * 1e9)
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    with gzip.open(path, "wb") as fh:

        def write(payload: bytes) -> None:
            fh.write(b"%d " % clock_ns() + payload.strip() + b"\n")

        async def fetch_snapshot(session: aiohttp.ClientSession) -> None:
            try:
                async with session.get(rest_url, params={"symbol": sym.upper(), "limit": snapshot_limit}) as reply:
                    body = await reply.read()
                    if reply.status != 200:
                        stats.snapshot_error = f"HTTP {reply.status}: {body[:200]!r}"
                        return
                write(body)
                stats.snapshot_written = True
            except (aiohttp.ClientError, TimeoutError) as exc:
                stats.snapshot_error = f"{type(exc).__name__}: {exc}"

        async with aiohttp.ClientSession(timeout=timeout) as session, session.ws_connect(ws_url, heartbeat=30) as ws:
            snapshot_task: asyncio.Task | None = None
            try:
                while max_frames is None or stats.frames < max_frames:
                    wait = None if deadline is None else max(0.0, (deadline - clock_ns()) / 1e9)
                    try:
                        message = await asyncio.wait_for(ws.receive(), wait)
                    except TimeoutError:
                        break
                    if message.type == aiohttp.WSMsgType.TEXT:
                        write(message.data.encode())
                    elif message.type == aiohttp.WSMsgType.BINARY:
                        write(message.data)
                    else:  # closed or error: the recording ends here
                        break
                    stats.frames += 1
                    if snapshot_task is None:
                        snapshot_task = asyncio.create_task(fetch_snapshot(session))
            finally:
                if snapshot_task is not None:
                    await snapshot_task
    return stats
