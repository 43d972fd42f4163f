"""Paper bots on this machine fed by the replay and sim venues, through Redis.

How many bots this machine runs with a quote-cycle latency p99 under 100 ms, with ``--procs``
host processes (each one the production ``workers.host.Host`` of a ``bots,feeds`` worker, in
``bench/bots_host.py``), the feed-to-bot latency through Redis (XADD by the feed loop -> the
entry read and decoded on the host's loop by its stream reader, redis-py asyncio) and feed
publish -> the engine starting on it (feed->engine, what a bot feels). A cycle is one pass of one bot over what arrived since its
last pass: every queued trade (paper matching, engine) and then the newest book once (the host
applied the book events to its shared book; the ones superseded before the bot got to them are
counted, not handled); it includes the fenced Redis writes (and the order rows where they are
awaited: paper rows are written behind the venue unless the database writer is far behind).
Before 2026-11-21 (one book per bot) a cycle was one market event.

Also printed: how late each host loop runs a 10 ms timer, the wall and CPU time of its turns
(a turn's wall time far above its CPU time: the machine is saturated), and the cycles by the
number of times they waited for Redis (a paper cycle waits once when it sends: 2026-11-21).

The measured window is 60 s by default: the replay venue plays the recording from its start
when the first bot needs it, and its trade rate varies 2-3x from one 10 s stretch to the next,
so a 20 s window lands on a quieter or busier stretch depending on how long the take-over took.

Needs PostgreSQL and Redis; uses its own database (created and migrated if missing) and a
private Redis prefix that it deletes afterwards.

    .venv/bin/python bench/bench_bots.py --bots 100,300,500 --seconds 60 --procs 2
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


def _forget_previous_runs() -> None:
    """Every run starts with empty order, fill, PnL and event tables: they grew by ~100k rows a
    run, and a bench database of 1.7M orders (1.7 GB) made PostgreSQL, and so every figure,
    slower run after run. Only ever on this bench's own database."""
    from django.db import connection

    name = connection.settings_dict["NAME"]
    if not name.startswith("mmsite_bench"):
        raise SystemExit(f"bench_bots: refusing to empty tables of database {name!r} (not a bench database)")
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE orders_fill, orders_order, portfolio_pnlsnapshot, bots_botevent, core_incident CASCADE"
        )
    # And the paper venues' state of the previous run (this run's private Redis prefix): else
    # each take-over finds the previous run's trades missing from the emptied tables and
    # records them again, and the logs grow from run to run.
    import redis
    from django.conf import settings

    client = redis.Redis.from_url(settings.REDIS_URL)
    for pattern in ("paper:*", "placelog"):
        for key in client.scan_iter(match=f"{settings.REDIS_PREFIX}:{pattern}", count=1000):
            client.delete(key)


def _setup(n: int):

    from apps.accounts.models import User
    from apps.bots.models import Bot
    from apps.bots.services import bot_create
    from apps.exchanges.models import ExchangeAccount, Market
    from apps.exchanges.services import exchange_account_create

    Bot.objects.filter(owner__username="bench").update(desired_state="stopped", actual_state="stopped")
    _forget_previous_runs()
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


def _pct(values: list[int], q: float) -> float:
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] / 1e6


