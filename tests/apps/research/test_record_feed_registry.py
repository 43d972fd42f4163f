"""``record_feed`` registers what it writes: a real recording run (the recorder against a local
server speaking Binance's combined stream and REST depth endpoint, fed with real recorded
frames and some broken ones) lands in the recording registry with its quality report, under the
system user or ``--owner``; rotated files and later runs of one name form one stream, which the
Research page shows and backtests take."""

from __future__ import annotations

import asyncio
import io
import threading
import time

import orjson
import pytest
from aiohttp import web
from django.core.management import CommandError, call_command

from apps.exchanges.models import Market
from tests.apps.marketdata.test_binance_raw import fake_binance_app, recorded_messages
from tests.apps.portfolio.test_analytics_api import api

pytestmark = pytest.mark.django_db
BROKEN = [b"this is not json", b'{"stream":"btcusdt@trade","data":{"e":"trade","s":"BTCUSDT"}}'] * 13


@pytest.fixture
def binance_server():
    """The fake Binance in a thread with its own event loop (the command runs its own)."""
    frames, snapshot = recorded_messages()
    # the broken frames sit among the first 150, so every rotated file of 150 frames holds them
    frames = frames[:60] + BROKEN + frames[60:]
    seen: dict = {}
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    state: dict = {}

    async def serve():
        runner = web.AppRunner(fake_binance_app(frames, snapshot, seen))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        state["runner"], state["port"] = runner, site._server.sockets[0].getsockname()[1]
        ready.set()

    thread = threading.Thread(target=lambda: (loop.run_until_complete(serve()), loop.run_forever()), daemon=True)
    thread.start()
    assert ready.wait(10)
    yield f"http://127.0.0.1:{state['port']}", frames, seen
    asyncio.run_coroutine_threadsafe(state["runner"].cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


@pytest.fixture
def binance_market():
    market, _ = Market.objects.get_or_create(
        venue="binance",
        symbol="BTC/USDT",
        defaults={"base": "BTC", "quote": "USDT", "tick_size": "0.01", "lot_size": "0.00000001", "min_notional": "5"},
    )
    return market


def record(base: str, out, **options) -> str:
    stdout = io.StringIO()
    call_command(
        "record_feed",
        venue="binance",
        symbol="BTC/USDT",
        out=str(out),
        ws_base=base.replace("http", "ws"),
        rest_base=base,
        stdout=stdout,
        **options,
    )
    return stdout.getvalue()


def expected_counts(frames: list[bytes]) -> dict[str, int]:
    counts = {"deltas": 0, "tops": 0, "trades": 0}
    for f in frames:
        if f in BROKEN:
            continue
        stream = orjson.loads(f)["stream"]
        counts["deltas" if "@depth" in stream else "tops" if stream.endswith("@bookTicker") else "trades"] += 1
    return counts


def test_every_recorded_file_is_registered_with_its_quality_report(
    users, binance_server, binance_market, tmp_path, settings
):
    from apps.research.models import UserRecording

    settings.RECORDINGS_DIR = tmp_path / "registry"
    base, frames, seen = binance_server
    out = tmp_path / "btc.gz"
    printed = record(base, out, max_events=300, rotate_events=150)
    assert seen["connections"] == 2  # one connection (and its own snapshot) per rotated file
    assert (tmp_path / "btc-001.gz").exists() and (tmp_path / "btc-002.gz").exists()
    assert "Registered recording 'btc'" in printed and "Appended to recording 'btc'" in printed

    rec = UserRecording.objects.get(name="btc")
    assert rec.owner.username == "recorder" and not rec.owner.is_active and rec.source == "record_feed"
    assert rec.market == binance_market and len(rec.files) == 2
    # the two files are one stream: both files' lines, messages and rejected lines, all counted
    per_file = expected_counts(frames[:150])
    assert rec.lines == 2 * 151
    assert rec.counts == {"snapshots": 2, **{k: 2 * v for k, v in per_file.items()}}
    assert rec.bad_lines == 2 * len(BROKEN) == 52 and len(rec.bad_samples) == 20  # samples capped, counts not
    assert rec.bad_reasons == {"not JSON": 26, "missing field 'p'": 26}
    assert rec.first_ts < rec.last_ts
    # A lost line may be a lost book update: the book counts as unsynced from the first broken
    # line to the next snapshot (the start of the second file), and again to the end.
    assert 0 < rec.unsynced_seconds < (rec.last_ts - rec.first_ts).total_seconds()

    # A later run with the same name continues the stream; the whole is measured again.
    later = time.time_ns()
    record(base, tmp_path / "later.gz", max_events=100, name="btc")
    rec.refresh_from_db()
    assert len(rec.files) == 3 and rec.counts["snapshots"] == 3 and rec.lines == 2 * 151 + 101
    assert rec.bad_reasons == {"not JSON": 39, "missing field 'p'": 39}  # its first 100 frames hold the 26 too

    # Operators see and use the system user's recordings; traders do not.
    olga, alice = api(users["olga"]), api(users["alice"])
    assert [r["name"] for r in olga.get("/api/v1/recordings/").json()["results"]] == ["btc"]
    assert alice.get("/api/v1/recordings/").json()["results"] == []
    from django.test import Client

    browser = Client()
    browser.force_login(users["olga"])
    page = browser.get("/research/")
    assert page.status_code == 200 and b"btc" in page.content and b"record_feed \xc2\xb7 recorder" in page.content
    detail = browser.get(f"/research/recordings/{rec.pk}/").content.decode()
    assert "not JSON: 39" in detail and "missing field &#x27;p&#x27;: 39" in detail
    listed = browser.get("/admin/research/userrecording/")
    assert listed.status_code == 200 and b"record_feed" in listed.content
    assert browser.get(f"/admin/research/userrecording/{rec.pk}/change/").status_code == 200

    from apps.backtests import runner

    prepared = runner.prepare_source("recording", {"recording": f"user:{rec.pk}"})
    events = list(prepared.events)
    # the three files as one stream: each file's snapshot resyncs the book, trades of every file
    from trading.events import BookSnapshot, TradeTick

    assert sum(type(e) is BookSnapshot for e in events) == 3
    stamps = [e.ts for e in events]
    assert stamps == sorted(stamps) and stamps[-1] > later  # up to the third file
    assert sum(type(e) is TradeTick for e in events) > 0
    result, _engine, _bt = runner.simulate(
        strategy="fixed_spread",
        params={"order_amount": "0.001", "bid_spread": "0.0001", "ask_spread": "0.0001", "refresh_time": "1"},
        risk={},
        prepared=runner.Prepared(prepared.instrument, events, len(events), venue=prepared.venue),
    )
    assert result.orders_placed > 0


def test_owner_option_and_refusals_before_anything_is_recorded(
    users, binance_server, binance_market, tmp_path, settings
):
    from apps.research.models import UserRecording

    settings.RECORDINGS_DIR = tmp_path / "registry"
    base, _frames, _seen = binance_server
    record(base, tmp_path / "mine.gz", max_events=80, owner="alice")
    rec = UserRecording.objects.get(name="mine")
    assert rec.owner == users["alice"] and len(rec.files) == 1
    assert [r["id"] for r in api(users["alice"]).get("/api/v1/recordings/").json()["results"]] == [rec.pk]

    with pytest.raises(CommandError, match="--owner: 'nobody' is not a user"):
        record(base, tmp_path / "x.gz", max_events=10, owner="nobody")
    with pytest.raises(CommandError, match="no market binance ETH/USDT"):
        call_command("record_feed", venue="binance", symbol="ETH/USDT", out=str(tmp_path / "y.gz"), max_events=1)
    with pytest.raises(CommandError, match="--rotate-events: 0"):
        record(base, tmp_path / "z.gz", max_events=10, rotate_events=0)
    assert not any((tmp_path / n).exists() for n in ("x.gz", "y.gz", "z.gz"))
