"""The suite's own services, shared by its modules: one PostgreSQL cluster and one Redis server
(each module uses its own database, Redis db number and key prefix), and — when this is root
with iproute2 — two network namespaces whose links the services also listen on."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.reliability.services import Namespaces, PrivatePostgres, PrivateRedis, postgres_missing_reason


class Services:
    def __init__(self, root: Path, namespaces: Namespaces | None) -> None:
        self.root = root
        self.namespaces = namespaces
        addresses = ["127.0.0.1"]
        if namespaces:
            addresses += [namespaces.host_address(n) for n in (1, 2)]
        self.pg = PrivatePostgres(root / "pg", addresses)
        self.redis = PrivateRedis(root / "redis", addresses)

    def start(self) -> None:
        self.pg.start()
        self.redis.start()

    def stop(self) -> None:
        self.redis.kill()
        self.pg.stop()


@pytest.fixture(scope="session")
def services():
    missing = postgres_missing_reason()
    if missing:
        pytest.skip(f"RELIABILITY SUITE NOT RUN: {missing}")
    root = Path(tempfile.mkdtemp(prefix="mm-reliability-"))
    os.chmod(root, 0o755)
    namespaces = None
    if not Namespaces.unavailable_reason():
        namespaces = Namespaces(str(os.getpid() % 10000))
        for n in (1, 2):
            namespaces.add(n)
    svc = Services(root, namespaces)
    try:
        svc.start()
        yield svc
    finally:
        svc.stop()
        if namespaces:
            namespaces.remove_all()
        shutil.rmtree(root, ignore_errors=True)


def logdir(name: str) -> Path:
    """Process logs stay in var/ after the run, for post-mortems."""
    path = Path(__file__).resolve().parents[2] / "var" / f"reliability-{name}-{os.getpid()}"
    path.mkdir(parents=True, exist_ok=True)
    return path
