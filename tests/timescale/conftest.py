"""A real TimescaleDB for the TimescaleDB-path tests: PGlite (PostgreSQL 17 compiled to WASM)
with the TimescaleDB 2.23 extension, served on a free TCP port by ``node/server.mjs``
(``@electric-sql/pglite-socket``). Installed with ``npm ci`` from ``node/package-lock.json``.

Limits of this server (it is one PostgreSQL backend behind a socket): one client at a time
(others queue), no background workers (policies never run by themselves: tests call
``run_job``), no ``shared_preload_libraries`` (the library is loaded in-process), and COPY
FROM STDIN and very large statements crash it (``RuntimeError: unreachable`` in the WASM), so
the tests insert with multi-row INSERTs of at most a few hundred rows.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

NODE_DIR = Path(__file__).parent / "node"
ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tools() -> tuple[str, str]:
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        pytest.skip(
            "TIMESCALEDB PATH NOT CHECKED: node and npm are needed to run PGlite's TimescaleDB "
            f"(node={node}, npm={npm}); install Node.js >= 18 to run tests/timescale"
        )
    if not (NODE_DIR / "node_modules" / "@unni-craftsman" / "pglite").is_dir():
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True, timeout=600)
    return node, npm


class PGliteServer:
    def __init__(self, tmp: Path, *create: str):
        node, _npm = _tools()
        self.port = _free_port()
        self.log = tmp / f"pglite-{self.port}.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [node, "server.mjs", str(self.port), *create], cwd=NODE_DIR, stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 180
        while f"READY {self.port}" not in self.log.read_text(errors="replace"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"PGlite did not start: {self.log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.2)
        self.url = f"postgres://postgres:pglite@127.0.0.1:{self.port}/postgres?sslmode=disable"

    def env(self) -> dict[str, str]:
        return {**os.environ, "DATABASE_URL": self.url, "DJANGO_SETTINGS_MODULE": "mmsite.settings.test"}

    def manage(self, *args: str, timeout: float = 600) -> str:
        """Run ``manage.py`` against this server; returns its output (raises with it on failure)."""
        return self.python("manage.py", *args, timeout=timeout)

    def python(self, *args: str, timeout: float = 600) -> str:
        done = subprocess.run(
            [sys.executable, *args], cwd=ROOT, env=self.env(), capture_output=True, text=True, timeout=timeout
        )
        output = done.stdout + done.stderr
        if done.returncode:
            tail = self.log.read_text(errors="replace")[-1500:]
            raise AssertionError(f"{args} failed ({done.returncode}):\n{output[-4000:]}\nserver log:\n{tail}")
        return output

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@pytest.fixture(scope="module")
def timescaledb(tmp_path_factory):
    """A migrated database on a real TimescaleDB (the extension created, as in production)."""
    server = PGliteServer(tmp_path_factory.mktemp("pglite"))
    try:
        server.migrate_output = server.manage("migrate", "--no-input")
        yield server
    finally:
        server.stop()


@pytest.fixture
def timescaledb_not_preloaded(tmp_path):
    """TimescaleDB installed on the server but neither preloaded nor loaded."""
    server = PGliteServer(tmp_path, "--no-create")
    try:
        yield server
    finally:
        server.stop()
