"""Paper bots on this machine fed by the replay and sim venues, through Redis.

How many bots one host (one worker process) runs with a quote-cycle latency p99 under 100 ms,
and the feed-to-bot latency through Redis (XADD by the feed loop -> XREAD by the host's stream
reader). A quote cycle is one market event handled by one bot: paper matching, engine
(strategy, risk, order diff), order rows written before the places, fenced Redis writes.

Needs PostgreSQL and Redis; uses its own database (created and migrated if missing) and a
private Redis prefix that it deletes afterwards.

    .venv/bin/python bench/bench_bots.py --bots 100,300,500 --seconds 20
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mmsite.settings.local")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/mmsite_bench_bots")
os.environ.setdefault("REDIS_PREFIX", f"bench-bots-{os.getpid()}")
os.environ.setdefault("MM_NO_CHANNEL_LAYER", "1")
VENUES = ("sim:alpha", "sim:beta", "replay:binance-spot")


def _ensure_database() -> None:
    import psycopg

    name = os.environ["DATABASE_URL"].rsplit("/", 1)[1]
    with psycopg.connect("postgres://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def _setup(n: int):

    from apps.accounts.models import User
    from apps.bots.models import Bot
    from apps.bots.services import bot_create
    from apps.exchanges.models import ExchangeAccount, Market
    from apps.exchanges.services import exchange_account_create

    Bot.objects.filter(owner__username="bench").update(desired_state="stopped", actual_state="stopped")
    user = User.objects.filter(username="bench").first() or User.objects.create_user("bench", password="bench-12345")
    accounts = {}
    for venue in VENUES:
        accounts[venue] = ExchangeAccount.objects.filter(owner=user, venue=venue).first() or exchange_account_create(
            owner=user, label=f"bench {venue}", venue=venue, paper_balances={"BTC": "100", "USDT": "10000000"}
        )
    bots = list(Bot.objects.filter(owner=user).order_by("id"))
    while len(bots) < n:
        venue = VENUES[len(bots) % len(VENUES)]
        market = Market.objects.get(venue=venue, symbol="BTC/USDT")
        amount = "0.001" if venue.startswith("replay") else "0.01"
        bots.append(
            bot_create(
                owner=user,
                name=f"bench {len(bots)}",
                exchange_account=accounts[venue],
                market=market,
                strategy="fixed_spread",
                params={
                    "order_amount": amount,
                    "bid_spread": "0.0001",
                    "ask_spread": "0.0001",
                    "order_levels": 2,
                    "refresh_tolerance": "0.0001",
                },
                risk={"max_position_base": "50", "order_rate_limit": 1000},
            )
        )
    chosen = bots[:n]
    Bot.objects.filter(pk__in=[b.pk for b in chosen]).update(desired_state="running", actual_state="starting")
    return chosen


def _run(n: int, seconds: float) -> dict:
    from apps.bots.models import Bot
    from workers import lifecycle, supervisor
    from workers.host import Host

    bots = _setup(n)
    supervisor.tick()
    host = Host(capacity=n + 10)
    host.start_thread()
    host.started.wait(10)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(host.bots) < n:
        time.sleep(0.5)
    time.sleep(3)  # warm up: take-over, first quotes
    for runner in list(host.bots.values()):
        runner.cycle_ns.clear()
    host.feed_latency_ns.clear()
    host.bot_latency_ns.clear()
    host.order_row_wait_ns.clear()
    for runner in list(host.bots.values()):
        runner.send_cycle_ns.clear()
        runner.places = 0
    started = time.process_time()
    time.sleep(seconds)
    cpu = time.process_time() - started
    stats = host.stats()
    print(f"  order rows written before places: p50 {stats['order_rows_p50_ms']:.1f} ms, "
          f"p99 {stats['order_rows_p99_ms']:.1f} ms")  # fmt: skip
    print("  db writer (calls, rows, seconds):", {k: (v[0], v[1], round(v[2], 2)) for k, v in host.db.timing.items()})
    cycles = sum(len(r.cycle_ns) for r in host.bots.values())
    places = sum(r.places for r in host.bots.values())
    stats.update(requested=n, cycles=cycles, cycles_per_s=cycles / seconds, cpu_share=cpu / seconds,
                 places=places, db_backlog=host.db.pending())  # fmt: skip
    for bot in bots:
        Bot.objects.filter(pk=bot.pk).update(desired_state="stopped")
        lifecycle.apply(bot.pk)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and host.bots:
        time.sleep(0.5)
    host.stop()
    return stats


class _Sink:
    """A subscriber that does nothing: measures feed -> Redis -> host reader alone."""

    def push_market(self, event, published_ns: int = 0) -> None:
        pass


def _raw(seconds: float) -> dict:
    from apps.exchanges.models import Market
    from workers import supervisor
    from workers.host import Host

    host = Host(run_bots=False)
    host.start_thread()
    host.started.wait(10)
    sink = _Sink()
    for venue in VENUES:
        supervisor.register_feed_interest(venue, Market.objects.get(venue=venue, symbol="BTC/USDT").symbol)
        host.loop.call_soon_threadsafe(host.subscribe, sink, venue, "BTC/USDT")
    time.sleep(4)
    host.feed_latency_ns.clear()
    time.sleep(seconds)
    stats = host.stats()
    host.stop()
    return stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bots", default="100,300,500", help="comma-separated bot counts")
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    _ensure_database()
    import logging

    import django

    django.setup()
    logging.getLogger("workers").setLevel(logging.WARNING)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    import redis
    from django.conf import settings

    print(f"bench_bots: {os.cpu_count()} cores, venues {', '.join(VENUES)}, {args.seconds:.0f} s per run")
    print(
        "bots  running  events/s  cycle p99 ms  placing-cycle p99 ms (n)  redis p50/p99 ms  "
        "feed->engine p50/p99 ms  cpu  places  db backlog"
    )
    try:
        raw = _raw(min(args.seconds, 10))
        print(
            f"   0  reader only (3 feeds, no bots): feed XADD -> host XREAD p50 {raw['feed_to_bot_p50_ms']:.2f} ms, "
            f"p99 {raw['feed_to_bot_p99_ms']:.2f} ms",
            flush=True,
        )
        for n in [int(x) for x in args.bots.split(",")]:
            s = _run(n, args.seconds)
            print(
                f"{n:4d}  {s['bots']:7d}  {s['cycles_per_s']:8.0f}  {s['cycle_p99_ms']:12.2f}  "
                f"{s['send_cycle_p99_ms']:14.2f} ({s['send_cycles']:5d})  "
                f"{s['feed_to_bot_p50_ms']:6.2f}/{s['feed_to_bot_p99_ms']:6.2f}  "
                f"{s['feed_to_engine_p50_ms']:9.2f}/{s['feed_to_engine_p99_ms']:7.2f}  {s['cpu_share']:.2f}"
                f"  {s['places']:6d}  {s['db_backlog']:10d}",
                flush=True,
            )
    finally:
        client = redis.Redis.from_url(settings.REDIS_URL)
        for key in client.scan_iter(match=f"{settings.REDIS_PREFIX}:*", count=1000):
            client.delete(key)
    print(f"reproduce: .venv/bin/python bench/bench_bots.py --bots {args.bots} --seconds {args.seconds:g}")


if __name__ == "__main__":
    main()
