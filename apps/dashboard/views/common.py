"""Helpers shared by the portal's views: PnL summaries and how close each risk limit is."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import PermissionDenied
from django.utils import timezone

from apps.accounts.errors import FieldErrors
from apps.bots.selectors import bot_can_change
from apps.portfolio.selectors import pnl_series


def require_change(user, bot) -> None:
    """Viewers (and anyone but the owner and operators) may read a bot, never act on it."""
    if not bot_can_change(user=user, bot=bot):
        raise PermissionDenied("you may view this bot but not change it")


def field_errors(exc: Exception) -> dict[str, Any]:
    """Per-field messages of a service error (``FieldErrors``, ``ValidationError``, input errors)."""
    if isinstance(exc, FieldErrors):
        return exc.errors
    if hasattr(exc, "message_dict"):
        return exc.message_dict
    errors = getattr(exc, "errors", None)
    if isinstance(errors, dict):
        return errors
    return {"__all__": [str(exc)]}


def error_text(exc: Exception) -> str:
    def flat(errors: Any, prefix: str = "") -> list[str]:
        if isinstance(errors, dict):
            return [m for k, v in errors.items() for m in flat(v, f"{prefix}{k}." if k != "__all__" else prefix)]
        items = errors if isinstance(errors, (list, tuple)) else [errors]
        return [f"{prefix.rstrip('.')}: {m}" if prefix else str(m) for m in items]

    return "; ".join(flat(field_errors(exc)))


def safe_next(request, default: str) -> str:
    """The posted ``next`` URL when it points into this site, else ``default``."""
    from django.utils.http import url_has_allowed_host_and_scheme

    target = request.POST.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return target
    return default


def dec(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


def today_rows(*, user, bot) -> list[dict[str, Any]]:
    """Minute PnL buckets since midnight UTC (empty when the bot has not traded today)."""
    now = timezone.now()
    start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return pnl_series(user=user, bot_id=bot.pk, interval="1m", start=start, end=now + timedelta(minutes=1))


def today_pnl(rows: list[dict[str, Any]]) -> Decimal | None:
    """Equity change since the first snapshot of today (quote currency)."""
    if not rows:
        return None
    first, last = dec(rows[0]["equity"]), dec(rows[-1]["equity"])
    if first is None or last is None:
        return None
    return last - first


def risk_usage(bot, status: dict[str, Any] | None, pnl_today: Decimal | None) -> list[dict[str, Any]]:
    """Each configured limit with what is used of it: ``{name, used, limit, pct, level}``
    (level ``ok`` < 70% ≤ ``warn`` < 90% ≤ ``danger``)."""
    risk = bot.risk or {}
    status = status or {}
    position = dec(status.get("position"))
    drawdown = dec(status.get("drawdown"))
    rows = []

    def add(name: str, used: Decimal | None, limit: Any, unit: str, key: str = "") -> None:
        limit_d = dec(limit)
        if limit_d is None or limit_d <= 0:
            return
        pct = None if used is None else float(min(abs(used) / limit_d, Decimal(10)) * 100)
        level = "ok" if pct is None or pct < 70 else "warn" if pct < 90 else "danger"
        rows.append(
            {"name": name, "used": used, "limit": limit_d, "unit": unit, "pct": pct, "level": level, "key": key}
        )

    add("Position", position, risk.get("max_position_base"), bot.market.base, "position")
    if position is not None and status.get("equity") is not None and dec(status.get("position")) is not None:
        mid = None
        orders = status.get("orders") or []
        if orders:
            prices = [dec(o["price"]) for o in orders if dec(o.get("price"))]
            mid = sum(prices) / len(prices) if prices else None
        add("Position value", None if mid is None else position * mid, risk.get("max_position_quote"), bot.market.quote)
    add("Drawdown", drawdown, risk.get("max_drawdown"), bot.market.quote, "drawdown")
    loss = None if pnl_today is None else max(-pnl_today, Decimal(0))
    add("Daily loss", loss, risk.get("daily_loss_limit"), bot.market.quote)
    add("Open orders", Decimal(len(status.get("orders") or [])), risk.get("max_open_orders", 50), "orders", "orders")
    return rows


def group_events(events, *, lookback: int = 3, limit: int = 40) -> list[dict[str, Any]]:
    """Bot events (newest first) with repeats collapsed: an event whose ``(kind, code)`` matches
    one of the last ``lookback`` groups joins it (so alternating pairs such as
    ``post_only_would_cross`` / ``reject_unknown`` become two rows with counts). Each group:
    ``{kind, code, message (the newest), ts (newest), first_ts, count}``."""
    groups: list[dict[str, Any]] = []
    for event in events:
        key = (event.kind, event.code)
        match = next((g for g in groups[-lookback:] if (g["kind"], g["code"]) == key), None)
        if match is not None and event.code:
            match["count"] += 1
            match["first_ts"] = event.ts
            continue
        if len(groups) >= limit:
            break
        groups.append(
            {
                "kind": event.kind,
                "code": event.code,
                "message": event.message,
                "ts": event.ts,
                "first_ts": event.ts,
                "count": 1,
            }
        )
    return groups
