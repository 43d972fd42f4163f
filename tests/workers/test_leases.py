"""Leases with fencing tokens (workers.leases) against the real Redis: one owner at a time,
tokens that only grow, renewals that notice a take-over or an expiry, and what is said when
renewals fail."""

from __future__ import annotations

import asyncio
import logging
import socket
import time

import redis.asyncio as aioredis

from workers.leases import Lease, renew_many, renewal_client


def _keys(settings, name: str) -> tuple[str, str]:
    return f"{settings.REDIS_PREFIX}:test:{name}:lease", f"{settings.REDIS_PREFIX}:test:{name}:fence"


def test_one_owner_at_a_time_and_every_new_owner_gets_a_larger_token(clean_redis, settings):
    key, fence = _keys(settings, "one")

    async def scenario():
        r = aioredis.Redis.from_url(settings.REDIS_URL)
        a, b = Lease(r, key, fence, "host-a", 5000), Lease(r, key, fence, "host-b", 5000)
        assert await a.acquire() and a.held
        assert not await b.acquire() and not b.held  # held by a
        first = a.token
        await a.release()
        assert not a.held and a.lost_reason == "released"
        assert await b.acquire()
        assert b.token > first
        await a.release()  # a no longer owns it: its release must not free b's lease
        owner = await r.get(key)
        await r.aclose()
        return owner, b.value

    owner, value = asyncio.run(scenario())
    assert owner.decode() == value


def test_a_renewal_after_a_take_over_marks_the_lease_lost_and_says_since_when(clean_redis, settings):
    key, fence = _keys(settings, "takeover")

    async def scenario():
        r = aioredis.Redis.from_url(settings.REDIS_URL)
        a, b = Lease(r, key, fence, "host-a", 300), Lease(r, key, fence, "host-b", 5000)
        assert await a.acquire()
        await renew_many(r, [a], 300)
        assert a.held
        await asyncio.sleep(0.4)  # no renewal: it expires in Redis (and locally)
        assert not a.held
        assert await b.acquire()  # someone else takes it
        a._deadline = time.monotonic() + 10  # as if a's clock still trusted it: Redis decides
        await renew_many(r, [a], 300)
        await r.aclose()
        return a, b

    a, b = asyncio.run(scenario())
    assert not a.held and a.token == 0
    assert a.lost_reason.startswith("lease taken over or expired (")
    assert "s after its last renewal)" in a.lost_reason
    assert b.held and b.token > 0


def test_failed_renewals_are_logged_and_keep_the_lease_only_until_its_deadline(clean_redis, settings, caplog):
    key, fence = _keys(settings, "unreachable")
    unused = socket.create_server(("127.0.0.1", 0))
    port = unused.getsockname()[1]
    unused.close()  # nothing listens there: every renewal fails to connect

    async def scenario():
        r = aioredis.Redis.from_url(settings.REDIS_URL)
        lease = Lease(r, key, fence, "host-a", 1000)
        assert await lease.acquire()
        dead = renewal_client(f"redis://127.0.0.1:{port}/0")  # the host's renewal client, pointed nowhere
        with caplog.at_level(logging.WARNING, logger="workers.leases"):
            t0 = time.monotonic()
            await renew_many(dead, [lease], 1000)
            failed_in = time.monotonic() - t0  # one attempt, no retries with backoff
            still = lease.held  # within its deadline: kept, the next round may succeed
            await asyncio.sleep(1.0)
            await renew_many(dead, [lease], 1000)
        await r.aclose()
        await dead.aclose()
        return still, lease, failed_in

    still, lease, failed_in = asyncio.run(scenario())
    assert failed_in < 0.5  # redis-py's default retries took 2.8 s here: past this 1 s lease
    assert still
    assert not lease.held and lease.lost_reason.startswith("renewal failed past the lease deadline")
    assert caplog.text.count("renewing 1 leases failed") == 2
