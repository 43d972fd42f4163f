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
    options: --steps 100,250,500,1000 --seconds 8 --groups 10 --web-workers 2 --rest-seconds 5
    --rest-users 8 --rest-concurrency 32 --server-deflate --skip-ws --skip-rest
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mmsite.settings.local")
# Production-like: DEBUG off (no query log, no debug pages) with throwaway keys for the bench.
os.environ.setdefault("DEBUG", "0")
os.environ.setdefault("SECRET_KEY", "bench-web-" + "x" * 48)
os.environ.setdefault("ALLOWED_HOSTS", "127.0.0.1,localhost")
os.environ.setdefault("CREDENTIALS_ENCRYPTION_KEYS", "ZGV2LW9ubHkta2V5LWRvLW5vdC11c2UtaW4tcHJvZC0=")
# The REST part spreads its clients over several users so the production per-user throttle
# (6000/min) stays on and in the measured path; set API_THROTTLE_USER to measure another rate.
os.environ.setdefault("REDIS_PREFIX", f"mmbench-web-{os.getpid()}")
sys.path.insert(0, str(ROOT))

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402

VENUE = "bench:web"
RATE = 10  # updates per second per market
# permessage-deflate as browsers negotiate it; "--no-deflate" measures without compression.
COMPRESSION = None if "--no-deflate" in sys.argv else "deflate"
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


