"""The Procfile's processes, started directly (one subprocess each, no process manager) with
the Procfile's own command lines, against the suite's private services; an agent process for
database/Redis work; and a watcher that polls ``/healthz`` all along."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.reliability.services import free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]


def procfile() -> dict[str, str]:
    """``name: command`` lines of the Procfile."""
    out = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_-]+):\s*(.+)$", line.strip())
        if match:
            out[match.group(1)] = match.group(2)
    return out


class Agent:
    """``tests/reliability/agent.py`` as a child process: call(op, **args) -> result."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self._log = log.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.reliability.agent"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )
        self._lock = threading.Lock()
        assert self._read()["result"] == "ready"

    def _read(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("the agent exited; see its log")
        return json.loads(line)

    def try_call(self, op: str, **args) -> dict:
        with self._lock:
            self.process.stdin.write(json.dumps({"op": op, "args": args}) + "\n")
            self.process.stdin.flush()
            return self._read()

    def call(self, op: str, retry_s: float = 30.0, **args):
        """The result; errors (a service still coming back) are retried for ``retry_s``."""
        deadline = time.monotonic() + retry_s
        while True:
            answer = self.try_call(op, **args)
            if answer["ok"]:
                return answer["result"]
            if time.monotonic() > deadline:
                raise RuntimeError(f"agent {op} failed: {answer['error']}\n{answer.get('trace', '')}")
            time.sleep(0.5)

    def close(self) -> None:
        self.process.stdin.close()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self._log.close()


class Stack:
    """Start, kill -9 and restart the Procfile's processes by name. ``netns`` maps a process
    name to the network namespace it runs in (``ip netns exec``)."""

    def __init__(self, env: dict[str, str], logdir: Path, netns: dict[str, str] | None = None) -> None:
        self.env = env
        self.logdir = logdir
        self.netns = netns or {}
        self.commands = procfile()
        self.processes: dict[str, subprocess.Popen] = {}
        self.envs: dict[str, dict[str, str]] = {}
        logdir.mkdir(parents=True, exist_ok=True)

    def start(self, name: str, **env: str) -> subprocess.Popen:
        if name in self.processes and self.processes[name].poll() is None:
            raise RuntimeError(f"{name} is already running")
        self.envs.setdefault(name, {**self.env, **env})
        cmd = ["bash", "-c", "exec " + self.commands[name]]
        if name in self.netns:
            cmd = ["ip", "netns", "exec", self.netns[name], *cmd]
        with (self.logdir / f"{name}.log").open("ab") as log:
            log.write(f"\n==== start {time.strftime('%H:%M:%S')} ====\n".encode())
            log.flush()
            # Own session: a kill of the group takes the process and its children, as a
            # crashed container would; kill9() hits only the main process.
            process = subprocess.Popen(
                cmd, cwd=ROOT, env=self.envs[name], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.processes[name] = process
        return process

    def pid(self, name: str) -> int:
        return self.processes[name].pid

    def alive(self, name: str) -> bool:
        return name in self.processes and self.processes[name].poll() is None

    def kill9(self, name: str) -> None:
        """SIGKILL to the main process only (what ``kill -9 <pid>`` does)."""
        process = self.processes[name]
        process.send_signal(signal.SIGKILL)
        process.wait(10)

    def leftovers(self, name: str) -> list[int]:
        """Processes still alive in the session of a dead main process (its orphaned children)."""
        sid = self.processes[name].pid
        out = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if int(fields[3]) == sid and fields[0] != "Z":  # session id, state
                    out.append(int(entry.name))
        return out

    def kill_session(self, name: str) -> None:
        try:
            os.killpg(self.processes[name].pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def log_text(self, name: str) -> str:
        return (self.logdir / f"{name}.log").read_text(errors="replace")

    def stop_all(self, graceful: bool = False) -> None:
        """SIGKILL every session (the services are thrown away next), or SIGTERM first."""
        for process in self.processes.values():
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGTERM if graceful else signal.SIGKILL)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + (8 if graceful else 2)
        for name, process in self.processes.items():
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            self.kill_session(name)


class HealthWatcher:
    """Polls ``/healthz`` twice a second from start to stop; ``samples`` are (monotonic time of
    the answer, HTTP status or 0 when the web server did not answer)."""

    def __init__(self, base_url: str) -> None:
        self.url = base_url + "/healthz"
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            at = time.monotonic()
            try:
                with urllib.request.urlopen(self.url, timeout=5) as reply:
                    status = reply.status
            except urllib.error.HTTPError as exc:
                status = exc.code
            except OSError:
                status = 0
            self.samples.append((time.monotonic(), status))  # when the answer came
            self._stop.wait(max(0.0, 0.5 - (time.monotonic() - at)))

    def between(self, start: float, end: float) -> list[int]:
        return [status for at, status in self.samples if start <= at <= end]

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


def settled_audit(agent: Agent, accounts: list[dict], bots: list[int], timeout: float = 20.0) -> dict:
    """The agent's audit once the database writers have caught up: fills still on their way
    (queued in a writer, retried after an outage) are not lost; they are lost if still missing
    after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        audit = agent.call("audit", accounts=accounts, bot_ids=bots)
        if not audit["lost"] or time.monotonic() > deadline:
            return audit
        time.sleep(1.0)


def stack_env(*, database_url: str, redis_url: str, prefix: str, port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "DJANGO_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="mmsite.settings.test",
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        CELERY_BROKER_URL=redis_url,
        REDIS_PREFIX=prefix,
        HOST="127.0.0.1",
        PORT=str(port),
        WEB_WORKERS="1",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            return reply.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def post_json(url: str, token: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Token {token}"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status, json.loads(reply.read() or b"{}")
    except urllib.error.HTTPError as exc:
        text = exc.read().decode(errors="replace")
        return exc.code, {"error": text[:500], "deadlock": "deadlock detected" in text}


__all__ = [
    "Agent",
    "HealthWatcher",
    "Stack",
    "free_port",
    "http_status",
    "post_json",
    "settled_audit",
    "stack_env",
    "wait_until",
]
