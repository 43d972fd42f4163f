"""Redis key names used by the workers (all under ``settings.REDIS_PREFIX``, ``mm`` by default)."""

from __future__ import annotations

import re

_GROUP_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def prefix() -> str:
    """The deployment's Redis prefix (each test run has its own)."""
    from django.conf import settings

    return settings.REDIS_PREFIX


def bot_lease(bot_id: int) -> str:
    return f"{prefix()}:bot:{bot_id}:lease"


def bot_fence(bot_id: int) -> str:
    """Fencing counter: every acquisition of a bot's lease takes the next token."""
    return f"{prefix()}:bot:{bot_id}:fence"


def bot_control(bot_id: int) -> str:
    """Pub/sub channel the owner of a bot listens on (pause/resume/stop/kill/reload)."""
    return f"{prefix()}:bot:{bot_id}:control"


def bot_status(bot_id: int) -> str:
    """JSON with the live state of a bot's loop (owner, token, last quote cycle, pnl)."""
    return f"{prefix()}:bot:{bot_id}:status"


def portfolio_block(bot_id: int) -> str:
    """JSON ``{"side", "message"}`` while the owner's net in the bot's base asset is over its
    limit: the bot's pre-trade risk refuses orders on that side (``workers.portfolio``)."""
    return f"{prefix()}:bot:{bot_id}:portfolioblock"


def portfolio_breach(owner_id: int, asset: str) -> str:
    """Set while the owner's net in ``asset`` is over its limit (the incident was raised)."""
    return f"{prefix()}:portfolio:{owner_id}:{asset}:breach"


def portfolio_hedge(owner_id: int, asset: str) -> str:
    """Set (expiring) after a portfolio hedge order: no second one before its fills land."""
    return f"{prefix()}:portfolio:{owner_id}:{asset}:hedge"


def bots_wanted() -> str:
    """Set of bot ids that must run (desired running or paused); hosts claim from it."""
    return f"{prefix()}:bots:wanted"


def feed_lease(venue: str, symbol: str) -> str:
    return f"{prefix()}:feed:{venue}:{symbol}:lease"


def feed_fence(venue: str, symbol: str) -> str:
    return f"{prefix()}:feed:{venue}:{symbol}:fence"


def feed_stream(venue: str, symbol: str) -> str:
    """Capped stream of market events for bots (XADD MAXLEN ~ 10000)."""
    return f"{prefix()}:feed:{venue}:{symbol}:events"


def feed_book(venue: str, symbol: str) -> str:
    """Latest top-N book as JSON (decimal strings)."""
    return f"{prefix()}:feed:{venue}:{symbol}:book"


def feed_wakeup(venue: str, symbol: str) -> str:
    return f"{prefix()}:feed:{venue}:{symbol}:wakeup"


def feed_health(venue: str, symbol: str) -> str:
    """JSON with the feed's health and statistics for the UI."""
    return f"{prefix()}:feed:{venue}:{symbol}:health"


def feeds_wanted() -> str:
    """Set of ``venue|symbol`` a bot, dashboard or the arbitrage tracker needs."""
    return f"{prefix()}:feeds:wanted"


def feed_interest(venue: str, symbol: str) -> str:
    """A key with a TTL set by dashboards/arbitrage to keep a feed alive without a bot."""
    return f"{prefix()}:feed:{venue}:{symbol}:interest"


def host_registry() -> str:
    """Hash host id -> JSON (pid, bots, feeds, ts): the live hosts."""
    return f"{prefix()}:hosts"


def paper(account_id: int, symbol: str, what: str) -> str:
    """Paper venue state of one exchange account and symbol (orders, trades, deltas)."""
    return f"{prefix()}:paper:{account_id}:{symbol}:{what}"


def paper_account(account_id: int, what: str) -> str:
    return f"{prefix()}:paper:{account_id}:{what}"


def bot_last_place(bot_id: int) -> str:
    """The client id of the bot's latest place (set by the fenced place scripts): a new owner
    never issues it or an earlier one again, even when no row, venue order or trade of it is
    left (an order cancelled before its row was written)."""
    return f"{prefix()}:bot:{bot_id}:lastplace"


def place_log() -> str:
    """Audit stream of every order place/cancel with the fencing token that sent it."""
    return f"{prefix()}:placelog"


def group_name(*parts: str) -> str:
    """A channel-layer group name: ASCII alnum, hyphen, underscore, period only (< 100 chars)."""
    return ".".join(_GROUP_UNSAFE.sub("_", p) for p in parts)[:99]
