"""The TimescaleDB path against a real TimescaleDB (PGlite + TimescaleDB 2.23, see conftest),
compared with plain PostgreSQL (this test run's database).

- ``migrate`` on TimescaleDB: hypertables, compression/retention policies, no continuous
  aggregate, the PnL minute rollup as a table with its row-level trigger;
- one scenario (``tests/timescale/scenario.py``) run on both: ``pnl_series`` equals the raw
  snapshots' buckets on each, and the two databases return the same rows, with history
  outside any refresh window, a backfill, late rows into compressed chunks and no scheduler
  after them; a bot's delete with the decompression limit lowered below its row count;
  candles of trades sharing timestamps;
- a server with TimescaleDB installed but not preloaded: detection says why it is not usable
  and ``migrate`` makes plain tables.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest

from tests.timescale import scenario


def _query(server, sql: str) -> list[tuple]:
    with psycopg.connect(server.url) as conn:
        return conn.execute(sql).fetchall()


def test_migrate_on_timescaledb_makes_hypertables_policies_and_no_continuous_aggregate(timescaledb):
    assert "TimescaleDB usable: installed and loaded by the server without preloading" in timescaledb.migrate_output
    hypertables = {
        row[0] for row in _query(timescaledb, "SELECT hypertable_name FROM timescaledb_information.hypertables")
    }
    assert {"portfolio_pnlsnapshot", "marketdata_trade", "orders_fill", "bots_botevent"} <= hypertables
    assert _query(timescaledb, "SELECT view_name FROM timescaledb_information.continuous_aggregates") == []
    jobs = _query(
        timescaledb, "SELECT proc_name, hypertable_name FROM timescaledb_information.jobs WHERE job_id >= 1000"
    )
    assert ("policy_compression", "portfolio_pnlsnapshot") in jobs
    assert not [job for job in jobs if job[0] == "policy_refresh_continuous_aggregate"]
    assert _query(timescaledb, "SELECT relkind FROM pg_class WHERE relname = 'portfolio_pnlminute'") == [("r",)]
    triggers = _query(
        timescaledb,
        "SELECT tgname FROM pg_trigger WHERE tgrelid = 'portfolio_pnlsnapshot'::regclass AND tgname LIKE 'portfolio%' ORDER BY 1",
    )
    assert triggers == [("portfolio_pnlminute_rollup",), ("portfolio_pnlminute_truncate",)]


def _expected_candles(start: datetime) -> list[dict]:
    """What scenario.run() stores as trades, bucketed by hand: order (ts, numeric trade id)."""
    t0 = start + timedelta(hours=1)
    trades = []
    for burst in range(6):
        for k, trade_id in enumerate(("12", "8", "10", "9", "11")):
            tid = f"{burst}{trade_id}" if burst % 2 else trade_id
            trades.append((t0 + timedelta(seconds=20 * burst), int(tid), Decimal(60_000 + burst * 10 + k)))
    rows = []
    for minute in range(2):
        inside = sorted(
            t for t in trades if t0 + timedelta(minutes=minute) <= t[0] < t0 + timedelta(minutes=minute + 1)
        )
        prices = [t[2] for t in inside]
        rows.append({"bucket": (t0 + timedelta(minutes=minute)).isoformat(), "open": prices[0], "high": max(prices),
                     "low": min(prices), "close": prices[-1], "volume": Decimal("0.5") * len(prices), "trades": len(prices)})  # fmt: skip
    return rows


@pytest.mark.django_db(transaction=True)
def test_the_same_scenario_returns_the_same_rows_on_timescaledb_and_plain_postgresql(timescaledb):
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    anchor = now.replace(hour=0, minute=0) - timedelta(days=20)
    recent = now - timedelta(minutes=2)
    plain = scenario.run(anchor, recent)
    output = timescaledb.python("-m", "tests.timescale.scenario", anchor.isoformat(), recent.isoformat())
    timescale = json.loads(next(line for line in output.splitlines() if line.startswith("RESULT "))[7:])

    assert plain["timescale"] is False and timescale["timescale"] is True
    # The background jobs ran once on TimescaleDB and compressed every chunk of the history.
    assert "policy_compression" in timescale["jobs"] and timescale["compressed_chunks"] >= 3
    assert timescale["other_snapshots"] == plain["other_snapshots"] == timescale["snapshots"]
    for result in (plain, timescale):
        for interval, rows in result["series"].items():
            assert rows, interval
            assert rows == result["reference"][interval], interval
    assert len(timescale["series"]["1h"]) == 72 + 1  # the 3 days' hours and the backfill's hour
    assert timescale["series"] == plain["series"]
    # The deleted bot's 8,640 compressed snapshots, 8,640 compressed fills and 2,000 compressed
    # events went without decompressing (limit 1,000); its fills stay with its id.
    assert timescale["compressed_fill_and_event_chunks"]["orders_fill"] >= 3
    assert timescale["compressed_fill_and_event_chunks"]["bots_botevent"] >= 1
    assert timescale["other_fills"] == plain["other_fills"] == timescale["snapshots"]
    assert timescale["after_delete"]["deleted_bot_fills"] == timescale["other_fills"]
    assert timescale["after_delete"]["deleted_bot_events"] == 0
    assert timescale["after_delete"]["account_fills"] == 8640 + 432
    assert timescale["after_delete"]["account_fills_by_bot_row"] == {"bot gone": 8640, "bot present": 432}
    assert timescale["after_delete"] == plain["after_delete"]
    assert timescale["after_delete"]["deleted_bot_snapshots"] == 0
    assert timescale["after_delete"]["deleted_bot_minutes"] == 0
    assert timescale["after_delete"]["kept_bot_1h"] == timescale["series"]["1h"]
    # Candles: ties on the timestamp broken by trade id (numerically), on both databases.
    expected = _expected_candles(anchor - timedelta(days=3))
    for result in (plain, timescale):
        got = [
            {k: (v if k == "bucket" else int(v) if k == "trades" else Decimal(v)) for k, v in row.items()}
            for row in result["candles"]
        ]
        assert got == expected


def test_timescaledb_installed_but_not_preloaded_is_not_used_and_migrate_makes_plain_tables(timescaledb_not_preloaded):
    server = timescaledb_not_preloaded
    check = server.python(
        "-c",
        "import django; django.setup(); from django.db import connection; "
        "from apps.core.db.backend.base import timescale_status; print(timescale_status(connection))",
    )
    assert "usable=False" in check and "installed but not in shared_preload_libraries" in check
    output = server.manage("migrate", "--no-input")
    assert (
        "TimescaleDB not usable: the timescaledb extension is installed but not in shared_preload_libraries" in output
    )
    assert _query(server, "SELECT extname FROM pg_extension WHERE extname = 'timescaledb'") == []
    kinds = _query(
        server,
        "SELECT relname, relkind FROM pg_class WHERE relname IN ('portfolio_pnlsnapshot', 'portfolio_pnlminute')",
    )
    assert sorted(kinds) == [("portfolio_pnlminute", "r"), ("portfolio_pnlsnapshot", "r")]


def test_flush_truncates_the_minute_rollup_with_the_snapshots(timescaledb):
    """Django's test flush TRUNCATEs the snapshots hypertable; its TRUNCATE trigger empties the rollup."""
    timescaledb.python(
        "-c",
        "import django; django.setup(); from datetime import datetime, UTC; "
        "from tests.workers.helpers import make_paper_bots; from tests.timescale.scenario import _snapshot; "
        "from apps.portfolio.models import PnlSnapshot; "
        "_u, _a, (bot,) = make_paper_bots(1, username='flush', start=False); "
        "PnlSnapshot.objects.create(**_snapshot(bot.pk, datetime(2026, 11, 2, tzinfo=UTC), 1))",
    )
    count = "SELECT (SELECT count(*) FROM portfolio_pnlsnapshot), (SELECT count(*) FROM portfolio_pnlminute)"
    assert all(n > 0 for n in _query(timescaledb, count)[0])
    timescaledb.manage("flush", "--no-input")
    assert _query(timescaledb, count) == [(0, 0)]
