"""Reads for balances and PnL series, scoped to the requesting user."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.core.exceptions import ValidationError
from django.db.models import Max, Min, QuerySet
from django.utils import timezone

from apps.accounts.models import User
from apps.bots.selectors import bot_list
from apps.core.timeseries import Last, bucketed, parse_interval
from apps.exchanges.selectors import exchange_account_list
from apps.portfolio.models import Balance, PnlSnapshot

PNL_INTERVALS = ("1m", "1h", "1d")
DEFAULT_SPAN = {"1m": timedelta(days=1), "1h": timedelta(days=30), "1d": timedelta(days=365)}
MAX_BUCKETS = 20_000


def balance_list(*, user: User, account_id: int | None = None) -> QuerySet[Balance]:
    qs = Balance.objects.filter(account__in=exchange_account_list(user=user))
    if account_id is not None:
        qs = qs.filter(account_id=account_id)
    return qs.order_by("account_id", "asset")


def pnl_series(
    *,
    user: User,
    bot_id: int,
    interval: str = "1h",
    start: datetime | None = None,
    end: datetime | None = None,
) -> list[dict]:
    """A bot's PnL bucketed by ``interval`` (1m/1h/1d) over [start, end): per bucket the last
    position, cash, mid, realized, unrealized, fees, equity, peak equity; the high and low
    equity and the largest drawdown. Same rows on TimescaleDB and plain PostgreSQL.

    Raises ``Bot.DoesNotExist`` when the user may not see the bot (a 404, never a leak)."""
    if interval not in PNL_INTERVALS:
        raise ValidationError({"interval": f"{interval!r} is not accepted; accepted: {', '.join(PNL_INTERVALS)}"})
    width = parse_interval(interval)
    bot = bot_list(user=user).get(pk=bot_id)
    end = end or timezone.now()
    start = start or end - DEFAULT_SPAN[interval]
    if start >= end:
        raise ValidationError({"start": f"{start.isoformat()} is not before end {end.isoformat()}"})
    if (end - start) / width > MAX_BUCKETS:
        raise ValidationError(
            {"start": f"the range holds more than {MAX_BUCKETS} {interval} buckets; narrow it or use a wider interval"}
        )
    qs = PnlSnapshot.objects.filter(bot_id=bot.pk, ts__gte=start, ts__lt=end)
    rows = bucketed(
        qs,
        time_field="ts",
        interval=width,
        # Aggregates over a column come before the Last() aliases that reuse the column's name.
        equity_high=Max("equity"),
        equity_low=Min("equity"),
        drawdown=Max("drawdown"),
        position=Last("position", "ts"),
        cash=Last("cash", "ts"),
        mid=Last("mid", "ts"),
        realized=Last("realized", "ts"),
        unrealized=Last("unrealized", "ts"),
        fees=Last("fees", "ts"),
        equity=Last("equity", "ts"),
        peak_equity=Last("peak_equity", "ts"),
    )
    return list(rows)
