"""Shared fixtures. Tests use the real PostgreSQL (pytest-django's test database) and the real
Redis; every Redis key of a test run carries the run's own prefix and is deleted afterwards."""

from __future__ import annotations

import pytest


def _delete_prefixed(client, prefix: str) -> None:
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    for start in range(0, len(keys), 500):
        client.delete(*keys[start : start + 500])


@pytest.fixture(scope="session")
def redis_client():
    import redis
    from django.conf import settings

    client = redis.Redis.from_url(settings.REDIS_URL)
    yield client
    _delete_prefixed(client, settings.REDIS_PREFIX)


@pytest.fixture
def clean_redis(redis_client):
    """Start the test with none of this run's keys in Redis (cache, throttles, heartbeats...)."""
    from django.conf import settings

    _delete_prefixed(redis_client, settings.REDIS_PREFIX)
    return redis_client


def child_env(**extra: str) -> dict[str, str]:
    """Environment for a process the tests start: same test database, Redis prefix and settings."""
    import os

    from django.conf import settings
    from django.db import connection

    db = connection.settings_dict
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="mmsite.settings.test",
        DATABASE_URL=f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        TEST_DATABASE_NAME=db["NAME"],
        REDIS_PREFIX=settings.REDIS_PREFIX,
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def asgi_server(transactional_db, clean_redis):
    """The real ASGI app served by uvicorn on a free local port; yields its base URL."""
    import subprocess
    import sys
    import time
    import urllib.request
    from pathlib import Path

    port = free_port()
    process = subprocess.Popen(
        [
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
        ],
        cwd=Path(__file__).resolve().parent.parent,
        env=child_env(),
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(base + "/accounts/login/", timeout=1)
            break
        except OSError:
            if process.poll() is not None:
                raise RuntimeError("uvicorn exited: " + process.stderr.read().decode()[-2000:]) from None
            time.sleep(0.2)
    yield base
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
