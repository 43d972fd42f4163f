"""Web benchmark: live-book websockets and authenticated REST lists through the real ASGI server.

1. Websockets: N clients (session-authenticated) subscribe to ``ws/book/<venue>/<symbol>/`` spread
   over G markets; the bench publishes 10 book updates a second per market to the channel layer
   (the same ``book.update`` message the feed workers send, 20 levels a side). Each update carries
   its send time and a sequence number, so every client measures delivery latency and detects a
   dropped (or coalesced) update. A step "holds" when p99 latency < 250 ms, no update is missing
   and every client connected. Steps grow until one fails.
2. REST: authenticated (token) GET of list endpoints with C concurrent keep-alive clients.

Reproduce (uses the database in DATABASE_URL, migrated; Redis keys under a private prefix):
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/mmsite .venv/bin/python -m bench.bench_web
    options: --steps 100,250,500,1000 --seconds 8 --groups 10 --web-workers 1 --rest-seconds 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.web_settings")
# Production-like: DEBUG off (no query log, no debug pages) with throwaway keys for the bench.
os.environ.setdefault("DEBUG", "0")
os.environ.setdefault("SECRET_KEY", "bench-web-" + "x" * 48)
os.environ.setdefault("ALLOWED_HOSTS", "127.0.0.1,localhost")
os.environ.setdefault("CREDENTIALS_ENCRYPTION_KEYS", "ZGV2LW9ubHkta2V5LWRvLW5vdC11c2UtaW4tcHJvZC0=")
# The per-user API throttle (6000/min by default) would cap one bench user at 100 req/s.
os.environ.setdefault("API_THROTTLE_USER", "10000000/min")
os.environ.setdefault("REDIS_PREFIX", f"mmbench-web-{os.getpid()}")
sys.path.insert(0, str(ROOT))

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402

VENUE = "bench:web"
RATE = 10  # updates per second per market
LEVELS = 20


def setup_data(groups: int) -> tuple[str, str, list[str]]:
    """A bench user with a session cookie and an API token, G bench markets, a few bots."""
    from decimal import Decimal

    from django.test import Client
    from rest_framework.authtoken.models import Token

    from apps.accounts.models import Role, User
    from apps.accounts.services import user_create
    from apps.bots.models import Bot
    from apps.bots.services import bot_create
    from apps.exchanges.models import ExchangeAccount, Market
    from apps.exchanges.services import exchange_account_create

    user = User.objects.filter(username="bench-web").first() or user_create(
        username="bench-web", password="bench-web-password-1", role=Role.TRADER, check_password=False
    )
    client = Client()
    client.force_login(user)
    cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
    token, _ = Token.objects.get_or_create(user=user)
    symbols = []
    for i in range(groups):
        symbol = f"B{i}/USDT"
        Market.objects.get_or_create(
            venue=VENUE,
            symbol=symbol,
            defaults={"base": f"B{i}", "quote": "USDT", "tick_size": Decimal("0.01"), "lot_size": Decimal("0.0001")},
        )
        symbols.append(symbol)
    alpha, _ = Market.objects.get_or_create(
        venue="sim:alpha",
        symbol="BTC/USDT",
        defaults={"base": "BTC", "quote": "USDT", "tick_size": Decimal("0.01"), "lot_size": Decimal("0.0001")},
    )
    account = ExchangeAccount.objects.filter(owner=user, label="bench paper").first() or exchange_account_create(
        owner=user, label="bench paper", venue="sim:alpha", kind="paper", paper_balances={"USDT": "10000", "BTC": "1"}
    )
    for i in range(10 - Bot.objects.filter(owner=user).count()):
        bot_create(
            owner=user,
            name=f"bench-{time.time_ns()}-{i}",
            exchange_account=account,
            market=alpha,
            strategy="fixed_spread",
            params={"order_amount": "0.001"},
            risk={"max_position_base": "1"},
        )
    return cookie, token.key, symbols


def start_server(port: int, workers: int) -> subprocess.Popen:
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "mmsite.asgi:application",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--lifespan",
        "off",
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    if workers > 1:
        cmd += ["--workers", str(workers)]
    process = subprocess.Popen(cmd, cwd=ROOT, env=dict(os.environ))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/accounts/login/", timeout=1)
            return process
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("uvicorn did not start")


def book_payload(symbol: str, seq: int) -> dict:
    mid = 100_000 + (seq % 50)
    return {
        "type": "book",
        "venue": VENUE,
        "symbol": symbol,
        "seq": seq,
        "sent": time.time_ns(),
        "bids": [[f"{mid - 0.01 * (i + 1):.2f}", "0.5000"] for i in range(LEVELS)],
        "asks": [[f"{mid + 0.01 * (i + 1):.2f}", "0.5000"] for i in range(LEVELS)],
    }


class Client:
    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.latencies_ms: list[float] = []
        self.seqs: list[int] = []
        self.error: str | None = None
        self.ready = asyncio.Event()


async def run_client(c: Client, url: str, headers: dict, stop: asyncio.Event) -> None:
    import websockets

    try:
        async with websockets.connect(url, additional_headers=headers, open_timeout=30, max_queue=None) as ws:
            c.ready.set()
            while not stop.is_set():
                try:
                    raw = await asyncio.wait_for(ws.recv(), 0.5)
                except TimeoutError:
                    continue
                now = time.time_ns()
                msg = json.loads(raw)
                if "seq" in msg:
                    c.seqs.append(msg["seq"])
                    c.latencies_ms.append((now - msg["sent"]) / 1e6)
    except Exception as exc:  # counted as a failed client
        c.error = f"{type(exc).__name__}: {exc}"
        c.ready.set()


async def ws_step(port: int, cookie: str, symbols: list[str], n: int, seconds: float) -> dict:
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    headers = {"Cookie": cookie, "Origin": f"http://127.0.0.1:{port}"}
    stop = asyncio.Event()
    clients = [Client(symbols[i % len(symbols)]) for i in range(n)]
    tasks = []
    t0 = time.monotonic()
    for start in range(0, n, 50):  # connect in batches
        for c in clients[start : start + 50]:
            url = f"ws://127.0.0.1:{port}/ws/book/{VENUE}/{c.symbol}/"
            tasks.append(asyncio.create_task(run_client(c, url, headers, stop)))
        await asyncio.gather(*(c.ready.wait() for c in clients[start : start + 50]))
    connect_s = time.monotonic() - t0
    await asyncio.sleep(1.0)  # let the group joins settle
    groups = {s: f"book.{VENUE.replace(':', '_')}.{s.replace('/', '_')}" for s in symbols}
    seq = 0
    first_seq = 1
    t_start = time.monotonic()
    next_tick = t_start
    while time.monotonic() - t_start < seconds:
        seq += 1
        await asyncio.gather(
            *(layer.group_send(g, {"type": "book.update", "book": book_payload(s, seq)}) for s, g in groups.items())
        )
        next_tick += 1 / RATE
        await asyncio.sleep(max(0.0, next_tick - time.monotonic()))
    await asyncio.sleep(1.5)  # drain
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    failed = [c for c in clients if c.error]
    lat = sorted(x for c in clients for x in c.latencies_ms)
    missing = 0
    for c in clients:
        if c.error:
            continue
        got = set(c.seqs)
        missing += sum(1 for s in range(first_seq, seq + 1) if s not in got)

    def p(q):
        return lat[min(len(lat) - 1, int(q * len(lat)))] if lat else float("nan")

    return {
        "clients": n,
        "connected": n - len(failed),
        "connect_s": round(connect_s, 1),
        "published_per_market": seq,
        "delivered": len(lat),
        "expected": (n - len(failed)) * seq,
        "missing": missing,
        "p50_ms": round(p(0.50), 1),
        "p99_ms": round(p(0.99), 1),
        "max_ms": round(lat[-1], 1) if lat else None,
        "errors": sorted({c.error for c in failed})[:3],
    }


async def rest_bench(port: int, token: str, seconds: float, concurrency: int) -> dict:
    import aiohttp

    paths = ["/api/v1/bots/", "/api/v1/markets/", "/api/v1/exchange-accounts/"]
    headers = {"Authorization": f"Token {token}"}
    counts = {"ok": 0, "bad": 0}
    statuses: dict[int, int] = {}
    lat: list[float] = []
    deadline = time.monotonic() + seconds

    async def worker(i: int, session) -> None:
        k = i
        while time.monotonic() < deadline:
            path = paths[k % len(paths)]
            k += 1
            t = time.perf_counter()
            async with session.get(f"http://127.0.0.1:{port}{path}", headers=headers) as r:
                await r.read()
                counts["ok" if r.status == 200 else "bad"] += 1
                if r.status != 200:
                    statuses[r.status] = statuses.get(r.status, 0) + 1
            lat.append((time.perf_counter() - t) * 1000)

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        t0 = time.monotonic()
        await asyncio.gather(*(worker(i, session) for i in range(concurrency)))
        elapsed = time.monotonic() - t0
    lat.sort()
    return {
        "requests": counts["ok"] + counts["bad"],
        "statuses": statuses,
        "non_200": counts["bad"],
        "req_per_s": round((counts["ok"] + counts["bad"]) / elapsed, 1),
        "p50_ms": round(statistics.median(lat), 1) if lat else None,
        "p99_ms": round(lat[int(0.99 * (len(lat) - 1))], 1) if lat else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", default="100,250,500,1000")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--groups", type=int, default=10)
    parser.add_argument("--web-workers", type=int, default=1)
    parser.add_argument("--rest-seconds", type=float, default=5.0)
    parser.add_argument("--rest-concurrency", type=int, default=32)
    parser.add_argument("--skip-ws", action="store_true")
    args = parser.parse_args()

    from tests.conftest import free_port

    cookie, token, symbols = setup_data(args.groups)
    port = free_port()
    server = start_server(port, args.web_workers)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"load {os.getloadavg()[0]:.1f}; python {platform.python_version()}; uvicorn workers {args.web_workers}"
    )
    try:
        held = 0
        if not args.skip_ws:
            for n in [int(x) for x in args.steps.split(",")]:
                r = asyncio.run(ws_step(port, cookie, symbols, n, args.seconds))
                ok = r["connected"] == n and r["missing"] == 0 and r["p99_ms"] < 250
                print(
                    f"ws {n:>5} clients ({args.groups} markets x {RATE}/s): connected {r['connected']} in "
                    f"{r['connect_s']} s, delivered {r['delivered']}/{r['expected']}, missing {r['missing']}, "
                    f"p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms, max {r['max_ms']} ms -> "
                    f"{'HELD' if ok else 'NOT held'} {r['errors'] or ''}"
                )
                if not ok:
                    break
                held = n
            print(f"websocket clients held at 10 updates/s (p99 < 250 ms, no missing update): {held}")
        r = asyncio.run(rest_bench(port, token, args.rest_seconds, args.rest_concurrency))
        print(
            f"REST lists (bots, markets, exchange-accounts; token auth; {args.rest_concurrency} concurrent): "
            f"{r['req_per_s']} req/s, p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms, {r['requests']} requests, "
            f"{r['non_200']} non-200 {r['statuses'] or ''}"
        )
    finally:
        server.terminate()
        server.wait(timeout=20)
        from apps.core.health import redis_client

        client = redis_client()
        keys = list(client.scan_iter(match=f"{settings.REDIS_PREFIX}:*", count=1000))
        if keys:
            client.delete(*keys)
    print("reproduce: DATABASE_URL=... .venv/bin/python -m bench.bench_web " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
