"""Fixtures for the operations tests: a private redis-server that the test may stop and restart
(the shared one is never touched), and Celery processes started as the Procfile starts them."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time

import pytest

from tests.conftest import free_port


class PrivateRedis:
    """A redis-server on a free loopback port with an append-only file (a restart keeps the data)."""

    def __init__(self) -> None:
        import redis

        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.dir = tempfile.mkdtemp(prefix="mm-ops-redis-")
        self.client = redis.Redis(port=self.port, socket_timeout=2)
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        cmd = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir,
               "--appendonly", "yes", "--appendfsync", "always", "--save", ""]  # fmt: skip
        self.process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if self.client.ping():
                    return
            except Exception:
                time.sleep(0.1)
        raise RuntimeError(f"redis-server on port {self.port} did not answer within 10 s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    def restart(self, down_s: float) -> None:
        self.stop()
        time.sleep(down_s)
        self.start()


@pytest.fixture
def private_redis():
    server = PrivateRedis()
    server.start()
    yield server
    server.stop()
    shutil.rmtree(server.dir, ignore_errors=True)
