"""The run command of `make demo`: every Procfile process under supervisord. A bot host killed
with -9 comes back and no other process stops (issue 23: under honcho one death stopped all)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import child_env, free_port
from tests.workers.helpers import wait_until

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def _status(config: Path) -> dict[str, tuple[str, int | None]]:
    """``{name: (state, pid)}`` from ``supervisorctl status`` (names ``procfile:<name>`` there)."""
    out = subprocess.run(
        [str(Path(sys.executable).with_name("supervisorctl")), "-c", str(config), "status"],
        capture_output=True, text=True, timeout=20,
    ).stdout  # fmt: skip
    found = {}
    for line in out.splitlines():
        fields = line.split()
        if len(fields) >= 2:
            pid = int(fields[3].rstrip(",")) if len(fields) > 3 and fields[2] == "pid" else None
            found[fields[0].removeprefix("procfile:")] = (fields[1], pid)
    return found


def _all_running(config: Path) -> dict | None:
    status = _status(config)
    return status if status and all(state == "RUNNING" for state, _pid in status.values()) else None


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


def test_a_killed_bot_host_is_restarted_and_the_others_keep_running(clean_redis, tmp_path):
    port = free_port()
    state = tmp_path / "supervisor"
    runner = subprocess.Popen(
        [sys.executable, "scripts/run_procfile.py", "--state-dir", str(state)],
        cwd=ROOT, env=child_env(HOST="127.0.0.1", PORT=str(port)), stdout=(tmp_path / "run.log").open("wb"),
        stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    config = state / "supervisord.conf"
    names = {line.split(":", 1)[0] for line in (ROOT / "Procfile").read_text().splitlines() if ":" in line}
    assert {"web", "worker", "bots", "bots2", "beat"} <= names
    pids: set[int] = set()
    try:
        running = wait_until(lambda: _all_running(config), 90, 1)
        assert running and set(running) == names, f"{_status(config)}\n{(tmp_path / 'run.log').read_text()[-2000:]}"
        assert wait_until(lambda: _answers(f"http://127.0.0.1:{port}/accounts/login/"), 60, 1), "web never answered"

        before = {name: pid for name, (_state, pid) in running.items()}
        pids |= set(before.values())
        os.kill(before["bots"], signal.SIGKILL)
        back = wait_until(
            lambda: (st := _status(config))["bots"][0] == "RUNNING" and st["bots"][1] != before["bots"] and st, 60, 1
        )
        assert back, f"the killed bot host did not come back: {_status(config)}"
        pids.add(back["bots"][1])
        others = {name: back[name] for name in names - {"bots"}}
        assert others == {name: ("RUNNING", before[name]) for name in others}, "another process stopped or restarted"
        assert _answers(f"http://127.0.0.1:{port}/accounts/login/")
        log = (tmp_path / "run.log").read_text()
        assert "exited: bots" in log and "(terminated by SIGKILL" in log, log[-2000:]
    finally:
        runner.send_signal(signal.SIGTERM)
        try:
            runner.wait(90)
        except subprocess.TimeoutExpired:
            os.killpg(runner.pid, signal.SIGKILL)
            runner.wait()
    assert not [pid for pid in pids if _alive(pid)], "processes left running after supervisord stopped"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
