"""A real Celery worker subprocess on the default and backtests queues (solo pool), for the
arbitrage, notification and backtest task tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import child_env

ROOT = Path(__file__).resolve().parents[2]


def wait_for(predicate, timeout: float, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


@pytest.fixture(name="celery_worker")
def celery_worker_fixture(clean_redis):
    """Start a worker; ``start(**env)`` returns the process; stderr goes to var/ for post-mortems."""
    processes = []
    logs = []

    def start(queues: str = "default,backtests", **env: str) -> subprocess.Popen:
        (ROOT / "var").mkdir(exist_ok=True)  # git-ignored; a fresh clone has none
        log = (ROOT / "var" / f"test-h10-worker-{os.getpid()}-{len(processes)}.log").open("wb")
        logs.append(log)
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "mmsite",
                "worker",
                "--pool",
                "solo",
                "--queues",
                queues,
                "--hostname",
                f"h10-{os.getpid()}-{len(processes)}@%h",
                "--loglevel",
                os.environ.get("H10_WORKER_LOGLEVEL", "WARNING"),
                "--without-mingle",
                "--without-gossip",
            ],
            cwd=ROOT,
            env=child_env(**env),
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        processes.append(process)
        return process

    yield start
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    for log in logs:
        log.close()
