"""Recording a feed to the Binance recording format: the replay reader reads back exactly what
was recorded (same trades, tickers and book states), for Binance events and for snapshots
from any other venue; the record_feed command records a feed end to end."""

from __future__ import annotations

import asyncio
import gzip
import io
import itertools

import orjson
import pytest
from django.core.management import CommandError, call_command

from apps.marketdata.recording import BinanceStyleWriter, feed_record_to_file, stream_symbol
from connectors.binance_recording import RECORDINGS, ReaderStats, iter_recording
from connectors.replay import ReplayFeed
from trading.events import BookDelta, BookSnapshot, TopOfBook, TradeTick
from trading.instruments import Instrument
from trading.synthetic.avellaneda_stoikov import ASParams, event_stream

SPOT = RECORDINGS["binance-spot-btcusdt"]


class Book:
    """Independent L2 book by dicts: a snapshot replaces, a delta sets (0 removes)."""

    def __init__(self):
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}

    def apply(self, event) -> None:
        if isinstance(event, BookSnapshot):
            self.bids = {p: q for p, q in event.bids if q}
            self.asks = {p: q for p, q in event.asks if q}
        elif isinstance(event, BookDelta):
            for side, levels in ((self.bids, event.bids), (self.asks, event.asks)):
                for p, q in levels:
                    if q:
                        side[p] = q
                    else:
                        side.pop(p, None)

    def state(self):
        return dict(self.bids), dict(self.asks)


def write_events(events, instrument) -> tuple[bytes, BinanceStyleWriter]:
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb") as fh:
        writer = BinanceStyleWriter(fh, instrument)
        for event in events:
            writer.write(event)
    return buffer.getvalue(), writer


def read_back(tmp_path, data: bytes, instrument, name="rec.gz"):
    path = tmp_path / name
    path.write_bytes(data)
    stats = ReaderStats()
    return list(iter_recording([path], instrument, stats=stats)), stats


def book_states(events):
    book, states = Book(), []
    for event in events:
        if isinstance(event, BookSnapshot | BookDelta):
            book.apply(event)
            states.append(book.state())
    return states


def test_stream_symbol_is_binance_style():
    assert stream_symbol("BTC/USDT") == "btcusdt" and stream_symbol("BTC/USDT:USDT") == "btcusdt"


def test_binance_events_read_back_identically(tmp_path):
    original = list(itertools.islice(iter_recording(SPOT.paths, SPOT.instrument), 3000))
    data, writer = write_events(original, SPOT.instrument)
    got, stats = read_back(tmp_path, data, SPOT.instrument)
    assert stats.bad_lines == [] and stats.stale_deltas_dropped == 0
    assert writer.stats.lines == len(original) and len(got) == len(original)
    trades = [e for e in original if isinstance(e, TradeTick)]
    assert trades and [e for e in got if isinstance(e, TradeTick)] == trades
    tops = [(e.ts, e.bid_price, e.bid_qty, e.ask_price, e.ask_qty) for e in original if isinstance(e, TopOfBook)]
    assert tops == [(e.ts, e.bid_price, e.bid_qty, e.ask_price, e.ask_qty) for e in got if isinstance(e, TopOfBook)]
    assert book_states(got) == book_states(original)
    assert [e.ts for e in got] == [e.ts for e in original]


def test_lines_have_the_recording_format(tmp_path):
    original = list(itertools.islice(iter_recording(SPOT.paths, SPOT.instrument), 50))
    data, _ = write_events(original, SPOT.instrument)
    lines = gzip.decompress(data).splitlines()
    local_ns, payload = lines[0].split(b" ", 1)
    assert int(local_ns) == original[0].ts
    first = orjson.loads(payload)
    assert set(first) >= {"lastUpdateId", "bids", "asks"}
    streams = {orjson.loads(line.split(b" ", 1)[1]).get("stream") for line in lines[1:]}
    assert streams <= {"btcusdt@depth@100ms", "btcusdt@bookTicker", "btcusdt@trade"}
    # Exact plain decimals (never exponents), e.g. '0.00000001' rather than '1E-8'.
    assert all("E" not in level[1] for level in first["bids"])