def setup_rest_users(count: int) -> list[str]:
    """``count`` traders, each with an API token, a paper account and 10 bots; returns the tokens."""
    from rest_framework.authtoken.models import Token

    from apps.accounts.models import Role, User
    from apps.accounts.services import user_create
    from apps.bots.models import Bot
    from apps.bots.services import bot_create
    from apps.exchanges.models import ExchangeAccount, Market
    from apps.exchanges.services import exchange_account_create

    alpha = Market.objects.get(venue="sim:alpha", symbol="BTC/USDT")
    tokens = []
    for n in range(count):
        name = f"bench-web-rest-{n}"
        user = User.objects.filter(username=name).first() or user_create(
            username=name, password="bench-web-password-1", role=Role.TRADER, check_password=False
        )
        account = ExchangeAccount.objects.filter(owner=user).first() or exchange_account_create(
            owner=user, label="bench paper", venue="sim:alpha", kind="paper", paper_balances={"USDT": "10000"}
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
        tokens.append(Token.objects.get_or_create(user=user)[0].key)
    return tokens


def start_server(port: int, workers: int, ws_deflate: bool = False, app: str = "") -> subprocess.Popen:
    """The web server as the Procfile runs it (its ``web:`` line: gunicorn with uvicorn workers,
    one SO_REUSEPORT socket per worker, permessage-deflate off), with ``app`` instead of
    ``mmsite.asgi:application`` when given (a comparison, e.g. ``bench.asgi_django:application``).
    ``ws_deflate`` runs plain uvicorn with permessage-deflate on instead (the experiment in
    docs/web.md)."""
    env = dict(os.environ, HOST="127.0.0.1", PORT=str(port), WEB_WORKERS=str(workers))
    if ws_deflate:
        cmd = [sys.executable, "-m", "uvicorn", app or "mmsite.asgi:application", "--host", "127.0.0.1",
               "--port", str(port), "--lifespan", "off", "--no-access-log", "--log-level", "warning",
               "--workers", str(workers)]  # fmt: skip
    else:
        web = next(line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith("web:"))
        command = web.split(":", 1)[1].strip() + " --log-level warning"
        if app:
            command = command.replace("mmsite.asgi:application", app)
        cmd = ["/bin/sh", "-c", "exec " + command]
    process = subprocess.Popen(cmd, cwd=ROOT, env=env)
    deadline = time.monotonic() + 60
    wanted = 1 if ws_deflate else workers  # one listening socket per process with SO_REUSEPORT
    while time.monotonic() < deadline:
        try:
            if _listening(port) >= wanted:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/accounts/login/", timeout=1)
                return process
        except OSError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError("the web server did not start")


def _listening(port: int) -> int:
    """Listening TCP sockets on ``port`` (IPv4), from /proc/net/tcp."""
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
            count += 1
    return count


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


def _header(raw: str) -> tuple[int | None, int]:
    """``seq`` and ``sent`` from the start of a book message without parsing the levels (keeps
    the client process cheap, so the figures describe the server)."""
    i = raw.find('"seq": ')
    if i < 0:
        return None, 0
    j = raw.find(",", i)
    k = raw.find('"sent": ', j)
    m = raw.find(",", k)
    return int(raw[i + 7 : j]), int(raw[k + 8 : m])


def _publisher(symbols: list[str], seconds: float, start_at: float, count) -> None:
    """Child process: 10 book updates a second per market to the channel layer."""
    from channels.layers import get_channel_layer

    async def run() -> None:
        layer = get_channel_layer()
        groups = {s: f"book.{VENUE.replace(':', '_')}.{s.replace('/', '_')}" for s in symbols}
        await asyncio.sleep(max(0.0, start_at - time.time()))
        seq = 0
        t_start = time.monotonic()
        next_tick = t_start
        while time.monotonic() - t_start < seconds:
            seq += 1
            await asyncio.gather(
                *(layer.group_send(g, {"type": "book.update", "book": book_payload(s, seq)}) for s, g in groups.items())
            )
            count.value = seq
            next_tick += 1 / RATE
            await asyncio.sleep(max(0.0, next_tick - time.monotonic()))

    asyncio.run(run())


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
        async with websockets.connect(
            url, additional_headers=headers, open_timeout=60, max_queue=None, compression=COMPRESSION
        ) as ws:
            c.ready.set()
            async for raw in ws:  # the process cancels this task when the step ends
                now = time.time_ns()
                seq, sent = _header(raw)
                if seq is not None:
                    c.seqs.append(seq)
                    c.latencies_ms.append((now - sent) / 1e6)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # counted as a failed client
        c.error = f"{type(exc).__name__}: {exc}"
        c.ready.set()


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far (/proc/stat, all cores)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    hz = os.sysconf("SC_CLK_TCK")
    return (sum(fields) - idle) / hz, sum(fields) / hz


def _proc_cpu(keep, reaped: bool = False) -> float:
    """User + system CPU seconds so far of the processes whose (pid, command name, parent pid)
    ``keep`` accepts (Linux /proc); ``reaped`` adds the time of their children that exited."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat.rsplit(")", 1)[1].split()
        if keep(entry, name, fields[1]):
            total += sum(int(x) for x in fields[11 : 15 if reaped else 13])
    return total / os.sysconf("SC_CLK_TCK")


def cpu_of(names: tuple[str, ...]) -> float:
    """CPU seconds so far of every process whose command name is one of ``names``."""
    return _proc_cpu(lambda pid, name, ppid: name in names)


def cpu_seconds(pid: int) -> float:
    """CPU seconds so far of a process and its live children (the web server's processes)."""
    return _proc_cpu(lambda p, name, ppid: str(pid) in (p, ppid), reaped=True)


def _client_process(port: int, cookie: str, symbols: list[str], offset: int, n: int, ready, stop, count, out) -> None:
    """Child process: ``n`` websocket clients; reports latencies, missing updates and failures."""

    async def run() -> None:
        headers = {"Cookie": cookie, "Origin": f"http://127.0.0.1:{port}"}
        stop_local = asyncio.Event()
        clients = [Client(symbols[(offset + i) % len(symbols)]) for i in range(n)]
        tasks = []
        for start in range(0, n, 50):  # connect in batches
            for c in clients[start : start + 50]:
                url = f"ws://127.0.0.1:{port}/ws/book/{VENUE}/{c.symbol}/"
                tasks.append(asyncio.create_task(run_client(c, url, headers, stop_local)))
            await asyncio.gather(*(c.ready.wait() for c in clients[start : start + 50]))
        ready.release()
        while not stop.is_set():
            await asyncio.sleep(0.1)
        stop_local.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        seq = count.value
        missing = 0
        for c in clients:
            if not c.error:
                got = set(c.seqs)
                missing += sum(1 for q in range(1, seq + 1) if q not in got)
        out.put(
            {
                "latencies": [x for c in clients for x in c.latencies_ms],
                "missing": missing,
                "failed": [c.error for c in clients if c.error],
            }
        )

    asyncio.run(run())


async def ws_step(
    port: int, cookie: str, symbols: list[str], n: int, seconds: float, server_pid: int, per_process: int = 250
) -> dict:
    """Clients run in several processes (as browsers would on other machines) so the figures
    describe the server; the publisher runs in its own process too."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    count = ctx.Value("i", 0)
    ready, stop, out = ctx.Semaphore(0), ctx.Event(), ctx.Queue()
    shares = [min(per_process, n - i) for i in range(0, n, per_process)]
    t0 = time.monotonic()
    procs = []
    offset = 0
    for share in shares:
        proc = ctx.Process(target=_client_process, args=(port, cookie, symbols, offset, share, ready, stop, count, out))
        proc.start()
        procs.append(proc)
        offset += share
    for _ in shares:
        while not ready.acquire(timeout=0.2):
            await asyncio.sleep(0)
    connect_s = time.monotonic() - t0
    time.sleep(1.0)  # let the subscriptions settle
    publisher = ctx.Process(target=_publisher, args=(symbols, seconds, time.time() + 0.5, count))
    cpu0, wall0 = cpu_seconds(server_pid), time.monotonic()
    publisher.start()
    publisher.join()
    server_cpu = (cpu_seconds(server_pid) - cpu0) / (time.monotonic() - wall0)
    time.sleep(1.5)  # drain
    stop.set()
    results = [out.get(timeout=120) for _ in shares]
    for proc in procs:
        proc.join(timeout=30)
    seq = count.value
    lat = sorted(x for r in results for x in r["latencies"])
    failed = [e for r in results for e in r["failed"]]

    def pct(q: float) -> float:
        return lat[min(len(lat) - 1, int(q * len(lat)))] if lat else float("nan")

    return {
        "clients": n,
        "connected": n - len(failed),
        "connect_s": round(connect_s, 1),
        "published_per_market": seq,
        "delivered": len(lat),
        "expected": (n - len(failed)) * seq,
        "missing": sum(r["missing"] for r in results),
        "p50_ms": round(pct(0.50), 1),
        "p99_ms": round(pct(0.99), 1),
        "max_ms": round(lat[-1], 1) if lat else None,
        "errors": sorted(set(failed))[:3],
        "server_cpu": round(server_cpu, 2),
        "client_processes": len(shares),
    }


REST_PATHS = ["/api/v1/bots/", "/api/v1/markets/", "/api/v1/exchange-accounts/"]


async def rest_bench(port: int, tokens: list[str], seconds: float, concurrency: int, server_pid: int) -> dict:
    """``concurrency`` keep-alive clients, client ``i`` signed in as user ``i % len(tokens)``,
    each requesting the list endpoints round-robin for ``seconds``."""
    import aiohttp

    paths = REST_PATHS
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
            async with session.get(f"http://127.0.0.1:{port}{path}", headers=headers[i % len(headers)]) as r:
                await r.read()
                counts["ok" if r.status == 200 else "bad"] += 1
                if r.status != 200:
                    statuses[r.status] = statuses.get(r.status, 0) + 1
            lat.append((time.perf_counter() - t) * 1000)

    headers = [{"Authorization": f"Token {token}"} for token in tokens]
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        t0 = time.monotonic()
        cpu0 = cpu_seconds(server_pid)
        client0 = time.process_time()
        busy0, _ = machine_busy()
        db0 = cpu_of(("postgres", "redis-server"))
        await asyncio.gather(*(worker(i, session) for i in range(concurrency)))
        elapsed = time.monotonic() - t0
        machine_cpu = (machine_busy()[0] - busy0) / elapsed
        db_cpu = (cpu_of(("postgres", "redis-server")) - db0) / elapsed
        server_cpu = (cpu_seconds(server_pid) - cpu0) / elapsed
        client_cpu = (time.process_time() - client0) / elapsed
    lat.sort()
    return {
        "requests": counts["ok"] + counts["bad"],
        "statuses": statuses,
        "non_200": counts["bad"],
        "req_per_s": round((counts["ok"] + counts["bad"]) / elapsed, 1),
        "p50_ms": round(statistics.median(lat), 1) if lat else None,
        "p99_ms": round(lat[int(0.99 * (len(lat) - 1))], 1) if lat else None,
        "server_cpu": round(server_cpu, 2),
        "client_cpu": round(client_cpu, 2),
        "machine_cpu": round(machine_cpu, 2),
        "db_cpu": round(db_cpu, 2),
    }


def in_process(tokens: list[str], requests: int) -> None:
    """CPU per request of each REST list through Django's WSGI handler called directly (no
    server, no sockets but the database's and Redis'), one thread: the figures in docs/web.md."""
    import io

    from django.core.wsgi import get_wsgi_application

    app = get_wsgi_application()

    def call(path: str, token: str) -> int:
        environ = {
            "REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": "", "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "80", "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(b""), "wsgi.errors": sys.stderr,
            "HTTP_HOST": "127.0.0.1", "HTTP_AUTHORIZATION": f"Token {token}", "REMOTE_ADDR": "127.0.0.1",
        }  # fmt: skip
        status = []
        result = app(environ, lambda s, h, e=None: status.append(s))
        size = len(b"".join(result))
        result.close()
        assert status[0].startswith("200"), (path, status)
        return size

    total = 0.0
    for path in REST_PATHS:
        for i in range(100):  # warm caches and connections
            call(path, tokens[i % len(tokens)])
        started = time.process_time()
        for i in range(requests):
            size = call(path, tokens[i % len(tokens)])
        cpu_ms = (time.process_time() - started) / requests * 1000
        total += cpu_ms
        print(f"in-process {path}: {cpu_ms:.2f} ms CPU a request ({size} bytes)")
    print(f"in-process mean over the {len(REST_PATHS)} lists: {total / len(REST_PATHS):.2f} ms CPU a request")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", default="100,250,500,1000")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--groups", type=int, default=10)
    parser.add_argument("--web-workers", type=int, default=2, help="web server processes (Procfile: 2)")
    parser.add_argument(
        "--server-deflate", action="store_true", help="let uvicorn accept permessage-deflate (Procfile: off)"
    )
    parser.add_argument("--app", default="", help="ASGI application to serve instead of mmsite.asgi:application")
    parser.add_argument("--rest-seconds", type=float, default=5.0)
    parser.add_argument("--rest-concurrency", type=int, default=32)
    parser.add_argument("--rest-users", type=int, default=8, help="REST clients spread over this many users")
    parser.add_argument("--skip-ws", action="store_true")
    parser.add_argument("--skip-rest", action="store_true")
    parser.add_argument("--no-deflate", action="store_true", help="clients refuse permessage-deflate")
    parser.add_argument("--clients-per-process", type=int, default=250)
    parser.add_argument("--all-steps", action="store_true", help="run every step even after one fails")
    parser.add_argument("--in-process", type=int, default=0, metavar="N",
                        help="only time N requests per list in-process (no server) and exit")  # fmt: skip
    args = parser.parse_args()

    from tests.conftest import free_port

    cookie, _, symbols = setup_data(args.groups)
    tokens = setup_rest_users(args.rest_users) if not args.skip_rest else []
    if args.in_process:
        in_process(tokens, args.in_process)
        return
    port = free_port()
    server = start_server(port, args.web_workers, args.server_deflate, args.app)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"load {os.getloadavg()[0]:.1f}; python {platform.python_version()}; web processes {args.web_workers}, "
        f"server permessage-deflate {'on' if args.server_deflate else 'off'}, app {args.app or 'mmsite.asgi:application'}"
    )
    try:
        held = 0
        if not args.skip_ws:
            for n in [int(x) for x in args.steps.split(",")]:
                r = asyncio.run(ws_step(port, cookie, symbols, n, args.seconds, server.pid, args.clients_per_process))
                ok = r["connected"] == n and r["missing"] == 0 and r["p99_ms"] < 250
                print(
                    f"ws {n:>5} clients ({args.groups} markets x {RATE}/s, {r['client_processes']} client processes): connected {r['connected']} in "
                    f"{r['connect_s']} s, delivered {r['delivered']}/{r['expected']}, missing {r['missing']}, "
                    f"p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms, max {r['max_ms']} ms, server CPU {r['server_cpu']} cores -> "
                    f"{'HELD' if ok else 'NOT held'} {r['errors'] or ''}"
                )
                if ok:
                    held = max(held, n)
                elif not args.all_steps:
                    break
            print(f"websocket clients held at 10 updates/s (p99 < 250 ms, no missing update): {held}")
        if not args.skip_rest:
            asyncio.run(rest_bench(port, tokens, 1.0, 4, server.pid))  # warm every worker's imports and caches
            r = asyncio.run(rest_bench(port, tokens, args.rest_seconds, args.rest_concurrency, server.pid))
            print(
                f"REST lists (bots, markets, exchange-accounts; token auth; {args.rest_concurrency} concurrent over "
                f"{len(tokens)} users; {args.web_workers} web processes x {settings.WEB_THREADS} threads): "
                f"{r['req_per_s']} req/s, p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms, {r['requests']} requests, "
                f"{r['non_200']} non-200 {r['statuses'] or ''}, server CPU {r['server_cpu']} cores "
                f"({1000 * r['server_cpu'] / max(r['req_per_s'], 1):.2f} ms a request), bench client CPU {r['client_cpu']} cores, "
                f"PostgreSQL + Redis {r['db_cpu']} cores, "
                f"whole machine {r['machine_cpu']} of {os.cpu_count()} cores busy -> "
                f"{'MET' if r['req_per_s'] >= 500 and not r['non_200'] else 'NOT met'} (target 500 req/s)"
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
