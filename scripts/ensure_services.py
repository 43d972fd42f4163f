"""Make sure PostgreSQL and Redis answer, setting them up when they do not.

Reads DATABASE_URL and REDIS_URL (same defaults and checks as the settings). When a local service does not
answer at its URL, in this order:

1. an installed system PostgreSQL cluster for that port is started (``pg_ctlcluster``);
2. the server is not installed and this is root on Debian/Ubuntu: it is installed with
   ``apt-get`` (``postgresql``, ``redis-server``);
3. otherwise the project runs a **private instance** of its own under ``var/`` (data directory
   ``var/postgres-<port>`` or ``var/redis-<port>``, listening on 127.0.0.1 at the URL's port;
   Redis with an append-only file). A private instance keeps running after the command;
   ``scripts/ensure_services.py --stop`` stops the private instances.

Every line says which of these was done. Exit 0 when both answer (the database is created if
missing); otherwise ONE line naming the service and how to start it, exit 1, never a traceback.
``MMSITE_NO_START_SERVICES=1`` only checks; ``MMSITE_NO_INSTALL=1`` never installs;
``MMSITE_VAR_DIR`` moves the private instances' directory (default ``var/`` of the project);
``MMSITE_PG_BIN`` names the directory of initdb/pg_ctl. Every one of these is read and checked
by ``mmsite.env`` (a bad value is one line naming it). Runs with the project's virtualenv
(psycopg, redis) but without Django's settings, which need the services to be up.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

LOCAL_HOSTS = {"", "localhost", "127.0.0.1", "::1"}
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from mmsite import env  # noqa: E402 - the project root is importable from here on


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(1)


def say(message: str) -> None:
    print(message, flush=True)


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host or "127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for(host: str, port: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if port_open(host, port):
            return True
        time.sleep(0.3)
    return False


def may_start() -> bool:
    return env.services_may_start()


def var_dir() -> Path:
    return Path(env.services_var_dir(str(ROOT / "var"))).resolve()


def is_root() -> bool:
    return os.geteuid() == 0


def apt_install(package: str, what: str) -> bool:
    """As root on Debian/Ubuntu (apt-get present), install ``package``; True when it worked."""
    if not env.services_may_install() or not is_root() or not shutil.which("apt-get"):
        return False
    say(f"{what} is not installed: installing it with apt-get ({package}) ...")
    child_env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", package]):
        done = subprocess.run(cmd, env=child_env, capture_output=True, text=True)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            say(f"apt-get could not install {package}: {last}")
            return False
    say(f"installed {what} with apt-get")
    return True


# --------------------------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------------------------
def pg_bindir() -> Path | None:
    """Where initdb/pg_ctl are: MMSITE_PG_BIN, PATH, or Debian's /usr/lib/postgresql/<v>/bin."""
    pg_bin = env.services_pg_bin()
    if pg_bin:
        given = Path(pg_bin)
        return given if (given / "initdb").exists() else None
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(versions[-1]).parent if versions else None


