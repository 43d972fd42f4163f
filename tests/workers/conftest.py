"""Real Celery workers as subprocesses (solo pool: the worker process itself hosts the bots)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import child_env

ROOT = Path(__file__).resolve().parents[2]


def worker_argv(hostname: str, loglevel: str = "WARNING", queues: str = "bots,feeds") -> list[str]:
    """``celery worker`` arguments of a bots/feeds host (solo pool) for the tests."""
    return [
        "worker",
        "--pool",
        "solo",
        "--queues",
        queues,
        "--hostname",
        hostname,
        "--loglevel",
        loglevel,
        "--without-mingle",
        "--without-gossip",
        "--without-heartbeat",
    ]


class Workers:
    """Start and kill Celery worker processes that host bots and feeds."""

    def __init__(self) -> None:
        self.processes: list[subprocess.Popen] = []
        self.logs: list = []

    def start(self, name: str, **env: str) -> subprocess.Popen:
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "mmsite", *worker_argv(f"{name}-{os.getpid()}@%h")],
            cwd=ROOT,
            env=child_env(MM_NO_CHANNEL_LAYER="1", **env),
            stdout=subprocess.DEVNULL,
            stderr=self._log(name),
        )
        self.processes.append(process)
        return process

    def _log(self, name: str):
        """Worker stderr goes to var/test-<name>-<pid>.log for post-mortems."""
        path = ROOT / "var" / f"test-{name}-{os.getpid()}.log"
        path.parent.mkdir(exist_ok=True)
        handle = path.open("wb")
        self.logs.append(handle)
        return handle

    def kill9(self, process: subprocess.Popen) -> None:
        process.send_signal(signal.SIGKILL)
        process.wait()

    def stop_all(self) -> None:
        for p in self.processes:
            if p.poll() is None:
                p.terminate()
        for p in self.processes:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        for handle in self.logs:
            handle.close()


@pytest.fixture
def workers(clean_redis):
    w = Workers()
    yield w
    w.stop_all()


@pytest.fixture
def host(clean_redis, settings):
    """A bot/feed host in this process (its own loop thread) against the real Redis and PostgreSQL."""
    from workers.host import Host

    h = Host(ttl_ms=3000)
    h.start_thread()
    assert h.started.wait(5)
    yield h
    h.stop()
