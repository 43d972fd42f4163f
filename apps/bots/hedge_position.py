"""A hedge-mode perpetual bot's two legs, for the trader's flatten and the pages that offer it.

In hedge position mode (risk ``perp.position_mode: hedge``, :mod:`trading.hedge_legs`) a bot holds
a long and a short leg that never net: legs +0.01 / -0.01 sum to a flat net (the signed sum of
the bot's fills) yet are fully exposed on both sides. Where the legs are known:

* a bot a host runs: its live status (``perp.legs``, each leg's contracts);
* a paper bot no host runs: the paper venue's stored position
  (``<prefix>:paper:<account>:<symbol>:perp:<bot>``, :mod:`workers.paper_perp`; legs in lots);
* otherwise (a live bot no host runs) they are unknown: a flatten is still offered, and the
  bot's loop closes whatever legs the exchange reports when it starts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings


@dataclass(frozen=True)
class Legs:
    """The long (>= 0) and short (<= 0) leg in contracts; both ``None`` when unknown."""

    long: Decimal | None
    short: Decimal | None
    source: str  # "live status", "paper venue" or "unknown"

    @property
    def known(self) -> bool:
        return self.long is not None and self.short is not None

    @property
    def open(self) -> bool:
        """Whether a flatten has anything to close (unknown legs: it may)."""
        return not self.known or bool(self.long) or bool(self.short)

    @property
    def text_long_short(self) -> str:
        if not self.known:
            return "long and short unknown while the bot is stopped"
        return f"long {_num(self.long)} / short {_num(self.short)}"

    def text(self, unit: str) -> str:
        if not self.known:
            return "long and short legs (unknown until the bot's loop reads the exchange)"
        return f"long leg {_num(self.long)} and short leg {_num(self.short)} {unit}"


def is_hedge(bot) -> bool:
    perp = (bot.risk or {}).get("perp")
    return isinstance(perp, dict) and perp.get("position_mode") == "hedge"


def bot_legs(bot, status: dict | None = None) -> Legs | None:
    """The legs of ``bot`` (None: not in hedge position mode); ``status``: its live status when
    the caller has read it (else read here)."""
    if not is_hedge(bot):
        return None
    if status is None:
        from apps.dashboard import live

        status = live.bot_status(bot_id=bot.pk)
    live = live_legs(status)
    if live is not None:
        return live
    if bot.exchange_account.kind == "paper":
        stored = paper_legs(bot)
        if stored is not None:
            return stored
        return Legs(Decimal(0), Decimal(0), "paper venue")  # nothing stored: nothing ever filled
    return Legs(None, None, "unknown")


def flatten_offer(bot, status: dict | None, net: str | None) -> tuple[Legs | None, bool]:
    """For a page: the bot's legs (None: one-way) and whether a flatten has anything to close
    (``net``: the net position as the page shows it)."""
    legs = bot_legs(bot, status)
    if legs is None:
        return None, net != "0"
    return legs, legs.open


def live_legs(status) -> Legs | None:
    """The legs a hedge-mode bot's live status carries (``perp.legs``), or None."""
    perp = status.get("perp") if isinstance(status, dict) else None
    legs = perp.get("legs") if isinstance(perp, dict) else None
    if not isinstance(legs, dict) or not legs:
        return None
    return Legs(_dec(legs, "long"), _dec(legs, "short"), "live status")


def paper_legs(bot) -> Legs | None:
    """The legs of the paper venue's stored position of ``bot`` (None: nothing stored)."""
    from apps.core.health import redis_client

    key = f"{settings.REDIS_PREFIX}:paper:{bot.exchange_account_id}:{bot.market.symbol}:perp:{bot.pk}"
    try:
        raw = redis_client().hget(key, "state")
    except Exception:  # Redis away: unknown
        return Legs(None, None, "unknown")
    if not raw:
        return None
    legs = json.loads(raw).get("legs") or {}
    lot = Decimal(bot.market.lot_size)
    long, short = ((legs.get(n) or [0])[0] * lot for n in ("long", "short"))
    return Legs(Decimal(long).normalize(), Decimal(short).normalize(), "paper venue")


def _dec(legs: dict, name: str) -> Decimal:
    return Decimal(str((legs.get(name) or {}).get("contracts") or 0))


def _num(value: Decimal) -> str:
    return f"{value.normalize():f}" if value else "0"
