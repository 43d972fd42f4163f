"""The dead man's switch of live bots (workers/deadman.py) against the fake Binance servers:

- Binance spot has no countdown cancel-all: a host cut off from Redis cancels the bot's open
  orders itself before its lease expires, and says so in the log;
- Binance USD-M has one (``countdownCancelAll``): a host frozen with SIGSTOP stops re-arming it,
  and the exchange cancels the orders when the countdown runs out.
"""

from __future__ import annotations

import threading
import time

import pytest

from tests.workers.helpers import wait_until
from tests.workers.test_live_venue import fake_binance, feed_until, make_live_bot  # noqa: F401
from tests.workers.test_resilience import private_redis  # noqa: F401

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_without_a_countdown_the_host_cancels_its_orders_when_it_cannot_renew_its_lease(
    private_redis,  # noqa: F811 - the imported fixture
    fake_binance,  # noqa: F811 - the imported fixture
    caplog,
):
    from workers import supervisor
    from workers.host import Host

    url, client, restart = private_redis
    host = Host(ttl_ms=6000, run_feeds=False, redis_url=url)
    host.start_thread()
    assert host.started.wait(5)
    try:
        _user, _account, bot = make_live_bot()
        supervisor.tick()
        assert feed_until(client, lambda: len(fake_binance.open_orders()) >= 2, 30), "the bot never quoted"
        down = threading.Thread(target=restart, args=(12.0,))
        cut_at = time.monotonic()
        down.start()
        assert wait_until(lambda: fake_binance.open_orders() == [], 10, interval=0.1), fake_binance.open_orders()
        elapsed = time.monotonic() - cut_at
        assert elapsed < 6.0, f"orders cancelled {elapsed:.1f} s after Redis went away: after the lease ttl"
        assert any(
            f"bot {bot.pk}" in r.getMessage() and "cancels the bot's" in r.getMessage() for r in caplog.records
        ), [r.getMessage() for r in caplog.records if "bot" in r.getMessage()][-5:]
        down.join(30)
    finally:
        host.stop()
