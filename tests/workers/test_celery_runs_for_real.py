"""A real Celery worker and a real beat process, against the test database and Redis."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client

from tests.conftest import child_env

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def celery_processes(clean_redis):
    from django.core.management import call_command

    call_command("install_schedules")
    common = [sys.executable, "-m", "celery", "-A", "mmsite"]
    worker = subprocess.Popen(
        [
            *common,
            "worker",
            "--queues",
            "default,feeds,bots,backtests",
            "--concurrency",
            "1",
            "--hostname",
            f"testworker{os.getpid()}@%h",
            "--loglevel",
            "WARNING",
            "--without-mingle",
            "--without-gossip",
        ],
        cwd=ROOT,
        env=child_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    beat = subprocess.Popen(
        [*common, "beat", "--loglevel", "WARNING", "--schedule", "/dev/null", "--pidfile="],
        cwd=ROOT,
        env=child_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    yield worker, beat
    for process in (worker, beat):
        process.terminate()
    for process in (worker, beat):
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def wait_until(predicate, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    return predicate()


def test_worker_and_beat_report_healthy_and_the_worker_runs_tasks(celery_processes, redis_client):
    worker, _beat = celery_processes
    body = wait_until(lambda: (b := Client().get("/healthz").json())["status"] == "ok" and b, timeout=45)
    assert body, f"healthz never became ok: {Client().get('/healthz').json()}; worker stderr: " + (
        worker.stderr.read1(4000).decode() if worker.poll() is not None else "running"
    )
    assert body["checks"]["workers"]["count"] >= 1
    operator = Client()
    operator.force_login(get_user_model().objects.create_superuser("healthops", password="x-long-password-1"))
    details = operator.get("/healthz").json()
    assert set(details["checks"]["workers"]["workers"][0]["queues"]) >= {"default", "feeds", "bots", "backtests"}

    from workers.maintenance import ping

    ping.delay("hello-worker")
    key = f"{settings.REDIS_PREFIX}:ping:hello-worker"
    assert wait_until(lambda: redis_client.get(key), timeout=20) == b"hello-worker"


def test_killed_worker_is_reported_down(celery_processes):
    worker, _ = celery_processes
    assert wait_until(lambda: Client().get("/healthz").json()["checks"]["workers"]["up"], timeout=45)
    worker.kill()
    worker.wait()
    # Its last heartbeat ages past the limit; the site then says the workers are down.
    from apps.core.health import heartbeat_key, redis_client

    for key in redis_client().scan_iter(match=heartbeat_key("worker", "*")):
        redis_client().set(key, b'{"ts": 0}')
    assert Client().get("/healthz").json()["checks"]["workers"]["up"] is False
