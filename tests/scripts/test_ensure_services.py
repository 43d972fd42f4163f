"""The run and test commands set PostgreSQL and Redis up first: one clear line when one is
missing and cannot be set up; a private instance under var/ when the service is absent."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import redis

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str, **env: str) -> subprocess.CompletedProcess:
    full = {**os.environ, **env}
    return subprocess.run(
        [sys.executable, "scripts/ensure_services.py", *args],
        cwd=ROOT,
        env=full,
        capture_output=True,
        text=True,
        timeout=120,
    )


def port_open(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def var_dir():
    """A var directory the ``postgres`` user can reach when the tests run as root (pytest's
    tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="mm-ensure-var-"))
    os.chmod(path, 0o755)
    yield path
    run("--stop", MMSITE_VAR_DIR=str(path))
    shutil.rmtree(path, ignore_errors=True)


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


def test_missing_servers_without_install_give_one_line_each(tmp_path):
    """No server programs on this 'machine' and installing is off: one line saying so."""
    bare = {"PATH": str(tmp_path), "MMSITE_NO_INSTALL": "1", "MMSITE_PG_BIN": str(tmp_path)}
    pg = run(DATABASE_URL=f"postgres://postgres@127.0.0.1:{free_port()}/mmsite", **bare)
    assert pg.returncode == 1 and len(pg.stderr.strip().splitlines()) == 1, pg.stderr
    assert "PostgreSQL server programs (initdb, pg_ctl) are not installed" in pg.stderr
    rd = run(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0", **bare)
    assert rd.returncode == 1 and len(rd.stderr.strip().splitlines()) == 1, rd.stderr
    assert "redis-server is not installed" in rd.stderr and "Traceback" not in rd.stderr


@pytest.mark.slow
def test_absent_services_get_private_instances_under_var_which_stop(var_dir):
    """Shared services 'absent' (nothing answers at the URLs' ports): a private PostgreSQL and
    Redis are started under the var directory, used, and stopped by ``--stop``."""
    import psycopg

    pg_port, redis_port = free_port(), free_port()
    env = {
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:{pg_port}/mm_private",
        "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "MMSITE_VAR_DIR": str(var_dir),
    }
    result = run(**env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"started a private PostgreSQL on 127.0.0.1:{pg_port}" in result.stdout
    assert "created database mm_private" in result.stdout
    assert f"starting a private Redis on 127.0.0.1:{redis_port}" in result.stdout
    assert (var_dir / f"postgres-{pg_port}" / "data" / "PG_VERSION").exists()
    client = redis.Redis(port=redis_port)
    assert client.set("k", "v") and client.config_get("appendonly") == {"appendonly": "yes"}
    assert client.config_get("dir")["dir"] == str(var_dir / f"redis-{redis_port}")
    with psycopg.connect(host="127.0.0.1", port=pg_port, user="postgres", dbname="mm_private") as conn:
        assert conn.execute("SELECT current_setting('data_directory')").fetchone()[0] == str(
            var_dir / f"postgres-{pg_port}" / "data"
        )
    # A second run finds both up and changes nothing.
    again = run(**env)
    assert again.returncode == 0 and "private" not in again.stdout, again.stdout
    stopped = run("--stop", MMSITE_VAR_DIR=str(var_dir))
    assert stopped.returncode == 0
    assert "stopped the private PostgreSQL" in stopped.stdout and "stopped the private Redis" in stopped.stdout
    assert not port_open(pg_port) and not port_open(redis_port)
    # Started again from the same directories: the data is still there.
    assert run(**env).returncode == 0
    assert redis.Redis(port=redis_port).get("k") == b"v"


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


@pytest.mark.parametrize(
    ("setting", "value", "says"),
    [
        ("MMSITE_NO_START_SERVICES", "maybe", "MMSITE_NO_START_SERVICES='maybe' is not a boolean; accepted: 1/0"),
        ("DATABASE_URL", "mysql://127.0.0.1/mmsite", "DATABASE_URL='mysql://127.0.0.1/mmsite' has scheme 'mysql'"),
        ("REDIS_URL", "http://127.0.0.1:6379", "REDIS_URL='http://127.0.0.1:6379' has scheme 'http'"),
    ],
)
def test_bad_setting_is_refused_first_in_one_line_naming_it(setting, value, says):
    """Read through mmsite.env before anything is started: the services here answer, and the
    bad value is still refused, with no traceback."""
    result = run(**{setting: value})
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: configuration error: "), result.stderr
    assert says in result.stderr and "Traceback" not in result.stderr
    assert "up" not in result.stdout