def test_snapshots_of_another_venue_become_diffs_that_rebuild_the_same_books(tmp_path):
    inst = Instrument.create(symbol="BTC/USDT", tick_size="0.01", lot_size="0.0001", venue="sim:alpha")
    events = list(event_stream(inst, params=ASParams(horizon=1.0, dt=0.01), seed=3, start_ts=1_700_000_000_000_000_000))
    snapshots = [e for e in events if isinstance(e, BookSnapshot)]
    assert len(snapshots) == 100
    data, writer = write_events(events, inst)
    got, stats = read_back(tmp_path, data, inst)
    assert stats.bad_lines == []
    assert (
        writer.stats.snapshots == 1
        and writer.stats.depth_updates + writer.stats.skipped.get("unchanged_snapshot", 0) == 99
    )
    # Every snapshot after the first arrives as a diff; applying them gives each snapshot's book.
    assert isinstance(got[0], BookSnapshot) and all(not isinstance(e, BookSnapshot) for e in got[1:])
    expected = [Book() for _ in snapshots]
    for book, snap in zip(expected, snapshots, strict=True):
        book.apply(snap)
    rebuilt = book_states(got)
    wanted = [b.state() for b in expected]
    # Unchanged snapshots write nothing: compare the distinct consecutive states.
    dedup = [s for i, s in enumerate(wanted) if i == 0 or s != wanted[i - 1]]
    assert rebuilt == dedup
    got_trades = [e for e in got if isinstance(e, TradeTick)]
    sent_trades = [e for e in events if isinstance(e, TradeTick)]
    assert [(e.ts, e.price, e.qty, e.aggressor, e.trade_id) for e in got_trades] == [
        (e.ts, e.price, e.qty, e.aggressor, e.trade_id) for e in sent_trades
    ]
    # A venue without its own trade time gets the receive time (Binance's "T" is mandatory), in ms.
    assert all(e.venue_ts == e.ts // 1_000_000 * 1_000_000 for e in got_trades)


def test_record_a_replay_feed_to_file_and_read_it_back(tmp_path):
    feed = ReplayFeed.from_recording("binance-spot-btcusdt", speed=0, loop=False)
    path = tmp_path / "out" / "btcusdt.gz"
    stats = asyncio.run(feed_record_to_file(feed=feed, instrument=SPOT.instrument, path=path, max_events=500))
    assert stats.lines == 500
    got = list(iter_recording([path], SPOT.instrument))
    replayed = list(itertools.islice(iter_recording(SPOT.paths, SPOT.instrument), 500))
    assert [(e.price, e.qty, e.trade_id) for e in got if isinstance(e, TradeTick)] == [
        (e.price, e.qty, e.trade_id) for e in replayed if isinstance(e, TradeTick)
    ]
    assert book_states(got) == book_states(replayed)


@pytest.mark.django_db
def test_record_feed_command_records_and_refuses_bad_arguments(tmp_path, settings):
    from apps.research.models import UserRecording

    settings.RECORDINGS_DIR = tmp_path / "registry"
    out = tmp_path / "cmd.gz"
    stdout = io.StringIO()
    call_command("record_feed", venue="replay:binance-spot-btcusdt", out=str(out), max_events=200, stdout=stdout)
    assert "Recorded 200 lines" in stdout.getvalue()
    got = list(iter_recording([out], SPOT.instrument))
    assert isinstance(got[0], BookSnapshot) and len(got) == 200
    # registered for the system user, of the replay venue's market, with the file's own figures
    rec = UserRecording.objects.get(name="cmd")
    assert (rec.owner.username, rec.source, str(rec.market)) == (
        "recorder",
        "record_feed",
        "replay:binance-spot BTC/USDT",
    )
    assert rec.lines == 200 and rec.counts["snapshots"] == 1 and rec.bad_lines == 0
    with pytest.raises(CommandError, match="exists"):
        call_command("record_feed", venue="replay:binance-spot-btcusdt", out=str(out), max_events=10)
    with pytest.raises(CommandError, match="--duration/--max-events"):
        call_command("record_feed", venue="replay:binance-spot-btcusdt", out=str(tmp_path / "x.gz"))
    with pytest.raises(CommandError, match=r"\.gz"):
        call_command("record_feed", venue="replay:binance-spot-btcusdt", out=str(tmp_path / "x.txt"), max_events=1)
    with pytest.raises(CommandError, match="not shipped"):
        call_command("record_feed", venue="replay:nope", out=str(tmp_path / "y.gz"), max_events=1)
