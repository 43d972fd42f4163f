"""A Redis (broker) restart must not end the `default,backtests` worker: it reconnects and runs
the next task. Regression test for celery 5.7.0 / kombu 5.7.0, where the worker exited with
``Unrecoverable error: AttributeError("'NoneType' object has no attribute 'hostname'")`` when it
held an unacknowledged message at the moment the broker went away (mmsite/celery.py explains)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings

from tests.conftest import child_env
from tests.workers.helpers import wait_until

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow]


def _send_ping(url: str, value: str, **options) -> None:
    from mmsite.celery import app

    with app.connection_for_write(url) as connection:
        app.send_task("workers.maintenance.ping", args=[value], connection=connection, **options)


def test_default_worker_survives_a_redis_restart_and_then_runs_a_task(private_redis, tmp_path):
    url = private_redis.url
    log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "mmsite", "worker", "--queues", "default,backtests",
         "--concurrency", "2", "--hostname", f"brokerrestart{os.getpid()}@%h", "--loglevel", "INFO"],
        cwd=ROOT, env=child_env(REDIS_URL=url, CELERY_BROKER_URL=url, MM_HOST="0"),
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    prefix = settings.REDIS_PREFIX
    try:
        _send_ping(url, "before")
        assert wait_until(lambda: private_redis.client.get(f"{prefix}:ping:before"), 60), "worker never ran a task"
        # A task due later is held by the worker unacknowledged: that is what made the restart fatal.
        _send_ping(url, "later", countdown=600)
        unacked = f"{prefix}:celery:unacked"
        assert wait_until(lambda: private_redis.client.hlen(unacked) >= 1, 30), "the worker did not take the task"
        private_redis.restart(down_s=3.0)
        time.sleep(5.0)  # the worker notices the lost connection and reconnects (or, before the fix, exits)
        assert worker.poll() is None, f"the worker exited (code {worker.returncode}): {_tail(tmp_path)}"
        _send_ping(url, "after")
        assert wait_until(lambda: private_redis.client.get(f"{prefix}:ping:after"), 60), (
            f"no task ran after the restart: {_tail(tmp_path)}"
        )
        assert worker.poll() is None
        # The held message is kept in the broker's unacked index (restored after the visibility
        # timeout by kombu), not lost.
        assert private_redis.client.hlen(unacked) >= 1
    finally:
        worker.terminate()
        try:
            worker.wait(20)
        except subprocess.TimeoutExpired:
            worker.kill()
        log.close()


def _tail(tmp_path) -> str:
    text = (tmp_path / "worker.log").read_text(errors="replace")
    lines = [line for line in text.splitlines() if "CRITICAL" in line or "Error" in line]
    return "\n".join(lines[-8:]) or text[-2000:]
