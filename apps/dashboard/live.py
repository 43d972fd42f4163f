"""Reads of the live state the workers keep in Redis: latest books, feed health, bot status.

The key layout is the workers' (``workers.keys``), repeated here because apps never import
workers: ``<prefix>:feed:<venue>:<symbol>:book|health|interest``, ``<prefix>:feeds:wanted`` and
``<prefix>:bot:<id>:status``.
Channel-layer groups: ``book.<venue>.<symbol>`` and ``bot.<id>`` (unsafe characters → ``_``).
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

from django.conf import settings

from apps.core.health import redis_client

_GROUP_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def group_name(*parts: str) -> str:
    """The channel-layer group the workers publish to, e.g. ``book.replay_binance-spot.BTC_USDT``."""
    return ".".join(_GROUP_UNSAFE.sub("_", str(p)) for p in parts)[:99]


def feed_book_key(venue: str, symbol: str) -> str:
    return f"{settings.REDIS_PREFIX}:feed:{venue}:{symbol}:book"


def feed_health_key(venue: str, symbol: str) -> str:
    return f"{settings.REDIS_PREFIX}:feed:{venue}:{symbol}:health"


def bot_status_key(bot_id: int) -> str:
    return f"{settings.REDIS_PREFIX}:bot:{bot_id}:status"


def _get_json(key: str) -> dict[str, Any] | None:
    try:
        raw = redis_client().get(key)
    except Exception:  # Redis down: the page still renders, without live data
        return None
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def latest_book(*, venue: str, symbol: str) -> dict[str, Any] | None:
    """The feed's latest top-N book ``{venue, symbol, ts, bids: [[price, qty]], asks}`` or ``None``."""
    return _get_json(feed_book_key(venue, symbol))


def feed_health(*, venue: str, symbol: str) -> dict[str, Any] | None:
    """The feed's health ``{health, owner, published, errors, last_error, stats, ts}`` or ``None``."""
    return _get_json(feed_health_key(venue, symbol))


def feed_health_all() -> list[dict[str, Any]]:
    """Health of every feed that reported in the last half minute, by venue and symbol."""
    client = redis_client()
    pattern = f"{settings.REDIS_PREFIX}:feed:*:health"
    try:
        keys = sorted(client.scan_iter(match=pattern, count=500))
        values = client.mget(keys) if keys else []
    except Exception:
        return []
    out = []
    for raw in values:
        if raw:
            try:
                out.append(json.loads(raw))
            except ValueError:
                continue
    return sorted(out, key=lambda h: (h.get("venue", ""), h.get("symbol", "")))


def bot_status(*, bot_id: int) -> dict[str, Any] | None:
    """The bot loop's last published status (state, position, equity, orders, risk) or ``None``."""
    return _get_json(bot_status_key(bot_id))


def bot_status_many(*, bot_ids: list[int]) -> dict[int, dict[str, Any]]:
    if not bot_ids:
        return {}
    try:
        values = redis_client().mget([bot_status_key(i) for i in bot_ids])
    except Exception:
        return {}
    out = {}
    for bot_id, raw in zip(bot_ids, values, strict=True):
        if raw:
            try:
                out[bot_id] = json.loads(raw)
            except ValueError:
                continue
    return out


def book_mid(*, venue: str, symbol: str) -> Decimal | None:
    """The mid of the feed's latest book (``None`` without a two-sided book)."""
    book = latest_book(venue=venue, symbol=symbol) or {}
    try:
        bid, ask = Decimal(str(book["bids"][0][0])), Decimal(str(book["asks"][0][0]))
    except (KeyError, IndexError, TypeError, ValueError, ArithmeticError):
        return None
    return (bid + ask) / 2 if bid > 0 and ask > 0 else None


FEED_INTEREST_TTL_S = 60


def register_feed_interest(*, venue: str, symbol: str) -> None:
    """Keep the market's feed running while someone watches its page (the supervisor runs a
    feed with an interest key, as for the arbitrage tracker; the key expires a minute after the
    last page refresh or chart poll)."""
    member = f"{venue}|{symbol}"
    try:
        pipe = redis_client().pipeline()
        pipe.set(f"{settings.REDIS_PREFIX}:feed:{venue}:{symbol}:interest", member, ex=FEED_INTEREST_TTL_S)
        pipe.sadd(f"{settings.REDIS_PREFIX}:feeds:wanted", member)
        pipe.execute()
    except Exception:  # Redis down: the page renders without a live feed
        return


def legs_messages(status: Any) -> list[dict[str, Any]]:
    """The overview's legs lines a bot's live ``status`` updates (:func:`hedge_leg_message`,
    :func:`perp_legs_message`), pushed on the bot's socket beside the status
    (:class:`apps.dashboard.consumers.BotConsumer`)."""
    if isinstance(status, (str, bytes)):
        try:
            status = json.loads(status)
        except ValueError:
            return []
    return [m for m in (hedge_leg_message(status), perp_legs_message(status)) if m is not None]


def perp_legs_message(status: Any) -> dict[str, Any] | None:
    """A hedge-position-mode perpetual bot's legs line (``legs: long 0.004 / short -0.002``) from
    its live ``status`` (``perp.legs``), as the overview renders it; None without legs."""
    from apps.bots.hedge_position import live_legs

    legs = live_legs(status)
    return None if legs is None else {"type": "perp_legs", "text": legs.text_long_short}


def hedge_leg_message(status: Any) -> dict[str, Any] | None:
    """The overview's legs line of a hedged bot from its live ``status`` (``status["hedged"]``,
    :mod:`workers.hedged_loop`): both legs' positions, the net exposure and why quoting stopped,
    formatted as the page renders them (``num``); None for any other status."""
    from apps.dashboard.templatetags.dashboard import num

    live = status.get("hedged") if isinstance(status, dict) else None
    if not isinstance(live, dict):
        return None
    return {
        "type": "hedge_leg",
        "maker_position": num((live.get("maker") or {}).get("position")),
        "hedge_position": num((live.get("hedge") or {}).get("position")),
        "exposure": num(live.get("exposure")),
        "halted": live.get("halted") or None,
    }
