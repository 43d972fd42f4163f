"""Market-data storage on plain PostgreSQL: bulk ingest of real recorded trades and top-of-book
rows (``marketdata_ingest_batch``), re-ingest of the same rows (all duplicates), and the latency
of the candle / top-of-book / heat-map selectors over the stored span.

Input: the recorded Binance spot BTCUSDT stream shipped in data/recordings (19,903 trades and
73,171 book tickers over ~650 s), repeated ``--copies`` times with times shifted by the span so
every copy is new data. Uses its own database (created and migrated if missing) and empties
the market-data tables first.

    .venv/bin/python bench/bench_marketdata.py --copies 5 --batch 5000
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mmsite.settings.local")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/mmsite_bench_marketdata")
os.environ.setdefault("MM_NO_CHANNEL_LAYER", "1")


def _ensure_database() -> None:
    import psycopg

    name = os.environ["DATABASE_URL"].rsplit("/", 1)[1]
    with psycopg.connect("postgres://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def _timed(fn, repeat: int = 5) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--copies", type=int, default=5, help="times the recording is stored (shifted in time)")
    parser.add_argument("--batch", type=int, default=5000, help="rows per marketdata_ingest_batch call")
    args = parser.parse_args()

    _ensure_database()
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)

    from datetime import timedelta

    from apps.exchanges.models import Market
    from apps.marketdata import selectors
    from apps.marketdata.models import DepthSnapshot, TopOfBookSnapshot, Trade
    from apps.marketdata.services import batch_from_events, marketdata_ingest_batch, ns_to_datetime
    from connectors.binance_recording import RECORDINGS, iter_recording
    from trading.events import TopOfBook, TradeTick

    recording = RECORDINGS["binance-spot-btcusdt"]
    market = Market.objects.get(venue="replay:binance-spot", symbol="BTC/USDT")
    for model in (Trade, TopOfBookSnapshot, DepthSnapshot):
        model.objects.all().delete()
    events = [e for e in iter_recording(recording.paths, recording.instrument) if isinstance(e, TradeTick | TopOfBook)]
    span_ns = events[-1].ts - events[0].ts + 1_000_000_000
    base = batch_from_events(market_id=market.pk, instrument=recording.instrument, events=events)
    print(f"input: {len(base.trades):,} trades + {len(base.tops):,} tops per copy, {args.copies} copies")

    def copy_rows(i: int):
        shift = timedelta(microseconds=span_ns * i // 1000)
        trades = [
            Trade(
                ts=r.ts + shift,
                market_id=r.market_id,
                price=r.price,
                qty=r.qty,
                aggressor=r.aggressor,
                trade_id=r.trade_id,
            )
            for r in base.trades
        ]
        tops = [
            TopOfBookSnapshot(
                ts=r.ts + shift, market_id=r.market_id, bid=r.bid, bid_qty=r.bid_qty, ask=r.ask, ask_qty=r.ask_qty
            )
            for r in base.tops
        ]
        return trades, tops

    total_rows, total_s, new_rows = 0, 0.0, 0
    for i in range(args.copies):
        trades, tops = copy_rows(i)
        start = time.perf_counter()
        for at in range(0, max(len(trades), len(tops)), args.batch):
            stored = marketdata_ingest_batch(trades=trades[at : at + args.batch], tops=tops[at : at + args.batch])
            new_rows += stored["trades"] + stored["tops"]
        total_s += time.perf_counter() - start
        total_rows += len(trades) + len(tops)
    print(
        f"ingest: {total_rows:,} rows offered in {total_s:.2f} s = {total_rows / total_s:,.0f} rows/s "
        f"(batches of {args.batch} trades + {args.batch} tops); {new_rows:,} stored "
        f"({total_rows - new_rows:,} tickers shared a microsecond with the next one: the last is kept)"
    )

    trades, tops = copy_rows(0)
    start = time.perf_counter()
    again = 0
    for at in range(0, max(len(trades), len(tops)), args.batch):
        stored = marketdata_ingest_batch(trades=trades[at : at + args.batch], tops=tops[at : at + args.batch])
        again += stored["trades"] + stored["tops"]
    dup_s = time.perf_counter() - start
    stored = Trade.objects.count() + TopOfBookSnapshot.objects.count()
    assert stored == new_rows and again == 0, (stored, new_rows, again)
    print(
        f"re-ingest of one copy (all duplicates): {len(trades) + len(tops):,} rows in {dup_s:.2f} s "
        f"= {(len(trades) + len(tops)) / dup_s:,.0f} rows/s; stored rows unchanged: {stored:,}"
    )

    from django.db import connection

    with connection.cursor() as cursor:  # what autovacuum would do after a bulk load
        cursor.execute("ANALYZE marketdata_trade; ANALYZE marketdata_topofbooksnapshot")
    start_dt = ns_to_datetime(events[0].ts)
    end_dt = start_dt + timedelta(microseconds=span_ns * args.copies // 1000)
    for label, fn in (
        (
            "candles 1m over the whole span",
            lambda: selectors.candles(market=market, interval="1m", start=start_dt, end=end_dt),
        ),
        (
            "candles 1h over the whole span",
            lambda: selectors.candles(market=market, interval="1h", start=start_dt, end=end_dt),
        ),
        (
            "top of book 1m over the whole span",
            lambda: selectors.top_of_book_series(market=market, start=start_dt, end=end_dt, interval="1m"),
        ),
        ("recent trades (100)", lambda: list(selectors.recent_trades(market=market, limit=100))),
    ):
        ms, rows = _timed(fn)
        print(f"{label}: {ms:.1f} ms median of 5 ({len(rows)} rows)")
    print(f"reproduce: .venv/bin/python bench/bench_marketdata.py --copies {args.copies} --batch {args.batch}")


if __name__ == "__main__":
    main()
