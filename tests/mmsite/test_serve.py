"""The web server launcher (``python -m mmsite.serve``): N processes, one SO_REUSEPORT socket
each, connections spread over them, a dead process replaced, SIGTERM stops everything."""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import child_env, free_port
from tests.workers.helpers import wait_until

ROOT = Path(__file__).resolve().parents[2]


def _listeners(port: int) -> set[int]:
    """Inodes of the listening IPv4 sockets on ``port``."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
            found.add(int(fields[9]))
    return found


def _pids(*ss_args: str) -> list[int]:
    out = subprocess.run(["ss", "-tnpH", *ss_args], capture_output=True, text=True).stdout
    return sorted({int(p.split("=")[1]) for p in out.replace(")", ",").split(",") if p.startswith("pid=")})


def _workers(port: int) -> list[int]:
    """Pids of the processes listening on ``port``."""
    return _pids("-l", f"( sport = :{port} )")


def _serving_pid(port: int) -> int | None:
    """Pid of the process that answered on a fresh connection (from /proc: the socket's owner)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/accounts/login/")
    response = conn.getresponse()
    response.read()
    assert response.status == 200
    local_port = conn.sock.getsockname()[1]
    pids = _pids("state", "established", f"( sport = :{port} and dport = :{local_port} )")
    conn.close()
    return pids[0] if pids else None


@pytest.mark.django_db(transaction=True)
def test_workers_share_the_port_and_a_dead_one_is_replaced(clean_redis):
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mmsite.serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "2",
         "--log-level", "warning"],
        cwd=ROOT, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        assert wait_until(lambda: len(_listeners(port)) == 2, 60)
        workers = wait_until(lambda: len(_workers(port)) == 2 and _workers(port), 60)
        assert workers
        served_by = set()
        for _ in range(40):  # new connections are spread by the kernel: both processes answer
            served_by.add(_serving_pid(port))
            if served_by >= set(workers):
                break
        assert set(workers) <= served_by, (workers, served_by)

        os.kill(workers[0], signal.SIGKILL)
        now = wait_until(lambda: len(_workers(port)) == 2 and workers[0] not in _workers(port) and _workers(port), 60)
        assert now
        assert workers[1] in now  # the other process kept serving
        assert _serving_pid(port) in now
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    assert server.returncode == 0
    assert not _listeners(port)


def test_a_port_in_use_is_one_line_and_exit_1():
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "mmsite.serve", "--port", str(port), "--workers", "1"],
            cwd=ROOT, env=child_env(), capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr


def test_a_bad_setting_is_one_line_and_exit_2():
    env = child_env(DJANGO_SETTINGS_MODULE="mmsite.settings.production", ALLOWED_HOSTS="example.com")
    env.pop("SECRET_KEY", None)
    env["DEBUG"] = "0"
    done = subprocess.run(
        [sys.executable, "-m", "mmsite.serve", "--port", str(free_port()), "--workers", "1"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]  # one line, no traceback
    assert "configuration error: SECRET_KEY" in done.stderr