def _run(n: int, seconds: float, procs: int) -> dict:
    """``procs`` host processes (the production Host, each as a bots/feeds worker runs it) share
    the ``n`` bots (capacity n/procs each, so they spread evenly); their samples are merged."""
    import json
    import math
    import subprocess
    import tempfile

    from apps.bots.models import Bot
    from workers import lifecycle, supervisor

    bots = _setup(n)
    supervisor.tick()
    children = []
    outs = []
    for _ in range(procs):
        handle, out = tempfile.mkstemp(prefix="bench-bots-", suffix=".json")
        os.close(handle)
        outs.append(out)
        children.append(
            subprocess.Popen(
                [sys.executable, str(ROOT / "bench" / "bots_host.py"), "--capacity", str(math.ceil(n / procs)),
                 "--out", out],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT,
            )
        )  # fmt: skip

    def ask(command: str) -> list[str]:
        for child in children:
            child.stdin.write(command + "\n")
            child.stdin.flush()
        return [child.stdout.readline().strip() for child in children]

    try:
        for child in children:
            assert child.stdout.readline().strip() == "ready"
        ids = [b.pk for b in bots]
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if Bot.objects.filter(pk__in=ids, actual_state="running").count() >= n:
                break
            time.sleep(0.5)
        time.sleep(3)  # warm up: take-over, first quotes
        ask("start")
        time.sleep(seconds)
        ask("stop")
        parts = [json.loads(Path(out).read_text()) for out in outs]
    finally:
        for bot in bots:
            Bot.objects.filter(pk=bot.pk).update(desired_state="stopped")
            lifecycle.apply(bot.pk)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if (
                not Bot.objects.filter(pk__in=[b.pk for b in bots])
                .exclude(actual_state__in=["stopped", "error"])
                .exists()
            ):
                break
            time.sleep(0.5)
        for child in children:
            try:
                child.stdin.write("exit\n")
                child.stdin.flush()
                child.wait(30)
            except Exception:
                child.kill()
        for out in outs:
            os.unlink(out)

    def merged(name: str) -> list[int]:
        return [x for p in parts for x in p[name]]

    cycles = merged("cycle_ns")
    sending = merged("send_cycle_ns")
    rows = merged("order_row_wait_ns")
    redis_lat = merged("feed_latency_ns")
    e2e = merged("bot_latency_ns")
    if rows:
        print(f"  order rows awaited before places ({len(rows)}): p50 {_pct(rows, 0.5):.1f} ms, "
              f"p99 {_pct(rows, 0.99):.1f} ms")  # fmt: skip
    else:
        print("  order rows awaited before places: none (paper rows written behind the venue)")
    print(f"  feed XADD -> read and decoded on the host loop ({len(redis_lat)} entries): p90 {_pct(redis_lat, 0.9):.2f} ms, "
          f"p95 {_pct(redis_lat, 0.95):.2f} ms, p99.9 {_pct(redis_lat, 0.999):.2f} ms, "
          f"share under 5 ms {sum(1 for x in redis_lat if x < 5_000_000) / max(1, len(redis_lat)):.3f}")  # fmt: skip
    lag = merged("loop_lag_ns")
    print(f"  host event loops: a 10 ms timer runs late by p50 {_pct(lag, 0.5):.1f} ms, p99 {_pct(lag, 0.99):.1f} ms")
    turns = [t for p in parts for t in p["turns_ns"]]
    if turns:
        walls = sorted(w for w, _ in turns)
        slow = [t for t in turns if t[0] >= walls[int(0.99 * len(walls))]]
        print(f"  host loop turns with work ({len(turns)}): wall p50 {_pct(walls, 0.5):.1f} / p99 "
              f"{_pct(walls, 0.99):.1f} ms, cpu p50 {_pct([c for _, c in turns], 0.5):.1f} / p99 "
              f"{_pct([c for _, c in turns], 0.99):.1f} ms; the slowest 1 %: cpu "
              f"{sum(c for _, c in slow) / max(1, sum(w for w, _ in slow)):.0%} of their wall time")  # fmt: skip
    if all("turn_end_ns" in p for p in parts) and turns:
        print("  " + _overlaps(parts))
    trips = [x for p in parts for x in p.get("trip_passes", [])]
    if trips:
        print(f"  paper venue round trips ({len(trips)}): host loop turns from the call to its result "
              f"p50 {sorted(trips)[len(trips) // 2]}, p90 {sorted(trips)[int(0.9 * len(trips))]}, "
              f"p99 {sorted(trips)[int(0.99 * len(trips))]}, mean {sum(trips) / len(trips):.2f}")  # fmt: skip
    by_trips: dict[int, list[int]] = {}
    paired = [t for p in parts for t in p["cycle_round_trips"]]
    slowest = sorted(c for c, _ in paired)[int(0.99 * len(paired))] if paired else 0
    for took, trips in paired:
        by_trips.setdefault(min(trips, 3), []).append(took)
    for trips, tooks in sorted(by_trips.items()):
        print(f"  cycles with {trips}{'+' if trips == 3 else ''} Redis round trips: {len(tooks) / len(paired):.1%}, "
              f"p50 {_pct(tooks, 0.5):.1f} / p99 {_pct(tooks, 0.99):.1f} ms, "
              f"{sum(1 for t in tooks if t >= slowest) / max(1, sum(1 for t, _ in paired if t >= slowest)):.0%} "
              "of the slowest 1 %")  # fmt: skip
    for gen in ("0", "1", "2"):
        pauses = [x for p in parts for x in p["gc_pauses_ns"][gen]]
        if pauses:
            print(f"  garbage collections of generation {gen}: {len(pauses)}, "
                  f"p50 {_pct(pauses, 0.5):.1f} ms, max {max(pauses) / 1e6:.1f} ms, total {sum(pauses) / 1e6:.0f} ms")  # fmt: skip
            cpu = [x for p in parts for x in p.get("gc_cpu_ns", {}).get(gen, [])]
            if cpu:
                print(f"    their CPU time: p50 {_pct(cpu, 0.5):.1f} ms, max {max(cpu) / 1e6:.1f} ms, "
                      f"total {sum(cpu) / 1e6:.0f} ms")  # fmt: skip

    for p in parts:
        print(f"  host pid {p['pid']}: {p['bots']} bots, {p['feeds']} feeds, cpu {p['cpu_s'] / p['wall_s']:.2f} "
              "(its database writer threads included), "
              f"{len(p['cycle_ns'])} cycles, {p['conflated']} book events superseded; "
              f"db writer (calls, rows, s, writer-thread CPU s): {p['db_timing']}")  # fmt: skip
        if "loop_cpu_s" in p:
            writers = p["db_timing"].get("threads_cpu", (0, 0, 0, 0))[3]
            print(f"    CPU per s of wall: loop thread {p['loop_cpu_s'] / p['wall_s']:.2f}, database writer threads "
                  f"{writers / p['wall_s']:.2f} (Python holding the GIL, less libpq's own share)")  # fmt: skip
    return {
        "requested": n,
        "bots": sum(p["bots"] for p in parts),
        "cycles_per_s": len(cycles) / seconds,
        "cycle_p99_ms": _pct(cycles, 0.99),
        "send_cycle_p99_ms": _pct(sending, 0.99),
        "send_cycles": len(sending),
        "feed_to_bot_p50_ms": _pct(redis_lat, 0.5),
        "feed_to_bot_p99_ms": _pct(redis_lat, 0.99),
        "feed_to_bot_p90_ms": _pct(redis_lat, 0.90),
        "feed_to_bot_p999_ms": _pct(redis_lat, 0.999),
        "feed_to_bot_n": len(redis_lat),
        "feed_to_engine_p50_ms": _pct(e2e, 0.5),
        "feed_to_engine_p99_ms": _pct(e2e, 0.99),
        "cpu_share": sum(p["cpu_s"] / p["wall_s"] for p in parts),
        "places": sum(p["places"] for p in parts),
        "conflated": sum(p["conflated"] for p in parts),
        "db_backlog": sum(p["db_backlog"] for p in parts),
    }


