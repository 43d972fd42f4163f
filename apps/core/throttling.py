"""API rate limits: a sliding-window counter in Redis, one round trip per request.

DRF's ``SimpleRateThrottle`` keeps the timestamp of every request in the window in the Django
cache: a GET, a list of up to ``rate`` floats unpickled and pickled again, and a SET per request.
At the user rate (6,000/min) that list holds thousands of entries, so its cost grows with the
client's own request rate. Here each (scope, client) has one integer counter per window; the
limit is checked against the sliding-window estimate

    previous window's count x (share of the previous window still inside the last ``period``)
    + this window's count

which approximates a true sliding window without storing requests (the approach of
Cloudflare's and Kong's limiters). A refused request is not counted, as in DRF. The check and
the increment are one Lua call, so concurrent requests from several web processes cannot both
take the last slot.

If Redis cannot be reached the request is let through and a warning is logged: the rate limit
protects capacity, it is not an access control (tokens and permissions are).
"""

from __future__ import annotations

import logging
import time

from django.conf import settings
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle

from apps.core.clientaddr import client_address
from apps.core.health import redis_client

logger = logging.getLogger(__name__)

# KEYS[1] this window's counter, KEYS[2] the previous window's; ARGV: limit, weight of the
# previous window (0..1), counter lifetime in ms. Returns {allowed (0/1), current count}.
_SCRIPT = """
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
local prev = tonumber(redis.call('GET', KEYS[2]) or '0')
if prev * tonumber(ARGV[2]) + cur + 1 > tonumber(ARGV[1]) then
  return {0, cur, prev}
end
cur = redis.call('INCR', KEYS[1])
if cur == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
return {1, cur, prev}
"""
_script = None
_last_warning = -60.0
_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_rate(rate: str) -> tuple[int, int]:
    """``"6000/min"`` -> (6000, 60). Accepts ``<n>/<s|sec|m|min|h|hour|d|day>``."""
    try:
        num, period = rate.split("/")
        limit = int(num)
        seconds = _PERIODS[period.strip()[0]]
    except (ValueError, KeyError, IndexError):
        raise ValueError(f"throttle rate {rate!r} is not '<requests>/<s|min|hour|day>', e.g. '6000/min'") from None
    if limit < 1:
        raise ValueError(f"throttle rate {rate!r}: the number of requests must be at least 1")
    return limit, seconds


def hit(key: str, limit: int, period: int, now: float | None = None) -> tuple[bool, float]:
    """Count one request under ``key`` if the sliding-window estimate allows it.

    Returns ``(allowed, wait)``: ``wait`` is the seconds until a request would be allowed again
    (0 when allowed)."""
    global _script
    now = time.time() if now is None else now
    window = int(now // period)
    elapsed = now - window * period
    weight = 1.0 - elapsed / period
    if _script is None:
        _script = redis_client().register_script(_SCRIPT)
    allowed, cur, prev = _script(
        keys=[f"{key}:{window}", f"{key}:{window - 1}"], args=[limit, repr(weight), period * 2000]
    )
    if allowed:
        return True, 0.0
    cur, prev = int(cur), int(prev)
    if cur + 1 > limit or prev == 0:  # this window alone is full: wait for the next one
        return False, period - elapsed
    # The previous window's share has to shrink until prev * w + cur + 1 <= limit.
    target_weight = (limit - cur - 1) / prev
    return False, max(0.0, (1.0 - target_weight) * period - elapsed)


class _RedisRateThrottle(BaseThrottle):
    """Like DRF's rate throttles (same settings: ``DEFAULT_THROTTLE_RATES[scope]``), counted in
    Redis with :func:`hit`."""

    scope = ""

    def __init__(self) -> None:
        self.rate = api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)
        self.limit, self.period = parse_rate(self.rate) if self.rate else (0, 0)
        self._wait = 0.0

    def ident_for(self, request) -> str | None:  # pragma: no cover - overridden
        raise NotImplementedError

    def allow_request(self, request, view) -> bool:
        if not self.rate:
            return True
        ident = self.ident_for(request)
        if ident is None:
            return True
        key = f"{settings.REDIS_PREFIX}:throttle:{self.scope}:{ident}"
        try:
            allowed, self._wait = hit(key, self.limit, self.period)
        except Exception as exc:  # Redis down: let the request through, say so (once a minute)
            global _last_warning
            now = time.monotonic()
            if now - _last_warning >= 60:
                _last_warning = now
                logger.warning("API throttle %s not checked (Redis: %s); requests allowed", self.scope, exc)
            return True
        return allowed

    def wait(self) -> float | None:
        return self._wait or None


class UserRateThrottle(_RedisRateThrottle):
    """Authenticated requests, per user (rate ``DEFAULT_THROTTLE_RATES["user"]``)."""

    scope = "user"

    def ident_for(self, request) -> str | None:
        user = request.user
        if user and user.is_authenticated:
            return str(user.pk)
        return None  # anonymous requests are the anon throttle's


class AnonRateThrottle(_RedisRateThrottle):
    """Anonymous requests, per client address (rate ``DEFAULT_THROTTLE_RATES["anon"]``)."""

    scope = "anon"

    def ident_for(self, request) -> str | None:
        user = request.user
        if user and user.is_authenticated:
            return None
        # The sign-in throttle's address (X-Forwarded-For only from TRUSTED_PROXIES): DRF's
        # get_ident would trust a client's own X-Forwarded-For header.
        return client_address(request)
