"""Error taxonomy for exchange I/O and the one retry helper every connector uses.

Every exception raised while talking to a venue falls in one of three kinds:

- **temporary** — the request may succeed if tried again later: ccxt ``NetworkError`` and its
  children (``RequestTimeout``, ``ExchangeNotAvailable``, ``DDoSProtection``,
  ``RateLimitExceeded``, ``InvalidNonce``), HTTP 5xx, 429 and 418, asyncio/OS timeouts and
  dropped connections. Back off and retry within a budget.
- **permanent** — the venue understood and refused: ``InsufficientFunds``, ``InvalidOrder``,
  ``BadSymbol``, ``BadRequest``, ... Never retried; an order becomes ``OrderRejected`` carrying
  the exchange's reason.
- **authentication** — ``AuthenticationError`` / ``PermissionDenied`` / ``AccountSuspended``:
  raised as :class:`AuthFailure`, which the bot loop turns into "stop the bot" with the message.
"""

from __future__ import annotations

import asyncio
import enum
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

import ccxt

T = TypeVar("T")


class ErrorKind(enum.Enum):
    TEMPORARY = "temporary"
    PERMANENT = "permanent"
    AUTH = "authentication"


class ConnectorError(Exception):
    """Base class for errors raised by ``connectors``."""


class AuthFailure(ConnectorError):
    """The venue refused our credentials or permissions: stop the bot and tell the user why."""

    def __init__(self, venue: str, detail: str) -> None:
        self.venue = venue
        self.detail = detail
        super().__init__(
            f"{venue}: the exchange refused the API key ({detail}). Check the key, its secret, its "
            "permissions (trading enabled) and IP whitelist, then restart the bot."
        )


class PermanentVenueError(ConnectorError):
    """The venue refused a request for a reason retrying cannot fix."""

    def __init__(self, venue: str, reason: str, code: str = "") -> None:
        self.venue = venue
        self.reason = reason
        self.code = code
        super().__init__(f"{venue}: {reason}")


class RetryBudgetExhausted(ConnectorError):
    """A temporary error persisted past the retry budget; ``last`` is the final exception."""

    def __init__(self, what: str, attempts: int, last: BaseException) -> None:
        self.what = what
        self.attempts = attempts
        self.last = last
        super().__init__(f"{what}: gave up after {attempts} attempts; last error: {describe(last)}")


_TEMPORARY_HTTP = {418, 429}


def _http_status(exc: BaseException) -> int | None:
    for attr in ("status", "http_status", "status_code"):
        value = getattr(exc, attr, None)
        if isinstance(value, int):
            return value
    return None


def classify(exc: BaseException) -> ErrorKind:
    """Return the kind of an exception raised by ccxt, aiohttp or asyncio."""
    if isinstance(exc, AuthFailure | ccxt.AuthenticationError):
        return ErrorKind.AUTH
    if isinstance(exc, ccxt.NetworkError | ccxt.BadResponse | ccxt.CancelPending):
        return ErrorKind.TEMPORARY
    if isinstance(exc, asyncio.TimeoutError | TimeoutError | ConnectionError | OSError):
        return ErrorKind.TEMPORARY
    status = _http_status(exc)
    if status is not None and (status >= 500 or status in _TEMPORARY_HTTP):
        return ErrorKind.TEMPORARY
    return ErrorKind.PERMANENT


def describe(exc: BaseException) -> str:
    """A one-line, user-readable description of an exception (type and message)."""
    text = str(exc).strip() or "no message"
    if len(text) > 300:
        text = text[:297] + "..."
    return f"{type(exc).__name__}: {text}"


@dataclass
class Backoff:
    """Exponential backoff with full jitter; ``rng`` is injectable so tests are reproducible."""

    base_s: float = 0.2
    max_s: float = 10.0
    factor: float = 2.0
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (1 = first retry)."""
        cap = min(self.max_s, self.base_s * self.factor ** max(0, attempt - 1))
        return cap / 2 + self.rng.uniform(0, cap / 2)


@dataclass
class RetryPolicy:
    """How many times and how patiently to retry temporary errors."""

    attempts: int = 4
    backoff: Backoff = field(default_factory=Backoff)
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep


async def retry(
    what: str,
    call: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    venue: str = "",
    before_retry: Callable[[int, BaseException], Awaitable[T | None]] | None = None,
) -> T:
    """Run ``call``; retry temporary errors with backoff, raise permanent/auth errors at once.

    ``before_retry(attempt, exc)`` runs before each retry; if it returns a value other than
    None, that value is the result (used by order entry to find an order that did reach the
    venue before retrying, so a retry never places a duplicate). If the lookup itself fails
    with a temporary error, the next attempt looks up again before re-sending anything.
    Raises :class:`AuthFailure`, :class:`PermanentVenueError` or :class:`RetryBudgetExhausted`.
    """
    attempt = 0
    need_lookup = False
    last: BaseException | None = None
    while True:
        attempt += 1
        try:
            if need_lookup and before_retry is not None:
                found = await before_retry(attempt, last)
                if found is not None:
                    return found
            need_lookup = False
            return await call()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # classified below, nothing is swallowed
            kind = classify(exc)
            if kind is ErrorKind.AUTH:
                if isinstance(exc, AuthFailure):
                    raise
                raise AuthFailure(venue or what, describe(exc)) from exc
            if kind is ErrorKind.PERMANENT:
                if isinstance(exc, PermanentVenueError):
                    raise
                raise PermanentVenueError(venue or what, describe(exc), type(exc).__name__) from exc
            if attempt >= policy.attempts:
                raise RetryBudgetExhausted(what, attempt, exc) from exc
            # A failed lookup keeps need_lookup set: we never re-send until the lookup answers.
            need_lookup = True
            last = exc
            await policy.sleep(policy.backoff.delay(attempt))
