"""The suite's own PostgreSQL cluster and Redis server, restartable at will, and network
namespaces for the partition tests. Nothing here touches the shared services."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
from pathlib import Path

from tests.conftest import free_port
from tests.workers.helpers import wait_until


def _pg_bin() -> Path:
    """MM_PG_BIN, or the newest of Debian's /usr/lib/postgresql/<version>/bin."""
    if os.environ.get("MM_PG_BIN"):
        return Path(os.environ["MM_PG_BIN"])
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    return found[-1].parent if found else Path("/usr/lib/postgresql/15/bin")


PG_BIN = _pg_bin()


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _as_postgres(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run its programs as the ``postgres`` user."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


def postgres_missing_reason() -> str:
    if not (PG_BIN / "initdb").exists():
        return f"PostgreSQL server programs not found in {PG_BIN} (set MM_PG_BIN)"
    if os.geteuid() == 0:
        try:
            import pwd

            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no 'postgres' user to run a private cluster as"
    if not shutil.which("redis-server"):
        return "redis-server is not installed"
    return ""


class PrivatePostgres:
    """A throw-away cluster (``initdb``) on its own port, listening on ``addresses``."""

    def __init__(self, root: Path, addresses: list[str]) -> None:
        self.root = root
        self.data = root / "pgdata"
        self.port = free_port()
        self.addresses = addresses
        self.log = root / "postgres.log"
        self.extra_options = ""  # more ``-c name=value`` options for the next start()
        root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(root, "postgres")
        subprocess.run(
            _as_postgres([str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync"]),
            check=True,
            capture_output=True,
        )
        with (self.data / "pg_hba.conf").open("a") as hba:
            hba.write("host all all 10.200.0.0/16 trust\n")

    def url(self, db: str, host: str = "127.0.0.1") -> str:
        return f"postgres://postgres@{host}:{self.port}/{db}"

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses={','.join(self.addresses)} "
            # fsync off is safe here (the machine does not crash, only PostgreSQL); commits stay
            # synchronous, so a commit that answered survives an immediate stop.
            f"-c fsync=off -c max_connections=300 {self.extra_options}"
        ).strip()
        cmd = [str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-t", "30", "-o", options]
        subprocess.run(_as_postgres([*cmd, "start"]), check=True, capture_output=True)

    def stop(self, mode: str = "immediate") -> None:
        """``immediate`` is a crash as far as clients and recovery are concerned."""
        subprocess.run(
            _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"]),
            capture_output=True,
        )

    def crash(self) -> None:
        """SIGQUIT to the postmaster (what ``pg_ctl stop -m immediate`` sends), without waiting
        for ``pg_ctl`` to start: the crash lands within a millisecond or so of the call."""
        pid = int((self.data / "postmaster.pid").read_text().split()[0])
        os.kill(pid, signal.SIGQUIT)
        wait_until(lambda: not (self.data / "postmaster.pid").exists(), 30)

    def create_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname="postgres", autocommit=True
        ) as c:
            c.execute(f'CREATE DATABASE "{name}"')


class PrivateRedis:
    """A ``redis-server`` with an append-only file fsynced on every write, so a restart (even
    after SIGKILL) keeps the paper venues' state, as production runs it."""

    def __init__(self, root: Path, addresses: list[str]) -> None:
        self.root = root
        self.port = free_port()
        self.addresses = addresses
        self.process: subprocess.Popen | None = None
        root.mkdir(parents=True, exist_ok=True)

    def url(self, db: int, host: str = "127.0.0.1") -> str:
        return f"redis://{host}:{self.port}/{db}"

    def start(self) -> None:
        cmd = ["redis-server", "--port", str(self.port), "--bind", *self.addresses, "--dir", str(self.root),
               "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--maxclients", "2000"]  # fmt: skip
        if self.addresses != ["127.0.0.1"]:
            # Also bound to the namespaces' veth addresses (never a public interface): protected
            # mode would refuse those clients.
            cmd += ["--protected-mode", "no"]
        with (self.root / "redis.log").open("ab") as log:
            self.process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        if not wait_until(lambda: port_open("127.0.0.1", self.port), 15):
            raise RuntimeError(f"private redis-server did not answer on {self.port}")

    def kill(self) -> None:
        """SIGKILL: a crash, not a clean shutdown."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)


class Namespaces:
    """Network namespaces each joined to this machine by a veth pair in 10.200.<n>.0/30: the
    machine's side is 10.200.<n>.1, the namespace's 10.200.<n>.2. ``cut``/``heal`` take the
    namespace's link down and up (a partition: the processes inside keep running)."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.created: list[tuple[str, str]] = []

    @staticmethod
    def unavailable_reason() -> str:
        if os.geteuid() != 0:
            return "network namespaces need root (ip netns add); NOT RUN: the partition tests were skipped"
        if not shutil.which("ip"):
            return "the 'ip' command (iproute2) is missing; NOT RUN: the partition tests were skipped"
        probe = f"mmprobe{os.getpid()}"
        made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
        if made.returncode != 0:
            return f"ip netns add failed ({made.stderr.strip()}); NOT RUN: the partition tests were skipped"
        subprocess.run(["ip", "netns", "del", probe], capture_output=True)
        return ""

    def name(self, n: int) -> str:
        return f"mm{self.tag}n{n}"

    def host_address(self, n: int) -> str:
        return f"10.200.{n}.1"

    def add(self, n: int) -> str:
        ns, outer, inner = self.name(n), f"mm{self.tag}h{n}", f"mm{self.tag}c{n}"
        run = ["ip", "netns", "exec", ns, "ip"]
        for cmd in (
            ["ip", "netns", "add", ns],
            ["ip", "link", "add", outer, "type", "veth", "peer", "name", inner],
            ["ip", "link", "set", inner, "netns", ns],
            ["ip", "addr", "add", f"10.200.{n}.1/30", "dev", outer],
            ["ip", "link", "set", outer, "up"],
            [*run, "addr", "add", f"10.200.{n}.2/30", "dev", inner],
            [*run, "link", "set", inner, "up"],
            [*run, "link", "set", "lo", "up"],
        ):
            subprocess.run(cmd, check=True, capture_output=True)
            if cmd[2] == "add" and cmd[1] == "netns":
                self.created.append((ns, outer))
        return ns

    def cut(self, n: int) -> None:
        subprocess.run(["ip", "netns", "exec", self.name(n), "ip", "link", "set", f"mm{self.tag}c{n}", "down"],
                       check=True)  # fmt: skip

    def heal(self, n: int) -> None:
        subprocess.run(["ip", "netns", "exec", self.name(n), "ip", "link", "set", f"mm{self.tag}c{n}", "up"],
                       check=True)  # fmt: skip

    def remove_all(self) -> None:
        for ns, outer in self.created:
            subprocess.run(["ip", "link", "del", outer], capture_output=True)
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        self.created.clear()
