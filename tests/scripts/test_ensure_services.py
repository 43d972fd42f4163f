"""The run and test commands check PostgreSQL and Redis first: one clear line when one is
missing, and a stopped local Redis is started."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import redis

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]


def run(**env: str) -> subprocess.CompletedProcess:
    full = {**os.environ, **env}
    return subprocess.run(
        [sys.executable, "scripts/ensure_services.py"], cwd=ROOT, env=full, capture_output=True, text=True, timeout=60
    )


def test_unreachable_redis_gives_one_line_naming_it():
    port = free_port()
    result = run(REDIS_URL=f"redis://127.0.0.1:{port}/0", MMSITE_NO_START_SERVICES="1")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert "Redis is not answering" in result.stderr and str(port) in result.stderr and "redis-server" in result.stderr
    assert "Traceback" not in result.stderr


def test_unreachable_postgres_gives_one_line_naming_it():
    port = free_port()
    result = run(DATABASE_URL=f"postgres://postgres@127.0.0.1:{port}/mmsite", MMSITE_NO_START_SERVICES="1")
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert "PostgreSQL is not answering" in result.stderr and "Traceback" not in result.stderr


def test_stopped_local_redis_is_started(tmp_path):
    port = free_port()
    result = run(REDIS_URL=f"redis://127.0.0.1:{port}/0")
    client = redis.Redis(port=port)
    try:
        assert result.returncode == 0, result.stderr
        assert f"starting Redis on port {port}" in result.stdout
        assert client.ping()
    finally:
        try:
            client.shutdown(nosave=True)
        except redis.ConnectionError:
            pass
        time.sleep(0.2)


def test_missing_database_is_created():
    import psycopg

    name = f"mmsite_ensure_{os.getpid()}"
    try:
        result = run(DATABASE_URL=f"postgres://postgres@127.0.0.1:5432/{name}")
        assert result.returncode == 0, result.stderr
        assert f"created database {name}" in result.stdout
    finally:
        with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
