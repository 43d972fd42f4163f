"""Make sure PostgreSQL and Redis answer, starting them when they are installed here but stopped.

Reads DATABASE_URL and REDIS_URL (same defaults as the settings). Exit 0 when both answer (and
the database exists — it is created if missing); otherwise print ONE line naming the service and
how to start it, and exit 1. Never a traceback. Set MMSITE_NO_START_SERVICES=1 to only check.
Runs with the project's virtualenv (psycopg, redis) but without Django.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from urllib.parse import unquote, urlparse

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/mmsite"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
LOCAL_HOSTS = {"", "localhost", "127.0.0.1", "::1"}


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(1)


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host or "127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for(host: str, port: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if port_open(host, port):
            return True
        time.sleep(0.3)
    return False


def may_start() -> bool:
    return os.environ.get("MMSITE_NO_START_SERVICES", "") not in ("1", "true", "yes")


def ensure_postgres(url: str) -> None:
    parsed = urlparse(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 5432
    how = "start it with: pg_ctlcluster --skip-systemctl-redirect 15 main start (or set DATABASE_URL)"
    if not port_open(host, port):
        if host in LOCAL_HOSTS and may_start() and shutil.which("pg_ctlcluster") and shutil.which("pg_lsclusters"):
            clusters = subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True).stdout.split("\n")
            for line in clusters:
                fields = line.split()
                if len(fields) >= 3 and fields[2] == str(port):
                    print(f"starting PostgreSQL {fields[0]}/{fields[1]} on port {port} ...")
                    subprocess.run(
                        ["pg_ctlcluster", "--skip-systemctl-redirect", fields[0], fields[1], "start"],
                        capture_output=True,
                    )
                    break
            if not wait_for(host, port, 20):
                fail(f"PostgreSQL is not answering at {host}:{port} and could not be started; {how}")
        else:
            fail(f"PostgreSQL is not answering at {host}:{port}; {how}")
    import psycopg

    db_name = unquote(parsed.path.lstrip("/")) or "mmsite"
    params = {
        "host": host,
        "port": port,
        "user": unquote(parsed.username or "postgres"),
        "password": unquote(parsed.password or "") or None,
        "connect_timeout": 5,
    }
    try:
        with psycopg.connect(dbname="postgres", autocommit=True, **params) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db_name,)).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{db_name}"')
                print(f"created database {db_name}")
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        fail(f"PostgreSQL at {host}:{port} refused the connection ({first}); check DATABASE_URL")


def ensure_redis(url: str) -> None:
    parsed = urlparse(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 6379
    how = 'start it with: redis-server --daemonize yes --port 6379 --save "" --appendonly no (or set REDIS_URL)'
    if not port_open(host, port):
        if host in LOCAL_HOSTS and may_start() and shutil.which("redis-server"):
            print(f"starting Redis on port {port} ...")
            subprocess.run(
                [
                    "redis-server",
                    "--daemonize",
                    "yes",
                    "--bind",
                    "127.0.0.1",
                    "-::1",
                    "--port",
                    str(port),
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ],
                capture_output=True,
            )
            if not wait_for(host, port, 10):
                fail(f"Redis is not answering at {host}:{port} and could not be started; {how}")
        else:
            fail(f"Redis is not answering at {host}:{port}; {how}")
    import redis

    try:
        redis.Redis.from_url(url, socket_timeout=3, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        fail(f"Redis at {host}:{port} did not answer PING ({exc}); check REDIS_URL")


def main() -> None:
    ensure_postgres(os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL)
    ensure_redis(os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL)
    print("PostgreSQL and Redis are up")


if __name__ == "__main__":
    main()