def _overlaps(parts: list[dict]) -> str:
    """How many of the slowest 1 % of loop turns (all turns with work, for comparison) overlapped
    a batch of one of their process's database writer threads, or a garbage collection: what
    the loop waited for when a turn's wall time was far above its CPU time."""
    import bisect

    def hits(turns: list[tuple[int, int]], windows: list[tuple[int, int]]) -> int:
        windows = sorted(windows)
        starts = [a for a, _ in windows]
        n = 0
        for start, end in turns:
            i = bisect.bisect_left(starts, end)  # windows starting before the turn ended
            if any(b > start for _, b in windows[max(0, i - 50) : i]):
                n += 1
        return n

    walls = sorted(w for p in parts for w, _ in p["turns_ns"])
    slow_from = walls[int(0.99 * len(walls))]
    counts = {"writer": [0, 0], "gc": [0, 0]}
    total = slow = 0
    for p in parts:
        spans = [(end - w, end) for (w, _), end in zip(p["turns_ns"], p["turn_end_ns"], strict=False)]
        slow_spans = [s for s, (w, _) in zip(spans, p["turns_ns"], strict=False) if w >= slow_from]
        total += len(spans)
        slow += len(slow_spans)
        for name, windows in (("writer", p["writer_windows"]), ("gc", [tuple(x) for x in p["gc_windows"]])):
            counts[name][0] += hits(slow_spans, windows)
            counts[name][1] += hits(spans, windows)
    busy = sum(b - a for p in parts for a, b in p["writer_windows"]) / max(1, sum(p["wall_s"] for p in parts)) / 1e9
    return (
        f"the slowest 1 % of loop turns overlapped a database writer batch: {counts['writer'][0] / max(1, slow):.0%} "
        f"(all turns: {counts['writer'][1] / max(1, total):.0%}; writers busy {busy:.0%} of the time per host), "
        f"a garbage collection: {counts['gc'][0] / max(1, slow):.0%} (all turns: {counts['gc'][1] / max(1, total):.1%})"
    )


