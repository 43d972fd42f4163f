"""Sign-in throttling, kept in Redis: accounts locked by username with exponential backoff,
addresses rate-limited, and a trader's usual address never locked out by someone else.

Every attempt (sign-in page, admin, API token endpoint: all go through
:class:`apps.accounts.backends.ThrottledModelBackend`) is first put through :func:`gate`:

- **Known address.** A (username, client address) pair that signed in successfully within
  ``LOGIN_KNOWN_ADDRESS_DAYS`` is *known*. Its failures are counted for that pair only, so an
  attacker elsewhere cannot lock a trader out of the address they usually sign in from, and
  the address rate limit does not apply to it (colleagues behind one NAT keep signing in).
- **Account lock-out with backoff.** Failures from anywhere else are counted per username
  (existing or not: the answer never tells which). From the ``LOGIN_MAX_FAILURES``-th failure
  on, the username (or known pair) is locked for ``LOGIN_BACKOFF_BASE_SECONDS`` x 2^(failures
  past the limit), at most ``LOGIN_LOCKOUT_SECONDS``; the count is forgotten
  ``LOGIN_FAILURE_MEMORY_SECONDS`` after the last failure, or on a successful sign-in. Attempts
  while locked are refused without checking the password and are not counted.
- **Address rate limit.** Attempts that are not from a known pair are rate-limited per client
  address (``LOGIN_ADDRESS_RATE``, a sliding window, :func:`apps.core.throttling.hit`). Over
  the rate an attempt waits seconds, not a lock-out: a refused attempt is not counted, and the
  wait is the time until the window has room again. An attempt without a client address
  (an in-process call, or a server that gives none) is not address-limited: one shared
  "unknown" bucket would lock everyone out again.

The client address is :func:`apps.core.clientaddr.client_address` (``X-Forwarded-For`` only
from ``TRUSTED_PROXIES``).
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache

from apps.core import throttling
from apps.core.clientaddr import UNKNOWN, client_address

__all__ = ["Refusal", "client_address", "gate", "record_failure", "record_success", "refusal_of"]

logger = logging.getLogger(__name__)
_REFUSAL_ATTR = "_mm_login_refusal"


@dataclass(frozen=True)
class Refusal:
    """Why an attempt was refused before its password was checked, and for how long."""

    seconds: int
    reason: str  # "locked" (too many failures for this account) | "address" (address rate limit)

    def message(self) -> str:
        if self.reason == "locked":
            return f"Too many failed sign-in attempts. Try again in {self.seconds} s."
        return f"Too many sign-in attempts from your address. Try again in {self.seconds} s."


def _key(kind: str, *parts: str) -> str:
    digest = hashlib.sha256("\x00".join(p.lower() for p in parts).encode()).hexdigest()[:32]
    return f"login:{kind}:{digest}"


def _known(username: str, address: str) -> bool:
    return bool(cache.get(_key("known", username, address)))


def _scope(username: str, address: str) -> tuple[str, ...]:
    """What failures are counted against: the known pair, or the username."""
    return ("pair", username, address) if _known(username, address) else ("user", username)


def _lock_remaining(scope: tuple[str, ...], now: float) -> int:
    until = cache.get(_key("lock", *scope)) or 0
    return max(0, int(until - now + 0.999))


def gate(username: str, address: str, request=None) -> Refusal | None:
    """Whether this attempt may check its password (``None``) or is refused, and for how long.

    A refusal is remembered on ``request`` (:func:`refusal_of`) so the failure that Django then
    signals is not counted again, and the page or API can say why."""
    now = time.time()
    scope = _scope(username, address)
    refusal = None
    remaining = _lock_remaining(scope, now)
    if remaining:
        refusal = Refusal(remaining, "locked")
    elif scope[0] == "user" and address != UNKNOWN:
        limit, period = throttling.parse_rate(settings.LOGIN_ADDRESS_RATE)
        key = f"{settings.REDIS_PREFIX}:login:address:{address}"
        try:
            allowed, wait = throttling.hit(key, limit, period, now)
        except Exception as exc:  # Redis down: the account lock-out still holds (cache errors)
            logger.warning("sign-in address rate not checked (Redis: %s)", exc)
            allowed, wait = True, 0.0
        if not allowed:
            refusal = Refusal(max(1, int(wait + 0.999)), "address")
    if request is not None:
        setattr(request, _REFUSAL_ATTR, refusal)
    return refusal


def refusal_of(request) -> Refusal | None:
    """The refusal :func:`gate` gave this request's sign-in attempt, if any."""
    return getattr(request, _REFUSAL_ATTR, None)


def backoff_seconds(failures: int) -> int:
    """Lock-out after ``failures`` consecutive failures (0 below ``LOGIN_MAX_FAILURES``)."""
    over = failures - settings.LOGIN_MAX_FAILURES
    if over < 0:
        return 0
    cap = settings.LOGIN_LOCKOUT_SECONDS
    return min(cap, settings.LOGIN_BACKOFF_BASE_SECONDS * 2 ** min(over, 40))


def record_failure(username: str, address: str) -> None:
    scope = _scope(username, address)
    memory = settings.LOGIN_FAILURE_MEMORY_SECONDS
    key = _key("fail", *scope)
    cache.add(key, 0, timeout=memory)
    failures = cache.incr(key)
    cache.touch(key, memory)
    lock = backoff_seconds(failures)
    if lock:
        cache.set(_key("lock", *scope), time.time() + lock, timeout=lock)


def record_success(username: str, address: str) -> None:
    scope = _scope(username, address)
    cache.delete_many([_key("fail", *scope), _key("lock", *scope)])
    cache.set(_key("known", username, address), 1, timeout=settings.LOGIN_KNOWN_ADDRESS_DAYS * 86400)