def as_postgres(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as root, its programs run as the ``postgres`` user."""
    return ["runuser", "-u", "postgres", "--", *cmd] if is_root() else cmd


def start_system_cluster(port: int) -> bool:
    """Start the Debian cluster configured for ``port``, if there is one."""
    if not (shutil.which("pg_ctlcluster") and shutil.which("pg_lsclusters")):
        return False
    for line in subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True).stdout.split("\n"):
        fields = line.split()
        if len(fields) >= 3 and fields[2] == str(port):
            say(f"starting the system PostgreSQL cluster {fields[0]}/{fields[1]} on port {port} ...")
            subprocess.run(
                ["pg_ctlcluster", "--skip-systemctl-redirect", fields[0], fields[1], "start"], capture_output=True
            )
            return True
    return False


def start_private_postgres(port: int) -> str:
    """Start (creating it first if needed) the private cluster ``var/postgres-<port>``; returns
    an error text, or "" when it was started."""
    bindir = pg_bindir()
    if bindir is None:
        return "the PostgreSQL server programs (initdb, pg_ctl) are not installed"
    if is_root():
        try:
            import pwd

            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no 'postgres' user to run a private cluster as"
    home = var_dir() / f"postgres-{port}"
    data = home / "data"
    home.mkdir(parents=True, exist_ok=True)
    if is_root():
        shutil.chown(home, "postgres")
    if not (data / "PG_VERSION").exists():
        made = subprocess.run(
            as_postgres([str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8"]),
            capture_output=True,
            text=True,
        )
        if made.returncode != 0:
            return f"initdb failed: {(made.stderr.strip().splitlines() or ['?'])[-1]}"
        say(f"created a private PostgreSQL cluster in {data}")
    log = home / "postgres.log"
    # The socket's path must stay under the kernel's 107 bytes.
    sockets = home if len(str(home)) < 80 else Path("/tmp")
    options = f"-p {port} -c listen_addresses=127.0.0.1 -k {sockets}"
    started = subprocess.run(
        as_postgres(
            [str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "30", "-o", options, "start"]
        ),
        capture_output=True,
        text=True,
    )
    if started.returncode != 0:
        return f"pg_ctl start failed (log: {log})"
    say(f"started a private PostgreSQL on 127.0.0.1:{port} (data {data}, log {log}; stop: {stop_hint()})")
    return ""


def stop_hint() -> str:
    return "scripts/ensure_services.py --stop"


def ensure_postgres(url: str) -> None:
    parsed = urlparse(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 5432
    how = "start it with: pg_ctlcluster --skip-systemctl-redirect 15 main start (or set DATABASE_URL)"
    if not port_open(host, port):
        if host not in LOCAL_HOSTS or not may_start():
            fail(f"PostgreSQL is not answering at {host}:{port}; {how}")
        problem = ""
        if not start_system_cluster(port):
            if pg_bindir() is None and apt_install("postgresql", "PostgreSQL"):
                start_system_cluster(port)  # the package's cluster, when it has this port
            if not port_open(host, port):
                problem = start_private_postgres(port)
        if (problem and not port_open(host, port)) or not wait_for(host, port, 20):
            reason = f" ({problem})" if problem else ""
            fail(f"PostgreSQL is not answering at {host}:{port} and could not be started{reason}; {how}")
    import psycopg

    db_name = unquote(parsed.path.lstrip("/")) or "mmsite"
    params = {
        "host": host,
        "port": port,
        "user": unquote(parsed.username or "postgres"),
        "password": unquote(parsed.password or "") or None,
        "connect_timeout": 5,
    }
    try:
        with psycopg.connect(dbname="postgres", autocommit=True, **params) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db_name,)).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{db_name}"')
                say(f"created database {db_name}")
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        fail(f"PostgreSQL at {host}:{port} refused the connection ({first}); check DATABASE_URL")


# --------------------------------------------------------------------------------------------
# Redis
# --------------------------------------------------------------------------------------------
def start_private_redis(port: int) -> None:
    """``var/redis-<port>``: its own directory, append-only file, pid file and log."""
    home = var_dir() / f"redis-{port}"
    home.mkdir(parents=True, exist_ok=True)
    say(f"starting a private Redis on 127.0.0.1:{port} (data {home}; stop: {stop_hint()}) ...")
    cmd = ["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "--port", str(port), "--dir", str(home),
           "--appendonly", "yes", "--save", "", "--pidfile", str(home / "redis.pid"),
           "--logfile", str(home / "redis.log")]  # fmt: skip
    subprocess.run(cmd, capture_output=True)


def ensure_redis(url: str) -> None:
    parsed = urlparse(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 6379
    how = 'start it with: redis-server --daemonize yes --port 6379 --save "" --appendonly no (or set REDIS_URL)'
    if not port_open(host, port):
        if host not in LOCAL_HOSTS or not may_start():
            fail(f"Redis is not answering at {host}:{port}; {how}")
        if not shutil.which("redis-server") and apt_install("redis-server", "Redis"):
            wait_for(host, port, 5)  # the package may have started its own service on this port
        if not port_open(host, port):
            if not shutil.which("redis-server"):
                fail(f"Redis is not answering at {host}:{port} and redis-server is not installed; {how}")
            start_private_redis(port)
        if not wait_for(host, port, 10):
            fail(f"Redis is not answering at {host}:{port} and could not be started; {how}")
    import redis

    try:
        redis.Redis.from_url(url, socket_timeout=3, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        fail(f"Redis at {host}:{port} did not answer PING ({exc}); check REDIS_URL")


# --------------------------------------------------------------------------------------------
def stop_private() -> None:
    """Stop every private instance under the var directory (their data is kept)."""
    stopped = 0
    for data in sorted(var_dir().glob("postgres-*/data")):
        if (data / "postmaster.pid").exists() and pg_bindir():
            subprocess.run(
                as_postgres([str(pg_bindir() / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]),
                capture_output=True,
            )
            say(f"stopped the private PostgreSQL in {data}")
            stopped += 1
    for pidfile in sorted(var_dir().glob("redis-*/redis.pid")):
        try:
            pid = int(pidfile.read_text().strip())
            os.kill(pid, signal.SIGTERM)  # redis-server flushes its append-only file and exits
        except (ValueError, ProcessLookupError):
            pidfile.unlink(missing_ok=True)
            continue
        for _ in range(50):
            if not Path(f"/proc/{pid}").exists():
                break
            time.sleep(0.1)
        say(f"stopped the private Redis in {pidfile.parent}")
        stopped += 1
    if not stopped:
        say(f"no private instance running under {var_dir()}")


def check_settings() -> None:
    """Read every setting once, so a bad one is refused before anything is started or stopped."""
    env.services_may_start()
    env.services_may_install()
    env.services_pg_bin()
    var_dir()


def main(argv: list[str]) -> None:
    try:
        check_settings()
        if argv[1:] == ["--stop"]:
            stop_private()
            return
        if argv[1:]:
            fail(f"unknown arguments {argv[1:]}; usage: ensure_services.py [--stop]")
        ensure_postgres(env.services_database_url())
        ensure_redis(env.services_redis_url())
    except env.ConfigurationError as exc:
        fail(f"configuration error: {exc}")
    say("PostgreSQL and Redis are up")


if __name__ == "__main__":
    main(sys.argv)