def _machine_speed() -> str:
    """One core's speed for plain Python, so runs on different machines can be compared: the
    VMs this bench runs on have differed by 2.5x or more between sessions (bench/README.md)."""
    import platform

    best = float("inf")
    for _ in range(3):
        t0 = time.process_time()
        total = 0
        for i in range(2_000_000):
            total += i
        best = min(best, time.process_time() - t0)
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"2,000,000 Python additions in {best * 1000:.0f} ms of CPU (best of 3); {model or platform.processor()}"


class _Sink:
    """A subscriber that does nothing: measures feed -> Redis -> host reader alone."""

    class wake:  # what the host's waker calls on a subscriber with new data
        @staticmethod
        def set() -> None:
            pass

    def push_market(self, item: tuple) -> None:
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
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--procs", type=int, default=2, help="host processes (bots/feeds workers) sharing the bots")
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
    print(f"machine speed: {_machine_speed()}")
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())} (1, 5, 15 min)")
    print(
        "bots  running  cycles/s  cycle p99 ms  placing-cycle p99 ms (n)  redis p50/p99 ms  "
        "feed->engine p50/p99 ms  cpu  places  superseded  db backlog"
    )
    try:
        raw = _raw(min(args.seconds, 10))
        print(
            f"   0  reader only (3 feeds, no bots): feed XADD -> read on the host loop p50 "
            f"{raw['feed_to_bot_p50_ms']:.2f} ms, p99 {raw['feed_to_bot_p99_ms']:.2f} ms",
            flush=True,
        )
        for n in [int(x) for x in args.bots.split(",")]:
            s = _run(n, args.seconds, args.procs)
            print(
                f"{n:4d}  {s['bots']:7d}  {s['cycles_per_s']:8.0f}  {s['cycle_p99_ms']:12.2f}  "
                f"{s['send_cycle_p99_ms']:14.2f} ({s['send_cycles']:5d})  "
                f"{s['feed_to_bot_p50_ms']:6.2f}/{s['feed_to_bot_p99_ms']:6.2f}  "
                f"{s['feed_to_engine_p50_ms']:9.2f}/{s['feed_to_engine_p99_ms']:7.2f}  {s['cpu_share']:.2f}"
                f"  {s['places']:6d}  {s['conflated']:10d}  {s['db_backlog']:10d}",
                flush=True,
            )
    finally:
        client = redis.Redis.from_url(settings.REDIS_URL)
        for key in client.scan_iter(match=f"{settings.REDIS_PREFIX}:*", count=1000):
            client.delete(key)
    print(
        f"reproduce: .venv/bin/python bench/bench_bots.py --bots {args.bots} --seconds {args.seconds:g} "
        f"--procs {args.procs}"
    )


if __name__ == "__main__":
    main()
