"""One scenario of the time-series reads and deletes, run on plain PostgreSQL (in the test
process) and on TimescaleDB (``python -m tests.timescale.scenario`` against PGlite): the two
results must be equal.

It records three days of PnL snapshots for two bots ending ``anchor`` (chosen 20 days back,
so the compression policy applies to all of it) and the half hour before ``recent`` (a
couple of minutes ago, inside any refresh window), lets every TimescaleDB background job run
once (compression, retention, and whatever refresh policies exist), then writes what a
refresh window never covers: a backfill before the history, late snapshots into compressed
chunks, a single ORM insert, an ORM delete of a few minutes. No job runs after that (a scheduler outage). It reads
``pnl_series`` (1m, 1h, 1d, bounds on and off whole minutes) and the raw-snapshot reference
for the same ranges, deletes one bot with TimescaleDB's decompression limit lowered to 1,000
rows (the bot has 8,640 compressed snapshots, 8,640 fills and 2,000 events in compressed chunks;
its account's other bot has fills in the same compressed batches), and reads candles of trades that share
timestamps. Everything returned is plain JSON without database ids.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal

DECOMPRESSION_LIMIT = 1000


def _value(seed: int, scale: int) -> Decimal:
    """A deterministic pseudo-random decimal (Knuth's multiplicative hash)."""
    return Decimal((seed * 2654435761) % 1_000_003) / Decimal(scale)


def _snapshot(bot_id: int, ts: datetime, seed: int) -> dict:
    equity = Decimal(10_000) + _value(seed, 100)
    return {
        "ts": ts,
        "bot_id": bot_id,
        "position": _value(seed + 1, 1_000_000),
        "cash": equity - Decimal(5),
        "mid": Decimal(60_000) + _value(seed + 2, 1000),
        "realized": _value(seed + 3, 10_000),
        "unrealized": _value(seed + 4, 10_000) - Decimal(50),
        "fees": _value(seed + 5, 1_000_000),
        "equity": equity,
        "peak_equity": equity + Decimal(20),
        "drawdown": _value(seed + 6, 100_000),
    }


def _plain(rows: list[dict]) -> list[dict]:
    return [
        {k: (v.isoformat() if isinstance(v, datetime) else str(v) if v is not None else None) for k, v in r.items()}
        for r in rows
    ]


def _run_jobs() -> list[str]:
    """Every TimescaleDB job once, in the foreground, as the scheduler would (autocommit)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT job_id, proc_name FROM timescaledb_information.jobs WHERE job_id >= 1000 ORDER BY 1")
        jobs = cursor.fetchall()
        for job_id, _proc in jobs:
            cursor.execute("CALL run_job(%s)", [job_id])
    return sorted(proc for _job, proc in jobs)


def run(anchor: datetime, recent: datetime) -> dict:
    from django.db import connection

    from apps.bots.models import BotEvent
    from apps.bots.services import bot_delete
    from apps.core.timeseries import timescale_enabled
    from apps.marketdata.models import Trade
    from apps.marketdata.selectors import candles
    from apps.orders.models import Fill
    from apps.portfolio.models import PnlMinute, PnlSnapshot
    from apps.portfolio.selectors import _raw_series, pnl_series
    from tests.workers.helpers import make_paper_bots

    timescale = timescale_enabled(connection)
    user, account, (bot, other) = make_paper_bots(2, username="scenario", start=False)
    start = anchor - timedelta(days=3)
    step = timedelta(seconds=30)
    count = int(timedelta(days=3) / step)
    # Multi-row INSERTs, not COPY: PGlite's wire server crashes on COPY FROM STDIN.
    for n, b in enumerate((bot, other)):
        rows = [PnlSnapshot(**_snapshot(b.pk, start + i * step, i + 7 * n)) for i in range(count)]
        PnlSnapshot.objects.bulk_create(rows, batch_size=200)
    fresh = [PnlSnapshot(**_snapshot(bot.pk, recent - (i + 1) * step, 500_000 + i)) for i in range(60)]
    PnlSnapshot.objects.bulk_create(fresh)
    # Fills of both bots of the account, older than the fills' compression delay (30 days): one
    # every 30 s for the bot deleted below, one every 10 minutes for the other; bot events of
    # the deleted bot (compressed after 7 days).
    fills_start = start - timedelta(days=15)
    fills = [
        Fill(ts=fills_start + i * step, account_id=account.pk, bot_id=b.pk, venue_trade_id=f"{b.pk}-{i}",
             side="buy" if i % 2 else "sell", price=Decimal(60_000) + _value(i, 1000), quantity=Decimal("0.001"),
             fee=Decimal("0.01"), fee_currency="USDT")
        for b in (other, bot) for i in range(count) if b is other or i % 20 == 0
    ]  # fmt: skip
    Fill.objects.bulk_create(fills, batch_size=200)
    events = [BotEvent(ts=start + i * step, bot=other, kind="state", code="tick", message=str(i)) for i in range(2000)]
    BotEvent.objects.bulk_create(events, batch_size=200)
    jobs = _run_jobs() if timescale else []
    compressed, compressed_other = 0, {}
    if timescale:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM timescaledb_information.chunks "
                "WHERE hypertable_name = 'portfolio_pnlsnapshot' AND is_compressed"
            )
            compressed = cursor.fetchone()[0]
            cursor.execute(
                "SELECT hypertable_name, count(*) FROM timescaledb_information.chunks "
                "WHERE hypertable_name IN ('orders_fill', 'bots_botevent') AND is_compressed GROUP BY 1"
            )
            compressed_other = dict(cursor.fetchall())
    # After the jobs: a backfill before the history, late rows into compressed chunks (some
    # the last of their minute, one in a minute of its own), one ORM insert.
    late = [
        _snapshot(bot.pk, start - timedelta(hours=5, seconds=7), 900_001),
        _snapshot(bot.pk, start + timedelta(hours=30, seconds=29), 900_002),
        _snapshot(bot.pk, start + timedelta(hours=50, seconds=13), 900_003),
        _snapshot(bot.pk, start + timedelta(days=2, hours=23, minutes=59, seconds=45), 900_004),
    ]
    PnlSnapshot.objects.bulk_create([PnlSnapshot(**row) for row in late])
    PnlSnapshot.objects.create(**_snapshot(bot.pk, start + timedelta(hours=12, seconds=59, microseconds=5), 900_005))
    # An ORM delete inside compressed chunks: the minutes it touches are recomputed.
    PnlSnapshot.objects.filter(
        bot_id=bot.pk,
        ts__gte=start + timedelta(hours=30, minutes=59, seconds=10),
        ts__lt=start + timedelta(hours=31, minutes=2),
    ).delete()

    ranges = {
        "1m": (start + timedelta(hours=29, minutes=58, seconds=17), start + timedelta(hours=31, seconds=3)),
        "1h": (start - timedelta(hours=6), anchor + timedelta(hours=1)),
        "1d": (start - timedelta(days=1), anchor + timedelta(days=1)),
        "1h_to_now": (start - timedelta(hours=6), recent + timedelta(hours=1)),
    }
    series, reference = {}, {}
    for interval, (lo, hi) in ranges.items():
        name = interval.split("_")[0]
        series[interval] = _plain(pnl_series(user=user, bot_id=bot.pk, interval=name, start=lo, end=hi))
        width = {"1m": timedelta(minutes=1), "1h": timedelta(hours=1), "1d": timedelta(days=1)}[name]
        raw = _raw_series(bot.pk, lo, hi, width)
        for row in raw:
            del row["last_ts"]
        reference[interval] = _plain(raw)

    other_id = other.pk  # Model.delete() sets other.pk to None
    other_snapshots = PnlSnapshot.objects.filter(bot_id=other_id).count()
    other_fills = Fill.objects.filter(bot_id=other_id).count()
    with connection.cursor() as cursor:
        if timescale:
            cursor.execute(f"SET timescaledb.max_tuples_decompressed_per_dml_transaction = {DECOMPRESSION_LIMIT}")
        bot_delete(bot=other, actor=user)
        if timescale:
            cursor.execute("RESET timescaledb.max_tuples_decompressed_per_dml_transaction")
    after_delete = {
        "deleted_bot_snapshots": PnlSnapshot.objects.filter(bot_id=other_id).count(),
        "deleted_bot_minutes": PnlMinute.objects.filter(bot_id=other_id).count(),
        "kept_bot_snapshots": PnlSnapshot.objects.filter(bot_id=bot.pk).count(),
        # The deleted bot's fills stay, with its id (history), in the account.
        "deleted_bot_fills": Fill.objects.filter(bot_id=other_id).count(),
        "deleted_bot_events": BotEvent.objects.filter(bot_id=other_id).count(),
        "account_fills": Fill.objects.filter(account_id=account.pk).count(),
        "account_fills_by_bot_row": dict(
            Counter(
                "bot gone" if name is None else "bot present"
                for name in Fill.objects.filter(account_id=account.pk).values_list("bot__name", flat=True)
            )
        ),
        "kept_bot_1h": _plain(pnl_series(user=user, bot_id=bot.pk, interval="1h", start=ranges["1h"][0], end=ranges["1h"][1])),
    }  # fmt: skip

    # Candles: bursts of trades sharing a timestamp, ids '8'...'12' (numeric order differs from text order).
    t0 = start + timedelta(hours=1)
    trades = []
    for burst in range(6):
        ts = t0 + timedelta(seconds=20 * burst)
        for k, trade_id in enumerate(("12", "8", "10", "9", "11")):
            price = Decimal(60_000 + burst * 10 + k)
            trades.append(Trade(ts=ts, market=bot.market, price=price, qty=Decimal("0.5"), aggressor="buy",
                                trade_id=f"{burst}{trade_id}" if burst % 2 else trade_id))  # fmt: skip
    Trade.objects.bulk_create(trades)
    candle_rows = _plain(candles(market=bot.market, interval="1m", start=t0, end=t0 + timedelta(minutes=5)))
    return {
        "timescale": timescale,
        "jobs": jobs,
        "compressed_chunks": compressed,
        "snapshots": count,
        "other_snapshots": other_snapshots,
        "other_fills": other_fills,
        "compressed_fill_and_event_chunks": compressed_other,
        "series": series,
        "reference": reference,
        "after_delete": after_delete,
        "candles": candle_rows,
    }


if (
    __name__ == "__main__"
):  # python -m tests.timescale.scenario <anchor> <recent> (ISO); Django settings from the environment
    import django

    django.setup()
    result = run(*(datetime.fromisoformat(arg).astimezone(UTC) for arg in sys.argv[1:3]))
    print("RESULT " + json.dumps(result))
