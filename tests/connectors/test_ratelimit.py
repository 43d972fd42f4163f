"""Rate limiters: in-process bucket and the Redis bucket shared across clients and processes."""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import time
import uuid

import pytest
import redis.asyncio as aioredis

from connectors.ratelimit import LocalRateLimiter, RedisRateLimiter, rate_limit_key

REDIS_URL = "redis://127.0.0.1:6379/0"


class FakeTime:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.mark.asyncio
async def test_local_limiter_allows_burst_then_paces_at_rate() -> None:
    t = FakeTime()
    limiter = LocalRateLimiter(rate=10, burst=5, clock=t.clock, sleep=t.sleep)
    for _ in range(5):
        await limiter.acquire()
    assert t.slept == []
    start = t.now
    for _ in range(10):
        await limiter.acquire()
    # 10 more requests at 10/s take one second of waiting in total
    assert t.now - start == pytest.approx(1.0)


@pytest.mark.asyncio
async def test_local_limiter_refills_after_quiet_period_but_never_above_burst() -> None:
    t = FakeTime()
    limiter = LocalRateLimiter(rate=1, burst=3, clock=t.clock, sleep=t.sleep)
    await limiter.acquire(3)
    t.now += 60  # a long pause refills only up to the burst
    await limiter.acquire(3)
    assert t.slept == []
    await limiter.acquire(1)
    assert t.slept == [pytest.approx(1.0)]


def test_limiter_rejects_nonsense_configuration_with_named_field() -> None:
    with pytest.raises(ValueError, match="rate"):
        LocalRateLimiter(rate=0, burst=1)
    with pytest.raises(ValueError, match="burst"):
        LocalRateLimiter(rate=1, burst=0)
    with pytest.raises(ValueError, match="account id"):
        rate_limit_key("binance", "")


def _key() -> str:
    return rate_limit_key("testex", uuid.uuid4().hex, prefix="mms:test:ratelimit")


@pytest.mark.asyncio
async def test_two_redis_clients_share_one_budget() -> None:
    key = _key()
    # a slow rate, so the few milliseconds between calls refill almost nothing
    a = RedisRateLimiter(REDIS_URL, key, rate=2, burst=4)
    b = RedisRateLimiter(REDIS_URL, key, rate=2, burst=4)
    try:
        waits = []
        for limiter in (a, b, a, b, a, b, a, b):
            waits.append(await limiter.reserve(1))
        # burst of 4 is free; each further request owes 1/2 s more than the previous one,
        # whichever client asks
        assert waits[:4] == [0, 0, 0, 0]
        assert waits[4:] == pytest.approx([0.5, 1.0, 1.5, 2.0], abs=0.05)
    finally:
        r = aioredis.from_url(REDIS_URL)
        await r.delete(key)
        await r.aclose()
        await a.close()
        await b.close()


@pytest.mark.asyncio
async def test_redis_bucket_expires_when_idle() -> None:
    key = _key()
    limiter = RedisRateLimiter(REDIS_URL, key, rate=100, burst=2)
    try:
        await limiter.acquire()
        r = aioredis.from_url(REDIS_URL)
        ttl = await r.pttl(key)
        await r.aclose()
        assert 0 < ttl <= 2000 + 1000
    finally:
        await limiter.close()


def _worker(key: str, n: int, out: mp.Queue) -> None:
    async def run() -> list[float]:
        limiter = RedisRateLimiter(REDIS_URL, key, rate=50, burst=5)
        stamps = []
        for _ in range(n):
            await limiter.acquire()
            stamps.append(time.time())
        await limiter.close()
        return stamps

    out.put(asyncio.run(run()))


def test_two_processes_together_never_exceed_the_account_rate() -> None:
    key = _key()
    ctx = mp.get_context("spawn")
    out: mp.Queue = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(key, 20, out)) for _ in range(2)]
    for p in procs:
        p.start()
    stamps = sorted(out.get(timeout=30) + out.get(timeout=30))
    for p in procs:
        p.join(timeout=10)
    assert len(stamps) == 40
    # 40 requests, burst 5, rate 50/s: the last one cannot start before (40-5)/50 = 0.7 s
    span = stamps[-1] - stamps[0]
    assert span >= 0.7 - 0.05
    # and in any window of 0.2 s at most burst + 0.2*rate (+1 for edges) requests happen
    for i, s in enumerate(stamps):
        in_window = sum(1 for x in stamps[i:] if x - s < 0.2)
        assert in_window <= 5 + 10 + 1
