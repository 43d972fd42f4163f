"""Ingest and query benchmark for fills and PnL snapshots on plain PostgreSQL.

In its own database ``mmsite_bench`` (created and migrated here; ``--fresh`` drops it first):

1. bulk ingest of fills through ``apps.orders.services.fills_record`` (the bots' write: per-row
   bounds checks, one ``INSERT ... SELECT FROM unnest(arrays) ON CONFLICT DO NOTHING RETURNING``
   per call) -> rows/s;
2. bulk ingest of 30 days of 1-second PnL snapshots (2,592,000 rows) through
   ``apps.portfolio.services.pnl_snapshots_record`` (the bots' write, engine units converted in
   it, one ``INSERT ... SELECT FROM unnest(arrays)`` per call) -> rows/s;
3. latency of ``apps.portfolio.selectors.pnl_series`` for the whole 30 days bucketed by hour
   (720 points over 2.6M rows), plus a day by the minute and 30 days by the day.

Reproduce: ``.venv/bin/python -m bench.bench_ingest`` (``--fresh`` to rebuild the data,
``--days 3`` for a quick run, ``--database NAME`` for a database of your own).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

BENCH_DB = "mmsite_bench"
START = datetime(2026, 1, 1, tzinfo=UTC)


def _prepare_database(fresh: bool, name: str) -> None:
    import psycopg

    global BENCH_DB
    BENCH_DB = name
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [BENCH_DB]).fetchone()
        if exists and fresh:
            conn.execute(f"DROP DATABASE {BENCH_DB} WITH (FORCE)")
            exists = None
        if not exists:
            conn.execute(f"CREATE DATABASE {BENCH_DB}")
    os.environ["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{BENCH_DB}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mmsite.settings.local")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _fixtures():
    from apps.accounts.models import User
    from apps.accounts.services import user_create
    from apps.bots.models import Bot
    from apps.bots.services import bot_create
    from apps.exchanges.models import ExchangeAccount, Market
    from apps.exchanges.services import exchange_account_create

    user = User.objects.filter(username="bench").first() or user_create(
        username="bench", password="bench-password-123", check_password=False
    )
    account = ExchangeAccount.objects.filter(owner=user, label="bench").first() or exchange_account_create(
        owner=user, label="bench", venue="sim:alpha", kind="paper", paper_balances={"USDT": "100000"}
    )
    bot = Bot.objects.filter(owner=user, name="bench").first() or bot_create(
        owner=user,
        name="bench",
        exchange_account=account,
        market=Market.objects.get(venue="sim:alpha", symbol="BTC/USDT"),
        strategy="fixed_spread",
        params={"order_amount": "0.001"},
    )
    return user, account, bot


def bench_fills(account, bot, n: int) -> float:
    from django.db import connection, transaction

    from apps.orders.services import fills_record

    # the bench database is ours: start from an empty table (no dead tuples from a previous run)
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE orders_fill")
    base = START
    price = Decimal("65000.00")
    rows = [
        {
            "ts": base + timedelta(milliseconds=137 * i),
            "account_id": account.pk,
            "bot_id": bot.pk,
            "venue_trade_id": f"T{i}",
            "client_order_id": f"mm{bot.pk}x-{i // 3}",
            "side": "buy" if i % 2 else "sell",
            "price": price + Decimal(i % 500) / 100,
            "quantity": Decimal("0.00100"),
            "fee": Decimal("0.0065"),
            "fee_currency": "USDT",
            "liquidity": "maker",
        }
        for i in range(n)
    ]
    t0 = time.perf_counter()
    inserted = 0
    for start in range(0, n, 50_000):
        with transaction.atomic():
            inserted += fills_record(rows[start : start + 50_000], count_new=True)
    elapsed = time.perf_counter() - t0
    assert inserted == n, (inserted, n)
    # Re-sending the same fills inserts nothing (idempotent ingest).
    t1 = time.perf_counter()
    with transaction.atomic():
        again = fills_record(rows[:50_000], count_new=True)
    dup_elapsed = time.perf_counter() - t1
    assert again == 0
    print(f"fills: {n:,} rows in {elapsed:.2f} s = {n / elapsed:,.0f} rows/s (bounds-checked; COPY: 50,000 a call)")
    print(
        f"fills: 50,000 duplicates ignored (COPY refused, then INSERT ... ON CONFLICT DO NOTHING) in {dup_elapsed:.2f} s = {50_000 / dup_elapsed:,.0f} rows/s"
    )
    return n / elapsed


def bench_pnl_ingest(bot, days: int) -> float:
    from django.db import connection, transaction

    from apps.core.timeseries import dt_to_ns
    from apps.exchanges.services import market_to_instrument
    from apps.portfolio.models import PnlSnapshot
    from apps.portfolio.services import pnl_snapshots_record

    total = days * 86_400
    have = PnlSnapshot.objects.filter(bot=bot).count()
    if have == total:
        print(f"pnl: reusing {have:,} snapshots already in {BENCH_DB} (run with --fresh to re-ingest)")
        return float("nan")
    PnlSnapshot.objects.filter(bot=bot).delete()
    inst = market_to_instrument(bot.market)
    start_cash = inst.cash_units(100_000)
    chunk = 100_000
    spent = 0.0
    peak = 0
    ts0 = dt_to_ns(START)
    for first in range(0, total, chunk):
        rows = []  # the engine's integer units, as the bots hand them over
        for i in range(first, min(total, first + chunk)):
            mid = 6_500_000 + (i * 7919) % 20_000 - 10_000  # ticks
            position = (i % 2001) - 1000  # lots
            realized = inst.notional_units(i % 997, 1)
            cash = start_cash - inst.notional_units(mid, position)
            equity = cash + inst.notional_units(mid, position) + realized
            peak = max(peak, equity)
            rows.append((ts0 + i * 1_000_000_000, bot.pk, inst, position, cash, mid, realized, 0, i, equity, peak,
                         peak - equity))  # fmt: skip
        t0 = time.perf_counter()
        with transaction.atomic():
            pnl_snapshots_record(rows)
        spent += time.perf_counter() - t0
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE portfolio_pnlsnapshot")
        cursor.execute("ANALYZE portfolio_pnlminute")  # as autovacuum would after a load this size
    print(
        f"pnl: {total:,} snapshots in {spent:.2f} s = {total / spent:,.0f} rows/s (units converted; COPY: 100,000 a call)"
    )
    return total / spent


def bench_series(user, bot, days: int, repeat: int) -> dict[str, float]:
    from apps.portfolio.selectors import pnl_series

    cases = {
        f"{days} d by 1h": ("1h", START, START + timedelta(days=days)),
        f"{days} d by 1d": ("1d", START, START + timedelta(days=days)),
        "1 d by 1m": ("1m", START, START + timedelta(days=1)),
    }
    results = {}
    for label, (interval, start, end) in cases.items():
        pnl_series(user=user, bot_id=bot.pk, interval=interval, start=start, end=end)  # warm the cache
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            points = pnl_series(user=user, bot_id=bot.pk, interval=interval, start=start, end=end)
            times.append((time.perf_counter() - t0) * 1000)
        results[label] = statistics.median(times)
        print(
            f"pnl_series {label}: {len(points)} points, median {statistics.median(times):.1f} ms, "
            f"min {min(times):.1f} ms (of {repeat})"
        )
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fresh", action="store_true", help=f"drop and re-create {BENCH_DB}")
    parser.add_argument("--days", type=int, default=30, help="days of 1-second PnL snapshots (default 30)")
    parser.add_argument("--fills", type=int, default=200_000, help="fills to ingest (default 200,000)")
    parser.add_argument("--repeat", type=int, default=7, help="query repetitions (default 7)")
    parser.add_argument("--database", default=BENCH_DB, help=f"database to use (default {BENCH_DB})")
    args = parser.parse_args(argv)
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    _prepare_database(args.fresh, args.database)
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        version = cursor.fetchone()[0]
    print(
        f"{datetime.now(UTC):%Y-%m-%d} {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, PostgreSQL {version} (no TimescaleDB), database {BENCH_DB}"
    )
    user, account, bot = _fixtures()
    bench_fills(account, bot, args.fills)
    bench_pnl_ingest(bot, args.days)
    bench_series(user, bot, args.days, args.repeat)
    extra = (" --fresh" if args.fresh else "") + (
        f" --database {args.database}" if args.database != "mmsite_bench" else ""
    )
    print(f"reproduce: .venv/bin/python -m bench.bench_ingest --days {args.days} --fills {args.fills}{extra}")


if __name__ == "__main__":
    main()
