"""Login throttling with lock-out, kept in Redis (the Django cache).

Failures are counted per (username, client address) and per client address; reaching
``LOGIN_MAX_FAILURES`` (or ten times that from one address) locks further attempts out for
``LOGIN_LOCKOUT_SECONDS``. Success clears the (username, address) count. Counting per pair
means an attacker elsewhere cannot lock a trader out of their own account.
"""

from __future__ import annotations

import hashlib
import time

from django.conf import settings
from django.core.cache import cache


def client_address(request) -> str:
    if request is None:
        return "unknown"
    return request.META.get("REMOTE_ADDR", "unknown")


def _key(kind: str, *parts: str) -> str:
    digest = hashlib.sha256("\x00".join(p.lower() for p in parts).encode()).hexdigest()[:32]
    return f"login:{kind}:{digest}"


def lockout_remaining(username: str, address: str) -> int:
    """Seconds until the lock-out ends for this username and address (0 = not locked)."""
    now = time.time()
    until = max(
        cache.get(_key("lock", username, address)) or 0,
        cache.get(_key("lockip", address)) or 0,
    )
    return max(0, int(until - now + 0.999))


def record_failure(username: str, address: str) -> None:
    window = settings.LOGIN_LOCKOUT_SECONDS
    limit = settings.LOGIN_MAX_FAILURES
    for kind, parts, threshold in (("pair", (username, address), limit), ("ip", (address,), limit * 10)):
        key = _key(kind, *parts)
        cache.add(key, 0, timeout=window)
        count = cache.incr(key)
        if count >= threshold:
            lock_kind = "lock" if kind == "pair" else "lockip"
            cache.set(_key(lock_kind, *parts), time.time() + window, timeout=window)


def record_success(username: str, address: str) -> None:
    cache.delete_many([_key("pair", username, address), _key("lock", username, address)])
