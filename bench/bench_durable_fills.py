"""What durable fills cost the bot host's database writer (``workers/dbwriter.py``).

Fills and order updates are committed with ``synchronous_commit`` on (``workers.dbwriter.durable``):
the commit waits for PostgreSQL's WAL flush. This measures the writer with them durable (A) and
with ``synchronous_commit`` off as before (B), interleaved A, B, A, B... in one run against the
same database, so both see the same machine load:

- paced: one fill every ``--interval-ms`` handed to a writer like the host's ``db`` writer
  (50 ms linger), for ``--calls`` calls: time from hand-over to commit (p50 / p99);
- burst: ``--burst`` fills handed over at once (merged into batches of up to 2,000 rows): rows/s.

Own database ``mmsite_bench_durable`` (created and migrated on first run). Prints the load
average at start and the server's ``fsync`` / ``wal_sync_method``.

Reproduce: ``.venv/bin/python -m bench.bench_durable_fills --rounds 3``
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

BENCH_DB = "mmsite_bench_durable"


def _prepare() -> None:
    import psycopg

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [BENCH_DB]).fetchone():
            conn.execute(f"CREATE DATABASE {BENCH_DB}")
    os.environ["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{BENCH_DB}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mmsite.settings.local")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


def _rows(tag: str, n: int) -> list[dict]:
    now = datetime.now(UTC)
    return [
        {
            "ts": now + timedelta(microseconds=i),
            "account_id": 1,
            "bot_id": 1,
            "client_order_id": f"{tag}-{i}",
            "venue_trade_id": f"{tag}-{i}",
            "side": "buy" if i % 2 else "sell",
            "price": Decimal("60000.25"),
            "quantity": Decimal("0.0010"),
            "fee": Decimal("0.006"),
            "fee_currency": "USDT",
            "liquidity": "maker",
        }
        for i in range(n)
    ]


def _set_durable(on: bool) -> None:
    from apps.orders.services import fills_record, orders_update

    fills_record.durable = on
    orders_update.durable = on


def paced(tag: str, calls: int, interval_s: float) -> tuple[float, float]:
    from apps.orders.services import fills_record
    from workers.dbwriter import DbWriter

    writer = DbWriter("bench-db", linger_s=0.05)
    latencies: list[float] = []
    for row in _rows(tag, calls):
        t0 = time.perf_counter()
        writer.submit(fills_record, [row], done=lambda r, e, t0=t0: latencies.append(time.perf_counter() - t0))
        time.sleep(interval_s)
    writer.drain(120)
    latencies.sort()
    return statistics.median(latencies) * 1000, latencies[int(len(latencies) * 0.99) - 1] * 1000


def burst(tag: str, n: int) -> float:
    from apps.orders.services import fills_record
    from workers.dbwriter import DbWriter

    writer = DbWriter("bench-db", linger_s=0.05)
    done = threading.Event()
    left = [n]

    def one(result, exc) -> None:
        left[0] -= 1
        if left[0] == 0:
            done.set()

    rows = _rows(tag, n)
    t0 = time.perf_counter()
    for row in rows:
        writer.submit(fills_record, [row], done=one)
    done.wait(300)
    elapsed = time.perf_counter() - t0
    writer.drain(60)
    return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--interval-ms", type=float, default=10.0)
    parser.add_argument("--burst", type=int, default=20_000)
    args = parser.parse_args()
    _prepare()
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW fsync")
        fsync = cursor.fetchone()[0]
        cursor.execute("SHOW wal_sync_method")
        method = cursor.fetchone()[0]
    print(f"load average at start: {os.getloadavg()}; fsync={fsync} wal_sync_method={method}")
    print("round | mode | paced p50 ms | paced p99 ms | burst rows/s | load avg (1 min)")
    stamp = time.time_ns()
    for r in range(args.rounds):
        for durable in (True, False):
            _set_durable(durable)
            tag = f"{stamp}-{r}-{int(durable)}"
            p50, p99 = paced(tag + "p", args.calls, args.interval_ms / 1000)
            rate = burst(tag + "b", args.burst)
            mode = "A durable (sync commit)" if durable else "B synchronous_commit off"
            print(f"{r} | {mode} | {p50:.1f} | {p99:.1f} | {rate:,.0f} | {os.getloadavg()[0]:.1f}", flush=True)
    _set_durable(True)


if __name__ == "__main__":
    main()
