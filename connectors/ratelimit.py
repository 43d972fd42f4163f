"""Request rate limiting per exchange account, shared by every bot that trades on the account.

Both limiters are token buckets that *reserve*: ``acquire(cost)`` takes ``cost`` tokens at once,
letting the balance go negative, and sleeps for as long as the debt takes to refill. Callers
are therefore served in arrival order with one round trip each, and the long-run rate never
exceeds ``rate`` tokens per second (``burst`` tokens may be spent at once after a quiet spell).

- :class:`LocalRateLimiter` — one process (tests, paper, a single worker).
- :class:`RedisRateLimiter` — many processes: the bucket lives in Redis and is updated by one
  Lua script using Redis' own clock, so every worker on the account shares one budget.
- :func:`route_listen_key_calls` — the requests ccxt makes by itself for a user-data stream
  (listen key creation and keep-alive inside ``watchOrders`` / ``watchPositions``) spend the
  same budget.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import redis.asyncio as aioredis


class RateLimiter(Protocol):
    """Wait until ``cost`` request-weight units may be spent on the account."""

    async def acquire(self, cost: float = 1) -> None: ...


def rate_limit_key(exchange_id: str, account_id: str, *, prefix: str = "mms:ratelimit") -> str:
    """The Redis key of an exchange account's bucket, e.g. ``mms:ratelimit:binance:42``."""
    if not exchange_id or not account_id:
        raise ValueError(f"rate limit key needs an exchange id and an account id, got {exchange_id!r}, {account_id!r}")
    return f"{prefix}:{exchange_id}:{account_id}"


def _check(rate: float, burst: float) -> None:
    if not rate > 0:
        raise ValueError(f"rate: {rate!r} must be > 0 requests per second")
    if not burst >= 1:
        raise ValueError(f"burst: {burst!r} must be at least 1 request")


class LocalRateLimiter:
    """An in-process reserving token bucket. ``clock`` (seconds) and ``sleep`` are injectable."""

    def __init__(
        self,
        rate: float,
        burst: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        _check(rate, burst)
        self.rate = float(rate)
        self.burst = float(burst)
        self._clock = clock
        self._sleep = sleep
        self._tokens = float(burst)
        self._stamp = clock()

    def reserve(self, cost: float = 1) -> float:
        """Take ``cost`` tokens now and return the seconds to wait before using them."""
        if cost <= 0:
            raise ValueError(f"cost: {cost!r} must be > 0")
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        self._tokens -= cost
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    async def acquire(self, cost: float = 1) -> None:
        """Wait until ``cost`` tokens are ours."""
        wait = self.reserve(cost)
        if wait > 0:
            await self._sleep(wait)


# KEYS[1] bucket; ARGV rate (tokens/s), burst, cost. Returns the wait in microseconds.
_RESERVE_LUA = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local data = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(data[1])
local ts = tonumber(data[2])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
end
local elapsed = now - ts
if elapsed < 0 then elapsed = 0 end
tokens = math.min(burst, tokens + elapsed * rate / 1000000) - cost
redis.call('HSET', KEYS[1], 'tokens', string.format('%.6f', tokens), 'ts', now)
local debt_us = 0
if tokens < 0 then debt_us = math.ceil(-tokens * 1000000 / rate) end
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + math.ceil(debt_us / 1000) + 1000)
return debt_us
"""


class RedisRateLimiter:
    """A reserving token bucket stored in Redis, shared across processes (one Lua script)."""

    def __init__(
        self,
        redis_url: str,
        key: str,
        rate: float,
        burst: float,
        *,
        client: aioredis.Redis | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        _check(rate, burst)
        if not key:
            raise ValueError("key: empty; use rate_limit_key(exchange_id, account_id)")
        self.key = key
        self.rate = float(rate)
        self.burst = float(burst)
        self._redis = client or aioredis.from_url(redis_url)
        self._owns_client = client is None
        self._script = self._redis.register_script(_RESERVE_LUA)
        self._sleep = sleep

    async def reserve(self, cost: float = 1) -> float:
        """Take ``cost`` tokens now and return the seconds to wait before using them."""
        if cost <= 0:
            raise ValueError(f"cost: {cost!r} must be > 0")
        debt_us = await self._script(keys=[self.key], args=[self.rate, self.burst, cost])
        return int(debt_us) / 1_000_000

    async def acquire(self, cost: float = 1) -> None:
        """Wait until ``cost`` tokens are ours."""
        wait = await self.reserve(cost)
        if wait > 0:
            await self._sleep(wait)

    async def close(self) -> None:
        """Close the Redis connection if this limiter opened it."""
        if self._owns_client:
            await self._redis.aclose()


# ccxt's own requests that open and keep alive a user-data stream (Binance ``POST`` / ``PUT`` /
# ``DELETE`` ``listenKey``, spot ``userDataStream``, ``listenToken``), made inside ``watchOrders``
# / ``watchPositions`` / ``watchBalance`` and on ccxt's own keep-alive timer, never through our
# callers: matched by the request path.
_LISTEN_KEY_PATH = re.compile(r"listen[-_]?key|listen[-_]?token|userdatastream", re.IGNORECASE)
LISTEN_KEY_WEIGHT = 1  # Binance's weight of each of these requests (USD-M, COIN-M and spot)


def route_listen_key_calls(exchange: Any, limiter: RateLimiter, weight: float = LISTEN_KEY_WEIGHT) -> None:
    """Make ``exchange`` (a ccxt async exchange) spend ``weight`` of ``limiter`` before each of
    its own listen-key requests (creation, keep-alive, close), so the account's shared budget
    counts them like every request we send. Every other request is left alone: our callers
    acquire before calling ccxt. Idempotent: installing again (another limiter) replaces the
    limiter. ``exchange.listen_key_requests`` counts the requests routed."""
    state = getattr(exchange, "_listen_key_route", None)
    if state is not None:
        state["limiter"], state["weight"] = limiter, weight
        return
    state = {"limiter": limiter, "weight": weight}
    exchange._listen_key_route = state
    exchange.listen_key_requests = 0
    inner = exchange.fetch2

    async def fetch2(path, api=["public"], method="GET", params={}, config={}):  # noqa: B006 - ccxt's signature
        if isinstance(path, str) and _LISTEN_KEY_PATH.search(path):
            exchange.listen_key_requests += 1
            await state["limiter"].acquire(state["weight"])
        return await inner(path, api, method, params, config)

    exchange.fetch2 = fetch2
