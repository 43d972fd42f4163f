"""The web server: ``mmsite.asgi:application`` in N uvicorn processes sharing one port.

    python -m mmsite.serve --host 127.0.0.1 --port 8000 --workers 2

Why not ``uvicorn --workers N``: there every worker accepts from one shared listening socket,
and asyncio accepts every pending connection in one go. Clients that open their keep-alive
connections together (a browser's six, an integration's pool, a load test) mostly land on
whichever process woke first, and stay there: measured with ``bench/bench_web.py``, all 32
connections went to one of the two processes, which ran at one core while the other idled.
Here each process opens its own socket with ``SO_REUSEPORT`` on the same address, so the
kernel spreads new connections over the processes (by a hash of the client's address and
port), as nginx's ``reuseport`` does.

The parent only supervises: it starts the processes, starts a new one when one dies (at most
one restart per second per slot), and on SIGTERM/SIGINT stops them all. Options match
uvicorn's: ``--proxy-headers`` with ``--forwarded-allow-ips`` behind a reverse proxy. The
server runs as the Procfile and the Docker image start it (websockets off permessage-deflate,
see docs/web.md; no lifespan; no access log unless ``--access-log``).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import signal
import socket
import sys
import time


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _serve(options: dict) -> None:
    import uvicorn

    sock = _listen(options["host"], options["port"])
    config = uvicorn.Config(
        "mmsite.asgi:application",
        lifespan="off",
        access_log=options["access_log"],
        log_level=options["log_level"],
        ws_per_message_deflate=False,
        proxy_headers=options["proxy_headers"],
        forwarded_allow_ips=options["forwarded_allow_ips"],
    )
    uvicorn.Server(config).run(sockets=[sock])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    parser.add_argument("--workers", type=int, default=int(os.environ.get("WEB_WORKERS", "2")))
    parser.add_argument("--proxy-headers", action="store_true", help="trust X-Forwarded-* from --forwarded-allow-ips")
    parser.add_argument("--forwarded-allow-ips", default=os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1"))
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--access-log", action="store_true")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error(f"--workers {args.workers}: at least 1")
    options = vars(args)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mmsite.settings.local")
    from django.conf import settings

    from mmsite.env import ConfigurationError

    try:
        settings.INSTALLED_APPS  # noqa: B018 - reads (and checks) every setting once, here
    except ConfigurationError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    # Fail here, with one line, if the address cannot be used (the children would all fail).
    try:
        _listen(args.host, args.port).close()
    except OSError as exc:
        print(f"mmsite.serve: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1

    context = multiprocessing.get_context("spawn")
    children: list = [None] * args.workers
    started_at = [0.0] * args.workers
    stopping = False

    def stop(signum, frame) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"mmsite.serve: {args.workers} processes on http://{args.host}:{args.port}", flush=True)
    while not stopping:
        for slot, child in enumerate(children):
            if child is not None and child.is_alive():
                continue
            if child is not None:
                print(f"mmsite.serve: process {child.pid} exited ({child.exitcode}); starting another", flush=True)
            if time.monotonic() - started_at[slot] < 1.0:
                continue  # crashing at start-up: retry at most once a second
            started_at[slot] = time.monotonic()
            children[slot] = context.Process(target=_serve, args=(options,), name=f"web-{slot}", daemon=False)
            children[slot].start()
        time.sleep(0.2)
    for child in children:
        if child is not None and child.is_alive():
            child.terminate()  # uvicorn finishes open requests, then exits
    deadline = time.monotonic() + 20
    for child in children:
        if child is not None:
            child.join(max(0.1, deadline - time.monotonic()))
            if child.is_alive():
                child.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
