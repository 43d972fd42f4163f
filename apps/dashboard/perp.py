"""A perpetual bot's figures for its page and the API, from its owner's live status (Redis):
position in contracts, entry, mark, unrealized PnL, leverage, margin used and free, the
liquidation price and distance, funding booked and the next funding time; in hedge position mode
also ``legs``: the long and the short leg, each with its contracts, entry, unrealized PnL, margin
used, funding and (isolated) liquidation price. ``None`` for a spot
bot or a bot no host runs (its figures are only known while it runs)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from apps.dashboard import live

FIELDS = (
    "position_contracts",
    "entry_price",
    "mark_price",
    "unrealized",
    "realized",
    "fees",
    "funding",
    "leverage",
    "margin_mode",
    "position_mode",
    "wallet",
    "margin_balance",
    "margin_used",
    "margin_free",
    "liquidation_price",
    "liquidation_distance",
    "liquidation_paused",
    "funding_rate",
    "funding_source",
    "next_funding",
    "settle",
)


def perp_figures(status: dict | None) -> dict[str, Any] | None:
    perp = (status or {}).get("perp")
    if not perp:
        return None
    out = {key: perp.get(key) for key in FIELDS}
    next_ts = perp.get("next_funding_ts")
    out["next_funding"] = (
        None if next_ts is None else datetime.fromtimestamp(next_ts / 1e9, tz=UTC).isoformat(timespec="seconds")
    )
    distance = perp.get("liquidation_distance")
    out["liquidation_distance_pct"] = None if distance is None else f"{distance * 100:.2f}"
    out["legs"] = perp.get("legs")  # hedge mode: the long and the short leg's figures
    out["as_of_ts"] = (status or {}).get("ts")  # the status these figures come from (ns): page and API agree on it
    return out


def bot_perp(*, bot_id: int) -> dict[str, Any] | None:
    return perp_figures(live.bot_status(bot_id=bot_id))
