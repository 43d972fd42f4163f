"""Redis leases with fencing tokens: exactly one owner per bot or feed.

``SET key value NX PX ttl`` where the value is ``<owner>:<token>`` and the token comes from
``INCR`` on a per-resource fencing counter, in one Lua script. The owner renews every ttl/3 with
a compare-and-extend script; a renewal that fails (someone else owns it, or Redis unreachable
until the local deadline) marks the lease lost and the loop must stop sending orders at once.
Every order place/cancel is checked against the lease value inside the same Lua script that
writes it (see :mod:`workers.paper_venue`), so a stale owner cannot write after losing it.
"""

from __future__ import annotations

import asyncio
import logging
import time

from workers import metrics

logger = logging.getLogger(__name__)

ACQUIRE = """
if redis.call('exists', KEYS[1]) == 1 then return 0 end
local t = redis.call('incr', KEYS[2])
redis.call('set', KEYS[1], ARGV[1] .. ':' .. t, 'PX', ARGV[2])
return t
"""
RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end
return 0
"""
RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""
RENEW_MANY = """
local out = {}
for i, key in ipairs(KEYS) do
  if redis.call('get', key) == ARGV[i + 1] then
    redis.call('pexpire', key, ARGV[1])
    out[i] = 1
  else
    out[i] = 0
  end
end
return out
"""
DEFAULT_TTL_MS = 6000


def renewal_client(url: str, timeout_s: float = 2.0):
    """The ``redis.asyncio`` client for renewals: one attempt per call, no retries.

    redis-py retries a timed-out or refused call 3 times with backoff by default (2.8 s for a
    refused connection here; several times ``timeout_s`` for a stalled one), which could carry
    one renewal round past the lease's ttl: the lease expired meanwhile and the late success
    came back "taken over or expired". The renewal rounds are the retry (every ttl/3, and a
    lease is kept until its local deadline), so each call fails fast instead."""
    import redis.asyncio as aioredis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    return aioredis.Redis.from_url(
        url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, retry=Retry(NoBackoff(), 0)
    )


async def renew_many(redis, leases: list[Lease], ttl_ms: int) -> None:
    """Renew many leases in one round trip; each one held or lost as :meth:`Lease.renew`."""
    held = [lease for lease in leases if lease.token > 0]
    if not held:
        return
    started = time.monotonic()
    # A round that cannot reach Redis ends by the earliest local deadline (or 0.1 s from now, when
    # that is already past), not a socket timeout later: a cut-off host gives its leases up while
    # they are still its own in Redis (each expires a ttl after its last renewal, the local
    # deadline is 0.9 of that).
    budget = max(0.1, min(lease._deadline for lease in held) - started)
    try:
        async with asyncio.timeout(budget):
            result = await redis.eval(RENEW_MANY, len(held), *[x.key for x in held], ttl_ms, *[x.value for x in held])
    except Exception as exc:
        # Kept until their deadlines (the next round may succeed); said, because a lease later
        # found expired is explained by the rounds that failed before it.
        logger.warning("renewing %d leases failed: %s", len(held), exc)
        metrics.lease_round_failed()
        for lease in held:
            if time.monotonic() >= lease._deadline:
                lease.lose(f"renewal failed past the lease deadline: {exc}")
        return
    for lease, ok in zip(held, result, strict=True):
        if ok:
            lease._renewed(started, ttl_ms)
            lease.renewals += 1
        else:
            lease._refused(started)


class Lease:
    """One lease on one resource, held (or not) by this process. Works with ``redis.asyncio``."""

    def __init__(self, redis, key: str, fence_key: str, owner: str, ttl_ms: int = DEFAULT_TTL_MS) -> None:
        self.redis = redis
        self.key = key
        self.fence_key = fence_key
        self.owner = owner
        self.ttl_ms = ttl_ms
        self.token = 0
        self.value = ""
        self._deadline = 0.0  # monotonic time after which we no longer trust we hold it
        self.renewed_at = 0.0  # monotonic time the last acquire or renewal was sent
        self.lost_reason = ""
        self.renewals = 0  # successful renewals (exported by workers.metrics)

    @property
    def held(self) -> bool:
        """Held and not past the local deadline (no Redis round trip)."""
        return self.token > 0 and time.monotonic() < self._deadline

    async def acquire(self) -> bool:
        """Take the lease if free; on success :attr:`token` is the new fencing token."""
        started = time.monotonic()
        token = int(await self.redis.eval(ACQUIRE, 2, self.key, self.fence_key, self.owner, self.ttl_ms))
        if token <= 0:
            return False
        self.token = token
        self.value = f"{self.owner}:{token}"
        self._renewed(started, self.ttl_ms)
        self.lost_reason = ""
        return True

    async def renew(self) -> bool:
        """Extend the lease if we still hold it; mark it lost otherwise."""
        if self.token <= 0:
            return False
        started = time.monotonic()
        try:
            ok = int(await self.redis.eval(RENEW, 1, self.key, self.value, self.ttl_ms))
        except Exception as exc:  # Redis unreachable: keep trying until the local deadline
            if time.monotonic() >= self._deadline:
                self.lose(f"renewal failed past the lease deadline: {exc}")
            return self.held
        if not ok:
            self._refused(started)
            return False
        self._renewed(started, self.ttl_ms)
        self.renewals += 1
        return True

    def _renewed(self, started: float, ttl_ms: int) -> None:
        """Redis extended it by ``ttl_ms`` from no earlier than ``started`` (monotonic): trusted
        until 0.9 of that."""
        self._deadline = started + ttl_ms / 1000 * 0.9
        self.renewed_at = started

    def _refused(self, started: float) -> None:
        self.lose(f"lease taken over or expired ({started - self.renewed_at:.1f} s after its last renewal)")

    async def check(self) -> bool:
        """Ask Redis whether we still hold it (one GET)."""
        if not self.held:
            return False
        try:
            current = await self.redis.get(self.key)
        except Exception:
            return self.held
        if current is None or current.decode() != self.value:
            self.lose("lease no longer ours")
            return False
        return True

    def lose(self, reason: str) -> None:
        if self.token > 0 and reason != "released":
            metrics.lease_lost(self.key)
        self.token = 0
        self._deadline = 0.0
        self.lost_reason = reason

    async def release(self) -> None:
        """Give the lease up (only if still ours)."""
        if self.value:
            try:
                await self.redis.eval(RELEASE, 1, self.key, self.value)
            except Exception:
                pass
        self.lose("released")


class SyncLease:
    """The same lease for synchronous code (Celery tasks doing one-off cleanup)."""

    def __init__(self, redis, key: str, fence_key: str, owner: str, ttl_ms: int = DEFAULT_TTL_MS) -> None:
        self.redis = redis
        self.key = key
        self.fence_key = fence_key
        self.owner = owner
        self.ttl_ms = ttl_ms
        self.token = 0
        self.value = ""

    def acquire(self) -> bool:
        token = int(self.redis.eval(ACQUIRE, 2, self.key, self.fence_key, self.owner, self.ttl_ms))
        if token > 0:
            self.token = token
            self.value = f"{self.owner}:{token}"
        return token > 0

    def release(self) -> None:
        if self.value:
            self.redis.eval(RELEASE, 1, self.key, self.value)
        self.token = 0
