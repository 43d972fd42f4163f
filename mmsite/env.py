"""Read every setting that comes from the environment, in one place.

A bad or missing value stops start-up with :class:`ConfigurationError`, whose single-line
message names the setting and what would be accepted. ``manage.py`` and the ASGI/Celery entry
points print that line instead of a traceback.
"""

from __future__ import annotations

import base64
import os
from decimal import Decimal, InvalidOperation
from urllib.parse import parse_qs, unquote, urlparse

from django.core.exceptions import ImproperlyConfigured


class ConfigurationError(ImproperlyConfigured):
    """A setting from the environment is missing or invalid."""


def _raw(name: str) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else None


def env_str(name: str, default: str | None = None) -> str:
    value = _raw(name)
    if value is None:
        if default is None:
            raise ConfigurationError(f"{name} is not set; set it in the environment")
        return default
    return value


def env_bool(name: str, default: bool) -> bool:
    value = _raw(name)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConfigurationError(f"{name}={value!r} is not a boolean; accepted: 1/0, true/false, yes/no, on/off")


def env_rate(name: str, default: str) -> str:
    """A request rate such as ``6000/min``: a positive whole number, ``/``, and a period
    (``s``/``sec``, ``m``/``min``, ``h``/``hour``, ``d``/``day``)."""
    value = _raw(name) or default
    num, _, period = value.partition("/")
    units = ("s", "sec", "second", "m", "min", "minute", "h", "hour", "d", "day")
    if not num.strip().isdigit() or int(num) < 1 or period.strip() not in units:
        raise ConfigurationError(
            f"{name}={value!r} is not a rate; accepted: <requests>/<period>, period one of s, min, hour, day "
            "(e.g. '6000/min')"
        )
    return f"{int(num)}/{period.strip()}"


def env_int(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    value = _raw(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ConfigurationError(f"{name}={value!r} is not a whole number") from None
    if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        raise ConfigurationError(f"{name}={value!r} is out of range; accepted: {minimum} to {maximum}")
    return number


def env_float(name: str, default: float, *, minimum: float | None = None, maximum: float | None = None) -> float:
    value = _raw(name)
    if value is None:
        return default
    try:
        number = float(value)
    except ValueError:
        raise ConfigurationError(f"{name}={value!r} is not a number") from None
    if number != number or (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        raise ConfigurationError(f"{name}={value!r} is out of range; accepted: {minimum} to {maximum}")
    return number


def env_decimal(name: str, default: str | None, *, minimum: str | None = None) -> Decimal | None:
    """An exact decimal (money, basis points); ``None`` when unset and the default is ``None``."""
    value = _raw(name)
    if value is None:
        return None if default is None else Decimal(default)
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise ConfigurationError(f"{name}={value!r} is not a decimal number, e.g. '0.5'") from None
    if not number.is_finite() or (minimum is not None and number < Decimal(minimum)):
        raise ConfigurationError(f"{name}={value!r} is out of range; accepted: {minimum} or more")
    return number


def env_list(name: str, default: list[str]) -> list[str]:
    value = _raw(name)
    if value is None:
        return default
    items = [item.strip() for item in value.split(",") if item.strip()]
    if not items:
        raise ConfigurationError(f"{name}={value!r} is empty; give a comma-separated list, e.g. 'localhost,127.0.0.1'")
    return items


def database_from_url(name: str, default: str) -> dict:
    """Parse ``postgres://user:pass@host:port/db?sslmode=...`` (or ``postgresql://``, or
    ``postgres:///db`` for the local socket) into a Django DATABASES entry."""
    url = env_str(name, default)
    parsed = urlparse(url)
    if parsed.scheme not in ("postgres", "postgresql", "timescale"):
        raise ConfigurationError(
            f"{name}={url!r} has scheme {parsed.scheme!r}; accepted: postgres://user:password@host:port/database"
        )
    db_name = unquote(parsed.path.lstrip("/"))
    if not db_name:
        raise ConfigurationError(f"{name}={url!r} names no database; accepted: postgres://host:5432/mmsite")
    try:
        port = parsed.port
    except ValueError:
        raise ConfigurationError(f"{name}={url!r} has an invalid port; accepted: 1 to 65535") from None
    options = {key: values[-1] for key, values in parse_qs(parsed.query).items()}
    return {
        "ENGINE": "apps.core.db.backend",
        "NAME": db_name,
        "USER": unquote(parsed.username or "postgres"),
        "PASSWORD": unquote(parsed.password or ""),
        "HOST": parsed.hostname or "",
        "PORT": str(port or ""),
        "OPTIONS": options,
        # Under ASGI every sync view runs in a worker thread; persistent connections per thread
        # would pile up to PostgreSQL's limit, so the default is a connection per request.
        "CONN_MAX_AGE": env_int("DB_CONN_MAX_AGE", 60, minimum=0, maximum=3600),
        "CONN_HEALTH_CHECKS": True,
        "TEST": {"NAME": env_str("TEST_DATABASE_NAME", f"test_{db_name}")},
    }


def redis_url(name: str, default: str) -> str:
    url = env_str(name, default)
    parsed = urlparse(url)
    if parsed.scheme not in ("redis", "rediss", "unix"):
        raise ConfigurationError(f"{name}={url!r} has scheme {parsed.scheme!r}; accepted: redis://host:6379/0")
    if parsed.scheme != "unix":
        try:
            _ = parsed.port
        except ValueError:
            raise ConfigurationError(f"{name}={url!r} has an invalid port; accepted: 1 to 65535") from None
        db = parsed.path.lstrip("/")
        if db and not db.isdigit():
            raise ConfigurationError(f"{name}={url!r} has database {db!r}; accepted: a number such as /0")
    return url


def fernet_keys(name: str, default: str | None) -> list[str]:
    """Comma-separated Fernet keys; the first encrypts, all decrypt (key rotation)."""
    value = _raw(name) or default
    if value is None:
        raise ConfigurationError(
            f"{name} is not set; accepted: one or more comma-separated Fernet keys "
            "(make one with: python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')"
        )
    keys = [k.strip() for k in value.split(",") if k.strip()]
    for index, key in enumerate(keys):
        try:
            raw = base64.urlsafe_b64decode(key.encode())
        except (ValueError, TypeError):
            raw = b""
        if len(raw) != 32:
            raise ConfigurationError(
                f"{name}: key #{index + 1} is not a Fernet key; accepted: 32 url-safe base64-encoded bytes (44 characters)"
            )
    return keys


def env_networks(name: str, default: list[str] | None = None) -> list[str]:
    """Comma-separated IP networks (CIDR, or single addresses) such as ``10.0.0.0/8,127.0.0.1``."""
    import ipaddress

    value = _raw(name)
    items = [x.strip() for x in value.split(",") if x.strip()] if value is not None else list(default or [])
    out = []
    for item in items:
        try:
            out.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            raise ConfigurationError(
                f"{name}: {item!r} is not an IP network; accepted: comma-separated addresses or CIDR "
                "networks such as '127.0.0.1,10.0.0.0/8,fd00::/8'"
            ) from None
    return out
