"""The bot's own PnL for pages and websockets: :func:`apps.portfolio.bot_pnl.bot_pnl` marked at
the feed's live mid, and the same figures as JSON-ready strings (``pnl`` messages)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from apps.dashboard import live
from apps.portfolio.bot_pnl import bot_pnl

MONEY_PLACES = Decimal("0.0001")


def bot_pnl_live(*, user, bot) -> dict[str, Any]:
    """The bot's PnL with its position valued at the live mid (else the last known mid)."""
    mark = live.book_mid(venue=bot.market.venue, symbol=bot.market.symbol)
    return bot_pnl(user=user, bot_id=bot.pk, mark=mark)


def _text(value: Any, places: Decimal | None = MONEY_PLACES) -> str | None:
    if value is None:
        return None
    if isinstance(value, Decimal):
        d = value.quantize(places) if places is not None else value.normalize()
        text = format(d, "f")
        return "0" if text.strip("-0.") == "" else text
    return str(value)


def pnl_message(pnl: dict[str, Any]) -> dict[str, Any]:
    """``{"type": "pnl", ...}``: money to 4 places, position and prices unrounded."""
    out: dict[str, Any] = {
        "type": "pnl",
        "bot": pnl["bot"],
        "position": _text(pnl["position"], None),
        "avg_cost": _text(pnl["avg_cost"], Decimal("0.01")),
        "mark": _text(pnl["mark"], None),
        "mark_source": pnl["mark_source"],
    }
    for span in ("since_start", "today"):
        part = pnl[span]
        out[span] = {k: _text(part.get(k)) for k in ("realized", "unrealized", "fees", "total")}
        out[span]["fills"] = part["fills"]
        out[span]["volume"] = _text(part["volume"], None)
    return out
