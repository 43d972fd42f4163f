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


def _range(minimum: float | None, maximum: float | None, what: str) -> str:
    """What a bounded number setting accepts, e.g. ``a whole number from 1 to 65535``."""
    if minimum is not None and maximum is not None:
        return f"{what} from {minimum} to {maximum}"
    if minimum is not None:
        return f"{what}, {minimum} or more"
    if maximum is not None:
        return f"{what}, at most {maximum}"
    return what


def env_int(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    value = _raw(name)
    if value is None:
        return default
    accepted = _range(minimum, maximum, "a whole number")
    try:
        number = int(value)
    except ValueError:
        raise ConfigurationError(f"{name}={value!r} is not a whole number; accepted: {accepted}") from None
    if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        raise ConfigurationError(f"{name}={value!r} is out of range; accepted: {accepted}")
    return number


def env_float(name: str, default: float, *, minimum: float | None = None, maximum: float | None = None) -> float:
    value = _raw(name)
    if value is None:
        return default
    accepted = _range(minimum, maximum, "a number")
    try:
        number = float(value)
    except ValueError:
        raise ConfigurationError(f"{name}={value!r} is not a number; accepted: {accepted}") from None
    if number != number or (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        raise ConfigurationError(f"{name}={value!r} is out of range; accepted: {accepted}")
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


def database_url(name: str, default: str) -> str:
    """A PostgreSQL URL ``postgres://user:pass@host:port/db?sslmode=...`` (or ``postgresql://``, or
    ``postgres:///db`` for the local socket), checked: scheme, a database name, a valid port."""
    url = env_str(name, default)
    parsed = urlparse(url)
    if parsed.scheme not in ("postgres", "postgresql", "timescale"):
        raise ConfigurationError(
            f"{name}={url!r} has scheme {parsed.scheme!r}; accepted: postgres://user:password@host:port/database"
        )
    if not unquote(parsed.path.lstrip("/")):
        raise ConfigurationError(f"{name}={url!r} names no database; accepted: postgres://host:5432/mmsite")
    try:
        _ = parsed.port
    except ValueError:
        raise ConfigurationError(f"{name}={url!r} has an invalid port; accepted: 1 to 65535") from None
    return url


def database_from_url(name: str, default: str) -> dict:
    """The :func:`database_url` of ``name`` as a Django DATABASES entry."""
    parsed = urlparse(database_url(name, default))
    db_name = unquote(parsed.path.lstrip("/"))
    port = parsed.port
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


# --------------------------------------------------------------------------------------------
# Bot hosts (workers/): read when a host starts or a bot's venue is built, not at import, so a
# test can set them per case. Each names the setting and what is accepted when refused.
# --------------------------------------------------------------------------------------------
def host_enabled() -> bool:
    """``MM_HOST``: whether a Celery worker consuming ``bots``/``feeds`` starts a bot host (default on)."""
    return env_bool("MM_HOST", True)


def host_wake_batch() -> int:
    """``MM_WAKE_BATCH``: bots with new market data woken per turn of the host's loop (default 16)."""
    return env_int("MM_WAKE_BATCH", 16, minimum=1, maximum=100_000)


def host_profile_path() -> str | None:
    """``MM_HOST_PROFILE``: a file to write a cProfile of the host's loop thread to (a bench aid)."""
    return _raw("MM_HOST_PROFILE")


def host_gc_threshold() -> tuple[int, int, int] | None:
    """``MM_GC_THRESHOLD``: the bot host's garbage-collector thresholds, three whole numbers
    ``gen0,gen1,gen2`` (default ``50000,20,100``); ``default`` keeps Python's own."""
    value = _raw("MM_GC_THRESHOLD") or "50000,20,100"
    if value.strip().lower() == "default":
        return None
    parts = [p.strip() for p in value.split(",")]
    if len(parts) != 3 or not all(p.isdigit() and p.isascii() for p in parts) or int(parts[0]) < 1:
        raise ConfigurationError(
            f"MM_GC_THRESHOLD={value!r} is refused; accepted: three whole numbers 'gen0,gen1,gen2' with gen0 "
            "at least 1 (e.g. '50000,20,100'), or 'default' for Python's thresholds"
        )
    return int(parts[0]), int(parts[1]), int(parts[2])


def channel_layer_disabled() -> bool:
    """``MM_NO_CHANNEL_LAYER``: bot hosts push nothing to the channel layer (benchmarks; default off)."""
    return env_bool("MM_NO_CHANNEL_LAYER", False)


_PAPER_FAULT_KEYS = {
    "error": (0.0, 1.0),
    "timeout": (0.0, 1.0),
    "drop": (0.0, 1.0),
    "delay_ms": (0.0, 60_000.0),
    "status": (400.0, 599.0),
}


def paper_faults() -> dict | None:
    """``MM_PAPER_FAULTS`` (tests): fault injection for paper venues, e.g.
    ``error=0.2,timeout=0.15,delay_ms=300,seed=5`` (``status=429``: errors always that status;
    ``drop``: places lost before the venue, never answered; ``account=<id>``: only that paper
    account's venues, e.g. a hedged bot's hedge leg); ``None`` when unset."""
    value = _raw("MM_PAPER_FAULTS")
    if value is None:
        return None
    accepted = (
        "comma-separated error=<0..1>, timeout=<0..1>, drop=<0..1>, delay_ms=<0..60000>, status=<400..599>, "
        "seed=<whole number>, account=<paper account id>"
    )
    out: dict = {}
    for part in value.split(","):
        name, sep, raw = (x.strip() for x in part.partition("="))
        if not sep or (name not in _PAPER_FAULT_KEYS and name not in ("seed", "account")):
            raise ConfigurationError(f"MM_PAPER_FAULTS={value!r}: {part.strip()!r} is refused; accepted: {accepted}")
        try:
            if name in ("seed", "account"):
                out[name] = int(raw)
                continue
            number = float(raw)
        except ValueError:
            raise ConfigurationError(
                f"MM_PAPER_FAULTS={value!r}: {name}={raw!r} is not a number; accepted: {accepted}"
            ) from None
        low, high = _PAPER_FAULT_KEYS[name]
        if not low <= number <= high:
            raise ConfigurationError(f"MM_PAPER_FAULTS={value!r}: {name}={raw!r} is out of range; accepted: {accepted}")
        out[name] = number
    return out


def live_http_base() -> str | None:
    """``MM_LIVE_HTTP_BASE`` (tests): a loopback fake-exchange address live venues are pointed at,
    e.g. ``http://127.0.0.1:8080``; anything but http(s) on a loopback host is refused."""
    import ipaddress
    from urllib.parse import urlsplit

    value = _raw("MM_LIVE_HTTP_BASE")
    if value is None or not value.strip():
        return None
    value = value.strip()
    parts = urlsplit(value)
    host = parts.hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if parts.scheme not in ("http", "https") or not loopback:
        raise ConfigurationError(
            f"MM_LIVE_HTTP_BASE={value!r} is refused; only a loopback test server such as "
            "'http://127.0.0.1:8080' is accepted (production talks to the exchange itself)"
        )
    return value


# --------------------------------------------------------------------------------------------
# The set-up script (scripts/ensure_services.py): it runs before the services (and so Django's
# settings) are usable, so it reads these directly rather than through the settings modules.
# --------------------------------------------------------------------------------------------
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/mmsite"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def services_database_url() -> str:
    """``DATABASE_URL`` as the settings read it (same default and checks)."""
    return database_url("DATABASE_URL", DEFAULT_DATABASE_URL)


def services_redis_url() -> str:
    """``REDIS_URL`` as the settings read it (same default and checks)."""
    return redis_url("REDIS_URL", DEFAULT_REDIS_URL)


def services_may_start() -> bool:
    """``MMSITE_NO_START_SERVICES``: on, the script only checks that the services answer (default off)."""
    return not env_bool("MMSITE_NO_START_SERVICES", False)


def services_may_install() -> bool:
    """``MMSITE_NO_INSTALL``: on, the script never installs a server with apt-get (default off)."""
    return not env_bool("MMSITE_NO_INSTALL", False)


def services_var_dir(default: str) -> str:
    """``MMSITE_VAR_DIR``: where the script's private PostgreSQL/Redis instances live (default
    the project's ``var/``)."""
    return env_str("MMSITE_VAR_DIR", default)


def services_pg_bin() -> str | None:
    """``MMSITE_PG_BIN``: the directory of PostgreSQL's server programs (``initdb``, ``pg_ctl``);
    unset, the script looks on PATH and in ``/usr/lib/postgresql/<version>/bin``."""
    return _raw("MMSITE_PG_BIN")
