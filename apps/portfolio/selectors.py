"""Reads for balances and PnL series, scoped to the requesting user."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.core.exceptions import ValidationError
from django.db.models import Max, Min, QuerySet
from django.utils import timezone

from apps.accounts.models import User
from apps.bots.selectors import bot_list
from apps.core.timeseries import DEFAULT_ORIGIN, Last, bucketed, parse_interval
from apps.exchanges.selectors import exchange_account_list
from apps.portfolio.models import Balance, PnlMinute, PnlSnapshot

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
    # Minute rollups re-bucketed give exactly the raw snapshots' buckets when [start, end) is
    # on whole minutes; otherwise (and for the edge minutes) read the raw snapshots.
    minute = timedelta(minutes=1)
    inner_start = _ceil(start, minute)
    inner_end = _floor(end, minute)
    if inner_start >= inner_end or width % minute:
        rows = _raw_series(bot.pk, start, end, width)
        for row in rows:
            del row["last_ts"]
        return rows
    rows = _rollup_series(bot.pk, inner_start, inner_end, width)
    if start < inner_start or end > inner_end:
        edges = []
        if start < inner_start:
            edges += _raw_series(bot.pk, start, inner_start, width)
        if end > inner_end:
            edges += _raw_series(bot.pk, inner_end, end, width)
        rows = _merge(rows, edges)
    for row in rows:
        del row["last_ts"]
    return rows


def _floor(moment: datetime, step: timedelta) -> datetime:
    return moment - (moment - DEFAULT_ORIGIN) % step


def _ceil(moment: datetime, step: timedelta) -> datetime:
    floor = _floor(moment, step)
    return floor if floor == moment else floor + step


_VALUES = ("position", "cash", "mid", "realized", "unrealized", "fees", "equity", "peak_equity")


def _raw_series(bot_id: int, start: datetime, end: datetime, width: timedelta) -> list[dict]:
    qs = PnlSnapshot.objects.filter(bot_id=bot_id, ts__gte=start, ts__lt=end)
    return list(
        bucketed(
            qs,
            time_field="ts",
            interval=width,
            # Aggregates over a column come before the Last() aliases that reuse the column's name.
            equity_high=Max("equity"),
            equity_low=Min("equity"),
            drawdown=Max("drawdown"),
            last_ts=Max("ts"),
            **{name: Last(name, "ts") for name in _VALUES},
        )
    )


def _rollup_series(bot_id: int, start: datetime, end: datetime, width: timedelta) -> list[dict]:
    # One pass for the extremes and each bucket's last minute, then those minutes' rows by
    # primary key: much cheaper than an ordered array_agg per value column.
    qs = PnlMinute.objects.filter(bot_id=bot_id, minute__gte=start, minute__lt=end)
    if width == timedelta(minutes=1):  # the rollup rows are the answer
        rows = qs.order_by("minute").values("minute", *_VALUES, "equity_high", "equity_low", "max_drawdown")
        return [
            {"bucket": r["minute"], "last_ts": r.pop("minute"), "drawdown": r.pop("max_drawdown"), **r} for r in rows
        ]
    rows = list(
        bucketed(
            qs,
            time_field="minute",
            interval=width,
            last_ts=Max("minute"),
            equity_high=Max("equity_high"),
            equity_low=Min("equity_low"),
            drawdown=Max("max_drawdown"),
        )
    )
    last = PnlMinute.objects.filter(bot_id=bot_id, minute__in=[row["last_ts"] for row in rows])
    values = {m["minute"]: m for m in last.values("minute", *_VALUES)}
    for row in rows:
        minute = values[row["last_ts"]]
        row.update({name: minute[name] for name in _VALUES})
    return rows


def _merge(rows: list[dict], edges: list[dict]) -> list[dict]:
    """Combine bucket rows computed from different time ranges (disjoint, so the later wins)."""
    by_bucket: dict[datetime, dict] = {}
    for row in sorted([*rows, *edges], key=lambda r: (r["bucket"], r["last_ts"])):
        seen = by_bucket.get(row["bucket"])
        if seen is None:
            by_bucket[row["bucket"]] = dict(row)
            continue
        seen.update({name: row[name] for name in _VALUES})
        seen["last_ts"] = row["last_ts"]
        seen["equity_high"] = max(seen["equity_high"], row["equity_high"])
        seen["equity_low"] = min(seen["equity_low"], row["equity_low"])
        seen["drawdown"] = max(seen["drawdown"], row["drawdown"])
    return [by_bucket[b] for b in sorted(by_bucket)]
