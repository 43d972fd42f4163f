"""/healthz follows the real control plane: a real `default` worker and a real beat make it 200;
killing beat (no ticks, so no supervisor runs either) or the worker makes it 503."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client

from tests.conftest import child_env
from tests.workers.helpers import wait_until

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def _start(args: list[str], log: Path) -> subprocess.Popen:
    with log.open("wb") as handle:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "mmsite", *args, "--loglevel", "WARNING"],
            cwd=ROOT, env=child_env(MM_HOST="0"), stdout=subprocess.DEVNULL, stderr=handle,
        )  # fmt: skip


def _health() -> tuple[int, dict]:
    response = Client().get("/healthz")
    return response.status_code, response.json()["checks"]


def test_healthz_reports_beat_supervisor_and_default_worker_truthfully(clean_redis, settings, tmp_path):
    from django.core.management import call_command

    call_command("install_schedules")
    settings.HEALTH_HEARTBEAT_MAX_AGE = 10  # silent for 10 s: down (faster than the default 30 s)
    worker_args = ["worker", "--queues", "default,backtests", "--concurrency", "1", "--without-mingle",
                   "--without-gossip", "--hostname", f"cp{os.getpid()}@%h"]  # fmt: skip
    beat_args = ["beat", "--schedule", "/dev/null", "--pidfile="]
    worker = _start(worker_args, tmp_path / "worker.log")
    beat = _start(beat_args, tmp_path / "beat.log")
    processes = [worker, beat]
    try:
        ok = wait_until(lambda: _health()[0] == 200, 60, interval=0.5)
        assert ok, f"{_health()}; beat log: {(tmp_path / 'beat.log').read_text()[-1500:]}"
        checks = _health()[1]
        assert checks["beat"]["up"] and checks["supervisor"]["up"] and checks["default_consumer"]["up"]

        beat.send_signal(signal.SIGKILL)
        beat.wait()
        assert wait_until(lambda: _health()[0] == 503, 30, interval=0.5), _health()
        checks = _health()[1]
        assert checks["beat"]["up"] is False and checks["workers"]["up"] and checks["default_consumer"]["up"]
        # no beat, no supervisor runs: it goes silent too
        assert wait_until(lambda: _health()[1]["supervisor"]["up"] is False, 30, interval=0.5), _health()

        beat = _start(beat_args, tmp_path / "beat2.log")
        processes.append(beat)
        assert wait_until(lambda: _health()[0] == 200, 60, interval=0.5), _health()

        worker.send_signal(signal.SIGKILL)
        worker.wait()
        assert wait_until(lambda: _health()[0] == 503, 30, interval=0.5), _health()
        assert wait_until(lambda: not _health()[1]["default_consumer"]["up"], 30, interval=0.5), _health()
        assert wait_until(lambda: not _health()[1]["supervisor"]["up"], 30, interval=0.5), _health()
        assert _health()[1]["beat"]["up"], "beat still ticks while the worker is gone"
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
