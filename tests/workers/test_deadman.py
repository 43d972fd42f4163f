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


USDM_SYMBOL = "BTC/USDT:USDT"
COUNTDOWN_MS = 4000


def publish_usdm_book(redis_client) -> None:
    from workers import codec, keys

    mid, now = 600_000, time.time_ns()  # 60 000.0 USDT at a 0.1 tick
    blob = codec.encode_snapshot(now, [(mid - 5, 1_000)], [(mid + 5, 1_000)])
    redis_client.xadd(keys.feed_stream("binanceusdm", USDM_SYMBOL), {"e": blob, "p": now})


def test_a_frozen_host_leaves_no_open_order_once_the_exchange_countdown_runs_out(
    fake_binance,  # noqa: F811 - the imported fixture
    redis_client,
    clean_redis,
):
    import os
    import signal
    import subprocess
    import sys

    from tests.conftest import child_env
    from tests.connectors.servers.binance_usdm import FakeBinanceUsdm
    from tests.workers.conftest import ROOT
    from workers import supervisor

    usdm = fake_binance.run(lambda: FakeBinanceUsdm(fake_binance.server).install())

    def open_orders() -> list[dict]:
        return fake_binance.run(lambda: [o for o in usdm.orders.values() if o["status"] in ("NEW", "PARTIALLY_FILLED")])

    usdm_market = {"tick_size": "0.1", "lot_size": "0.001", "maker_fee": "0.0002", "taker_fee": "0.0005"}
    _user, _account, bot = make_live_bot(
        venue="binanceusdm", symbol=USDM_SYMBOL, market=usdm_market, balances={"USDT": "10000"}
    )
    supervisor.tick()
    log = (ROOT / "var" / f"test-deadman-{os.getpid()}.log").open("wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "tests.workers.live_worker", f"deadman-{os.getpid()}@%h"],
        cwd=ROOT,
        env=child_env(
            MM_NO_CHANNEL_LAYER="1",
            MM_LIVE_HTTP_BASE=fake_binance.server.http_base,
            MM_DEADMAN_COUNTDOWN_MS=str(COUNTDOWN_MS),
        ),
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    try:

        def quoting() -> bool:
            publish_usdm_book(redis_client)
            return len(open_orders()) >= 2 and len(usdm.countdowns) >= 2

        assert wait_until(quoting, 60, interval=0.3), (open_orders(), usdm.countdowns)
        assert all(o["clientOrderId"].startswith(f"mm{bot.pk}") for o in open_orders())
        assert {(symbol, ms) for _t, symbol, ms in usdm.countdowns} == {("BTCUSDT", COUNTDOWN_MS)}
        worker.send_signal(signal.SIGSTOP)
        frozen_at = time.monotonic()
        last_arm = usdm.countdowns[-1][0]
        assert wait_until(lambda: open_orders() == [], COUNTDOWN_MS / 1000 + 5, interval=0.1), open_orders()
        gone_after = time.monotonic() - frozen_at
        fired_at, _symbol, cancelled = usdm.fired[-1]
        assert cancelled >= 2
        # The venue cancelled them when the last countdown the host sent ran out, not before.
        assert COUNTDOWN_MS / 1000 - 0.2 <= fired_at - last_arm <= COUNTDOWN_MS / 1000 + 0.5
        assert gone_after <= COUNTDOWN_MS / 1000 + 1.0
    finally:
        worker.send_signal(signal.SIGCONT)
        worker.terminate()
        try:
            worker.wait(20)
        except subprocess.TimeoutExpired:
            worker.kill()
        log.close()
