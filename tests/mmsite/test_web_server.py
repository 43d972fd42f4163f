"""The web server exactly as the Procfile runs it (gunicorn, uvicorn workers, one SO_REUSEPORT
socket per worker): HTTP and websockets answered by every worker, a killed worker replaced while
the other keeps serving, SIGTERM stops everything; a port in use or a bad setting is one line."""

from __future__ import annotations

import asyncio
import http.client
import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.conftest import child_env, free_port
from tests.mmsite.test_websocket import exchange, session_cookie
from tests.workers.helpers import wait_until

ROOT = Path(__file__).resolve().parents[2]


def procfile_web_command() -> str:
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith("web:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError("no web process in the Procfile")


def start_web(port: int, **env: str) -> subprocess.Popen:
    """The Procfile's web command, run by a shell as Procfile runners do."""
    return subprocess.Popen(
        ["/bin/sh", "-c", "exec " + procfile_web_command()],
        cwd=ROOT, env=child_env(HOST="127.0.0.1", PORT=str(port), **env),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


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
    """Pids of the processes listening on ``port`` (the workers: the master holds no socket)."""
    return _pids("-l", f"( sport = :{port} )")


def _serving_pid(port: int) -> int | None:
    """Pid of the process that answered on a fresh connection (from /proc: the socket's owner)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)  # a fresh worker loads Django first
    conn.request("GET", "/accounts/login/")
    response = conn.getresponse()
    response.read()
    assert response.status == 200
    local_port = conn.sock.getsockname()[1]
    pids = _pids("state", "established", f"( sport = :{port} and dport = :{local_port} )")
    conn.close()
    return pids[0] if pids else None


def _pong(port: int, cookie: str) -> dict:
    headers = {"Cookie": cookie, "Origin": "http://127.0.0.1"}
    return asyncio.run(exchange(f"ws://127.0.0.1:{port}/ws/ping/", headers, [{"type": "ping"}]))[0]


@pytest.mark.django_db(transaction=True)
def test_procfile_web_serves_http_and_websockets_and_replaces_a_killed_worker(clean_redis):
    port = free_port()
    server = start_web(port, WEB_WORKERS="2")
    try:
        workers = wait_until(lambda: len(_workers(port)) == 2 and _workers(port), 90)
        assert workers, f"two workers never listened: {_listeners(port)}"
        assert len(_listeners(port)) == 2  # one socket each, not one shared socket
        served_by = set()
        for _ in range(40):  # new connections are spread by the kernel: both processes answer
            served_by.add(_serving_pid(port))
            if served_by >= set(workers):
                break
        assert set(workers) <= served_by, (workers, served_by)
        cookie = session_cookie("webserveruser")
        assert _pong(port, cookie) == {"type": "pong", "user": "webserveruser"}

        os.kill(workers[0], signal.SIGKILL)
        now = wait_until(lambda: len(_workers(port)) == 2 and workers[0] not in _workers(port) and _workers(port), 60)
        assert now, f"the killed worker was not replaced: {_workers(port)}"
        assert workers[1] in now  # the other process kept serving
        assert _serving_pid(port) in now
        assert _pong(port, cookie) == {"type": "pong", "user": "webserveruser"}
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=40)
    assert server.returncode == 0, server.stdout.read()[-2000:]
    assert not _listeners(port)


def test_a_port_in_use_is_one_line_and_exit_1():
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        server = start_web(port, WEB_WORKERS="1")
        output, _ = server.communicate(timeout=60)
    assert server.returncode == 1, output
    assert f"web server: cannot listen on 127.0.0.1:{port}" in output and "Traceback" not in output


def test_a_bad_setting_is_one_line_and_exit_2():
    port = free_port()
    server = start_web(port, WEB_WORKERS="1", DJANGO_SETTINGS_MODULE="mmsite.settings.production",
                       ALLOWED_HOSTS="example.com", DEBUG="0", SECRET_KEY="")  # fmt: skip
    output, _ = server.communicate(timeout=60)
    assert server.returncode == 2, output
    assert "configuration error: SECRET_KEY" in output and "Traceback" not in output
