"""The bot page's market-making quality panel over a chosen window: the analytics of
:func:`apps.portfolio.analytics.bot_analytics` (PnL decomposition, markouts, quote uptime, time
at the touch, order-to-trade, inventory), the fill ratio, the markout distribution, order-entry
latency histograms and reconciliation health. Loaded after the page (it can take a while)."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import DurationField, ExpressionWrapper, F, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from apps.dashboard import figures
from apps.dashboard.metric_format import format_value

WINDOWS = {"15m": timedelta(minutes=15), "1h": timedelta(hours=1), "24h": timedelta(days=1), "7d": timedelta(days=7)}
WINDOW_CHOICES = ("15m", "1h", "today", "24h", "7d")
LATENCY_ROWS = 5000

INCIDENT_HELP = {
    "orphan_order": "An order with this bot's client-id prefix was open on the venue but not in the database "
    "(e.g. a crash between sending and recording). Reconciliation cancelled it on the venue; resolve once checked.",
    "missing_order": "The database had the order open but the venue did not; its row was closed. "
    "Check the fills of that order, then resolve.",
    "missing_fill": "The venue reported a trade the database did not have; it was recorded from the venue's trade "
    "list, so position and PnL include it. Resolve after checking the fill.",
    "balance_mismatch": "The account's balance on the venue differs from what the bots' fills imply (deposits, "
    "withdrawals, trades outside the bots). Check the account, then resolve.",
    "position_mismatch": "The perpetual position on the venue differs from what the bot's recorded fills add up to "
    "(a fill missed, or trades outside the bot). The venue's position is the truth: check the fills, then resolve.",
    "stop_unconfirmed": "A stop could not be confirmed: orders were still open on the venue when the loop stopped. "
    "The supervisor retries; resolve once the venue shows no open order.",
    "risk": "A risk limit was breached and the configured action (pause, flatten, stop) was taken.",
}


def window_bounds(window: str, now: datetime | None = None) -> tuple[datetime, datetime]:
    now = now or timezone.now()
    if window == "today":
        return now.replace(hour=0, minute=0, second=0, microsecond=0), now
    return now - WINDOWS.get(window, WINDOWS["1h"]), now


def _percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def latency(bot, start: datetime, end: datetime) -> dict[str, Any]:
    """Order-entry latency in ms: place -> ack (``acked_at - sent_at``, the bot's own send stamp;
    ``- created`` for rows without it) and cancel -> ack
    (``closed_at - cancel_requested_at`` of cancelled orders), with p50/p90/p99."""
    from apps.orders.models import Order

    orders = Order.objects.filter(bot=bot, created__gte=start, created__lt=end)
    place = orders.filter(acked_at__isnull=False).annotate(
        d=ExpressionWrapper(F("acked_at") - Coalesce("sent_at", "created"), output_field=DurationField())
    )
    cancel = orders.filter(cancel_requested_at__isnull=False, closed_at__isnull=False, status="cancelled").annotate(
        d=ExpressionWrapper(F("closed_at") - F("cancel_requested_at"), output_field=DurationField())
    )
    out: dict[str, Any] = {}
    for name, qs in (("place", place), ("cancel", cancel)):
        values = sorted(
            max(0.0, d.total_seconds() * 1000) for d in qs.values_list("d", flat=True)[:LATENCY_ROWS] if d is not None
        )
        out[name] = {
            "values": values,
            "count": len(values),
            "p50": _percentile(values, 0.5),
            "p90": _percentile(values, 0.9),
            "p99": _percentile(values, 0.99),
        }
    return out


def fill_ratio(bot, start: datetime, end: datetime) -> Decimal | None:
    """Filled quantity / placed quantity of the orders placed in the window."""
    from apps.orders.models import Order

    sums = Order.objects.filter(bot=bot, created__gte=start, created__lt=end).aggregate(
        placed=Sum("quantity"), filled=Sum("filled_quantity")
    )
    if not sums["placed"]:
        return None
    return (sums["filled"] or Decimal(0)) / sums["placed"]


def markouts(bot, start: datetime, end: datetime) -> dict[str, list[float]]:
    """Stored fill markouts per horizon (quote per unit of base; positive: the market moved our way)."""
    from apps.orders.models import Fill

    rows = Fill.objects.filter(bot=bot, ts__gte=start, ts__lt=end).values_list(
        "markout_1s", "markout_10s", "markout_60s"
    )
    out: dict[str, list[float]] = {"1s": [], "10s": [], "60s": []}
    for row in rows[:20_000]:
        for name, value in zip(out, row, strict=True):
            if value is not None:
                out[name].append(float(value))
    return out


def reconciliation(user, bot) -> dict[str, Any]:
    from django_celery_beat.models import PeriodicTask

    from apps.core.selectors import incident_list

    task = PeriodicTask.objects.filter(task="workers.reconcile.run").values("last_run_at", "enabled").first()
    incidents = list(incident_list(user=user).filter(bot=bot).order_by("-ts")[:20])
    for incident in incidents:
        incident.help = INCIDENT_HELP.get(incident.kind, "")
    return {
        "last_run": task["last_run_at"] if task else None,
        "enabled": bool(task and task["enabled"]),
        "open": sum(1 for i in incidents if not i.resolved),
        "incidents": incidents,
    }


def quality_context(*, user, bot, window: str) -> dict[str, Any]:
    from apps.portfolio.analytics import bot_analytics

    window = window if window in WINDOW_CHOICES else "1h"
    start, end = window_bounds(window)
    stats = bot_analytics(user=user, bot_id=bot.pk, start=start, end=end)
    quote, base = bot.market.quote, bot.market.base
    pnl = stats["pnl"]
    ratio = fill_ratio(bot, start, end)
    summary = [
        ("Spread capture", format_value(pnl["spread_capture"], "money", quote=quote)),
        ("Inventory PnL", format_value(pnl["inventory_pnl"], "money", quote=quote)),
        ("Fees", format_value(pnl["fees"], "money", quote=quote)),
        ("Total (window)", format_value(pnl["total"], "money", quote=quote)),
        ("Fills", format_value(stats["fills"], "int")),
        ("Fill ratio (filled / placed qty)", format_value(ratio, "pct")),
        ("Order-to-trade (orders per fill)", format_value(stats["order_to_trade"], "ratio")),
        ("Quote uptime (both sides)", format_value(stats["quote_uptime"], "pct")),
        ("Time at the touch", format_value(stats["time_at_top"], "pct")),
        ("Average quoted spread", format_value(stats["avg_quoted_spread_bps"], "bps")),
    ]
    marks = [
        (
            horizon,
            format_value(m["per_unit"], "money", quote=quote) if m["per_unit"] is not None else "—",
            format_value(m["total"], "money", quote=quote),
            format_value(m["quantity"], "qty", base=base),
        )
        for horizon, m in stats["markouts"].items()
    ]
    lat = latency(bot, start, end)
    return {
        "bot": bot,
        "window": window,
        "windows": WINDOW_CHOICES,
        "start": start,
        "end": end,
        "summary": summary,
        "markout_rows": marks,
        "markout_fig": figures.histograms(markouts(bot, start, end), title=f"Fill markouts ({quote} per {base})"),
        "latency": lat,
        "latency_fig": figures.histograms(
            {"place → ack": lat["place"]["values"], "cancel → ack": lat["cancel"]["values"]},
            title="Order-entry latency (ms)",
        ),
        "inventory_fig": figures.inventory_histogram(stats["inventory"]["histogram"], base=base),
        "recon": reconciliation(user, bot),
    }
