"""The whole system for browser tests: uvicorn (``asgi_server``), a Celery worker hosting feeds
and bots, beat, and Debian's chromium driven by Playwright (never a downloaded browser)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import child_env

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = ROOT / "artifacts" / "screenshots"


def chromium_missing_reason() -> str | None:
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        return (
            "e2e SKIPPED: Debian's chromium is not installed at /usr/bin/chromium. Install it with "
            "`apt-get install -y chromium` (scripts/test.sh does this when run as root)."
        )
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "e2e SKIPPED: the playwright Python package is missing (pip install -r requirements-dev.txt)"
    return None


@pytest.fixture
def system(asgi_server, clean_redis):
    """uvicorn + one Celery worker (feeds, bots, default) + beat; yields the site's base URL."""
    from django.core.management import call_command

    call_command("install_schedules")
    log_dir = ROOT / "var"
    log_dir.mkdir(exist_ok=True)
    common = [sys.executable, "-m", "celery", "-A", "mmsite"]
    logs = [(log_dir / f"e2e-{name}-{os.getpid()}.log").open("wb") for name in ("worker", "beat")]
    worker = subprocess.Popen(
        [
            *common,
            "worker",
            "--pool",
            "solo",
            "--queues",
            "default,feeds,bots,backtests",
            "--hostname",
            f"e2e-{os.getpid()}@%h",
            "--loglevel",
            "WARNING",
            "--without-mingle",
            "--without-gossip",
        ],
        cwd=ROOT,
        env=child_env(),
        stdout=subprocess.DEVNULL,
        stderr=logs[0],
    )
    beat = subprocess.Popen(
        [*common, "beat", "--loglevel", "WARNING", "--schedule", "/dev/null", "--pidfile="],
        cwd=ROOT,
        env=child_env(),
        stdout=subprocess.DEVNULL,
        stderr=logs[1],
    )
    try:
        yield asgi_server
    finally:
        for process in (worker, beat):
            process.terminate()
        for process in (worker, beat):
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        for handle in logs:
            handle.close()


@pytest.fixture
def browser():
    reason = chromium_missing_reason()
    if reason:
        print("\n" + "!" * 100 + "\n" + reason + "\n" + "!" * 100)
        if os.environ.get("CI"):
            # In CI a missing browser is a failure, never a quiet skip presented as a pass.
            pytest.fail(reason)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the test's own ORM calls are
    # ordinary blocking calls made between browser steps.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium"),
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            yield browser
        finally:
            browser.close()
            # ORM calls made while Playwright runs use their own connection (its context);
            # close it so the test database can be dropped at the end of the session.
            from django.db import connections

            connections.close_all()
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
