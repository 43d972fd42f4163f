"""Stop and kill switch leave zero open orders even with a place in flight; Redis restarts,
terminated database connections and injected venue faults are survived without losing or
duplicating anything. Real Celery workers, real Redis, real PostgreSQL."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from collections import Counter

import pytest

from tests.conftest import free_port
from tests.workers.helpers import make_paper_bots, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
OPEN = ["pending_new", "open", "partially_filled"]


def running(bots) -> bool:
    from apps.bots.models import Bot

    return all(Bot.objects.get(pk=b.pk).actual_state == "running" for b in bots)


def states(bots) -> list[str]:
    from apps.bots.models import Bot

    return [Bot.objects.get(pk=b.pk).actual_state for b in bots]


def assert_nothing_lost_or_duplicated(redis, account, bots) -> None:
    from apps.orders.models import Fill, Order
    from workers import keys

    trades = [json.loads(b) for b in redis.lrange(keys.paper(account.pk, "BTC/USDT", "trades"), 0, -1)]
    db_ids = list(Fill.objects.filter(account=account).values_list("venue_trade_id", flat=True))
    assert len(db_ids) == len(set(db_ids)), "a fill was recorded twice"
    assert sorted(db_ids) == sorted(t["id"] for t in trades), "venue fills and database fills differ"
    places = Counter(fields[b"cid"] for _id, fields in redis.xrange(keys.place_log()) if fields[b"action"] == b"place")
    assert places and max(places.values()) == 1, "an order was placed twice"
    assert redis.hlen(keys.paper(account.pk, "BTC/USDT", "orders")) == 0, "orders left on the venue"
    assert not Order.objects.filter(bot__in=bots, status__in=OPEN).exists(), "orders left open in the database"


def stopped(bots) -> bool:
    """All stopped; meanwhile run the supervisor as beat would (it repeats lost commands)."""
    from workers import supervisor

    if all(s == "stopped" for s in states(bots)):
        return True
    supervisor.tick()
    return False


def stop_all(bots, *, kill: bool = False) -> None:
    from apps.bots.models import Bot
    from workers import lifecycle

    for bot in bots:
        Bot.objects.filter(pk=bot.pk).update(desired_state="stopped")
        lifecycle.apply(bot.pk, kill=kill)


def test_stop_and_kill_switch_leave_no_open_order_even_with_places_in_flight(workers, redis_client):
    from apps.accounts.models import User
    from apps.bots.controls import account_kill_switch
    from apps.bots.models import Bot
    from apps.orders.models import Order
    from workers import keys, supervisor

    # Every place spends 300 ms in flight, so the stop lands while places are on their way.
    workers.start("inflight", MM_PAPER_FAULTS="delay_ms=300,seed=3")
    user, account, bots = make_paper_bots(3, spread="0.00003")
    supervisor.tick()
    assert wait_until(lambda: running(bots), 60), states(bots)  # includes the worker starting up
    k_orders = keys.paper(account.pk, "BTC/USDT", "orders")
    assert wait_until(lambda: redis_client.hlen(k_orders) >= 4, 20)
    first, rest = bots[0], bots[1:]
    stop_all([first])
    assert wait_until(lambda: Bot.objects.get(pk=first.pk).actual_state == "stopped", 20)
    prefix = Bot.objects.get(pk=first.pk).client_id_prefix + "-"
    assert not [c for c in redis_client.hkeys(k_orders) if c.decode().startswith(prefix)]
    # The account kill switch (the bots service enqueues the same task by name; run it here).
    account_kill_switch(account=account, actor=user, on=True, reason="test")
    for bot in rest:
        from workers import lifecycle

        lifecycle.apply(bot.pk, kill=True)
    assert wait_until(lambda: all(s == "stopped" for s in states(rest)), 20), states(rest)
    time.sleep(1.0)  # anything still in flight would show up now
    assert redis_client.hlen(k_orders) == 0
    assert not Order.objects.filter(bot__in=bots, status__in=OPEN).exists()
    assert User.objects.filter(pk=user.pk).exists()
    assert_nothing_lost_or_duplicated(redis_client, account, bots)


def test_injected_timeouts_and_429_5xx_cause_no_duplicate_order_and_no_crash(workers, redis_client):
    from apps.bots.models import BotEvent
    from apps.orders.models import Order
    from workers import supervisor

    worker = workers.start("faulty", MM_PAPER_FAULTS="error=0.2,timeout=0.15,seed=5")
    _user, account, bots = make_paper_bots(3, spread="0.00003")
    supervisor.tick()
    assert wait_until(lambda: running(bots), 60), states(bots)  # includes the worker starting up
    assert wait_until(lambda: Order.objects.filter(bot__in=bots).count() >= 40, 30)
    assert worker.poll() is None, "the worker crashed"
    assert running(bots), states(bots)
    assert not BotEvent.objects.filter(bot__in=bots, code="loop_failed").exists()
    stop_all(bots)
    assert wait_until(lambda: stopped(bots), 30, interval=1.0), states(bots)
    assert_nothing_lost_or_duplicated(redis_client, account, bots)


def test_terminated_database_connections_are_survived_and_nothing_is_lost(workers, redis_client):
    from django.db import connection

    from apps.orders.models import Fill
    from workers import supervisor

    workers.start("pgkill")
    _user, account, bots = make_paper_bots(2, spread="0.00003")
    supervisor.tick()
    assert wait_until(lambda: running(bots), 60), states(bots)  # includes the worker starting up
    assert wait_until(lambda: Fill.objects.filter(bot__in=bots).count() >= 2, 40)
    for _ in range(3):  # terminate every other backend on the test database, three times
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        time.sleep(1.5)
    before = Fill.objects.filter(bot__in=bots).count()
    assert wait_until(lambda: Fill.objects.filter(bot__in=bots).count() > before, 40), "no fills after the outage"
    assert running(bots), states(bots)
    stop_all(bots)
    assert wait_until(lambda: stopped(bots), 30, interval=1.0), states(bots)
    assert_nothing_lost_or_duplicated(redis_client, account, bots)


@pytest.fixture
def private_redis(settings):
    """A private redis-server (append-only file, so a restart keeps its data) on a free port."""
    import redis

    from apps.core import health

    port = free_port()
    workdir = tempfile.mkdtemp(prefix="mm-redis-")
    cmd = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", workdir, "--appendonly", "yes",
           "--appendfsync", "always", "--save", ""]  # fmt: skip

    def start():
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=port)
        assert wait_until(lambda: _ping(client), 10)
        return p

    process = start()
    url = f"redis://127.0.0.1:{port}/0"
    old_url, old_client = settings.REDIS_URL, health._redis_client
    settings.REDIS_URL = url
    health._redis_client = None
    state = {"process": process}

    def restart(down_s: float):
        state["process"].terminate()
        state["process"].wait(10)
        time.sleep(down_s)
        state["process"] = start()

    yield url, redis.Redis(port=port), restart
    state["process"].terminate()
    state["process"].wait(10)
    shutil.rmtree(workdir, ignore_errors=True)
    settings.REDIS_URL = old_url
    health._redis_client = old_client


def _ping(client) -> bool:
    try:
        return client.ping()
    except Exception:
        return False


def test_redis_restart_mid_run_is_survived_and_nothing_is_lost(workers, private_redis):
    from apps.orders.models import Fill
    from workers import supervisor

    url, client, restart = private_redis
    workers.start("redisrestart", REDIS_URL=url, CELERY_BROKER_URL=url)
    _user, account, bots = make_paper_bots(2, spread="0.00003")
    supervisor.tick()
    assert wait_until(lambda: running(bots), 60), states(bots)  # includes the worker starting up
    assert wait_until(lambda: Fill.objects.filter(bot__in=bots).count() >= 2, 40)
    restart(down_s=8.0)  # longer than the lease TTL: loops must stop sending, then resume
    supervisor.tick()
    before = Fill.objects.filter(bot__in=bots).count()
    assert wait_until(lambda: Fill.objects.filter(bot__in=bots).count() > before, 45), "no fills after the restart"
    supervisor.tick()
    assert wait_until(lambda: running(bots), 20), states(bots)
    stop_all(bots)
    assert wait_until(lambda: stopped(bots), 30, interval=1.0), states(bots)
    assert_nothing_lost_or_duplicated(client, account, bots)
