"""The position reconciliation of live perpetual bots run by a real beat process and a real Celery
worker (its live exchanges pointed at the fake Binance USD-M server in this process): the
installed schedule entry fires, the worker reads the exchange's position, and the difference
becomes one incident after two sweeps, however many follow."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import child_env
from tests.workers.conftest import ROOT
from tests.workers.helpers import wait_until
from tests.workers.test_live_perp import make_perp_bot, usdm  # noqa: F401 - fixture
from tests.workers.test_live_venue import fake_binance  # noqa: F401 - fixture
from tests.workers.test_perp_reconcile_sweep import position_reads, record_fill, set_exchange_position

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
TASK = "workers.perp_reconcile.sweep"


@pytest.fixture
def beat_and_worker(clean_redis, fake_binance):  # noqa: F811
    """Only the position sweep scheduled, every second; a worker on the default queue."""
    from django.core.management import call_command
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    call_command("install_schedules")
    PeriodicTask.objects.exclude(task=TASK).update(enabled=False)
    every_second, _ = IntervalSchedule.objects.get_or_create(every=1, period=IntervalSchedule.SECONDS)
    assert PeriodicTask.objects.filter(task=TASK, enabled=True).update(interval=every_second) == 1
    env = child_env(MM_NO_CHANNEL_LAYER="1", MM_LIVE_HTTP_BASE=fake_binance.server.http_base)
    log = (ROOT / "var" / f"test-perp-reconcile-{os.getpid()}.log").open("wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "tests.workers.live_worker", f"perprecon-{os.getpid()}@%h", "default"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    beat = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "mmsite", "beat", "--loglevel", "WARNING", "--schedule", "/dev/null"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    yield worker, beat
    for process in (worker, beat):
        process.terminate()
    for process in (worker, beat):
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
    log.close()


def test_beat_and_a_worker_report_a_position_difference_once_after_two_sweeps(
    beat_and_worker,
    fake_binance,  # noqa: F811
    usdm,  # noqa: F811
    redis_client,
):
    from apps.core.models import Incident
    from workers import perp_reconcile

    bot = make_perp_bot({"leverage": 5})  # no host runs it: the sweep judges it
    record_fill(bot, 1, "buy", "0.004")
    set_exchange_position(fake_binance, usdm, "0.010")

    incident = wait_until(lambda: Incident.objects.filter(bot=bot, kind="position_mismatch").first(), 90)
    assert incident is not None, f"no incident; positionRisk reads: {position_reads(fake_binance)}"
    assert position_reads(fake_binance) >= 2  # a first sighting, then the same difference again
    assert incident.data == {"ours": "0.004", "venue": "0.01", "tolerance": "0"}
    assert incident.account_id == bot.exchange_account_id
    seen = redis_client.get(perp_reconcile.seen_key(bot.exchange_account_id, bot.market_id))
    assert seen == b"0.004|0.01"

    reads = position_reads(fake_binance)
    assert wait_until(lambda: position_reads(fake_binance) >= reads + 3, 30)  # three more sweeps
    assert Incident.objects.filter(bot=bot, kind="position_mismatch").count() == 1

    set_exchange_position(fake_binance, usdm, "0.004")  # agreed again: the sighting is forgotten
    key = perp_reconcile.seen_key(bot.exchange_account_id, bot.market_id)
    assert wait_until(lambda: not redis_client.exists(key), 30)
