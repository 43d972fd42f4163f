"""Time-bucketed queries that return the same rows on TimescaleDB and on plain PostgreSQL.

``Bucket`` renders ``time_bucket(width, ts, origin)`` where TimescaleDB is enabled and
``date_bin(width, ts, origin)`` otherwise. Both take the same arguments and, with the same
explicit origin, put every row in the same bucket; the origin defaults to TimescaleDB's own
(2000-01-03, a Monday), so weekly buckets start on Mondays either way. Month-length widths
are refused: ``date_bin`` cannot express them.

``First``/``Last`` pick the value at the earliest/latest time in a group (TimescaleDB's
``first``/``last``, or an ordered ``array_agg`` on plain PostgreSQL). Rows sharing that time
make the pick arbitrary on both; with ``tiebreak`` (e.g. a trade id) the order is
(time, tiebreak) and both databases run the same ordered ``array_agg``, so the pick is
deterministic and equal.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.db import models
from django.db.models import QuerySet

from apps.core.db.backend.base import extension_enabled

DEFAULT_ORIGIN = datetime(2000, 1, 3, tzinfo=UTC)

NAMED_INTERVALS = {
    "1s": timedelta(seconds=1),
    "5s": timedelta(seconds=5),
    "15s": timedelta(seconds=15),
    "1m": timedelta(minutes=1),
    "5m": timedelta(minutes=5),
    "15m": timedelta(minutes=15),
    "1h": timedelta(hours=1),
    "4h": timedelta(hours=4),
    "1d": timedelta(days=1),
    "1w": timedelta(weeks=1),
}


def ns_to_dt(ts: int) -> datetime:
    """Nanoseconds since the epoch (the trading core's time) to an aware UTC datetime (microseconds)."""
    seconds, rest = divmod(ts, 1_000_000_000)
    return datetime.fromtimestamp(seconds, tz=UTC).replace(microsecond=rest // 1000)


def dt_to_ns(dt: datetime) -> int:
    """An aware datetime to nanoseconds since the epoch."""
    return int(dt.timestamp()) * 1_000_000_000 + dt.microsecond * 1000


def parse_interval(value: str | timedelta, *, field: str = "interval") -> timedelta:
    """Accept a timedelta or one of NAMED_INTERVALS; raise ValueError naming what is accepted."""
    if isinstance(value, timedelta):
        interval = value
    else:
        try:
            interval = NAMED_INTERVALS[value]
        except (KeyError, TypeError):
            raise ValueError(
                f"{field}: {value!r} is not a bucket width; accepted: {', '.join(NAMED_INTERVALS)}"
            ) from None
    if interval <= timedelta(0):
        raise ValueError(f"{field}: {value!r} must be longer than zero")
    return interval


def timescale_enabled(connection) -> bool:
    cached = getattr(connection, "_mm_timescale_enabled", None)
    if cached is None:
        cached = extension_enabled(connection)
        connection._mm_timescale_enabled = cached
    return cached


class Bucket(models.Func):
    """The start of the fixed-width time bucket that ``expression`` falls in."""

    output_field = models.DateTimeField()

    def __init__(self, expression, interval: timedelta, origin: datetime = DEFAULT_ORIGIN):
        self.interval = parse_interval(interval)
        super().__init__(
            models.Value(self.interval, output_field=models.DurationField()),
            expression,
            models.Value(origin, output_field=models.DateTimeField()),
        )

    def as_sql(self, compiler, connection, **extra_context):
        function = "time_bucket" if timescale_enabled(connection) else "date_bin"
        return super().as_sql(compiler, connection, function=function, **extra_context)


class _Ordered(models.Aggregate):
    """Value at the first/last (time[, tiebreak...]) of a group."""

    timescale_function = ""
    direction = ""

    def __init__(self, value, time, *tiebreak, **extra):
        self.tiebreaks = len(tiebreak)
        super().__init__(value, time, *tiebreak, **extra)

    def _resolve_output_field(self):
        return self.get_source_expressions()[0].output_field

    def as_sql(self, compiler, connection, **extra_context):
        if timescale_enabled(connection) and not self.tiebreaks:
            return super().as_sql(compiler, connection, function=self.timescale_function, **extra_context)
        value_sql, params = compiler.compile(self.source_expressions[0])
        keys = []
        for expression in self.source_expressions[1:]:
            key_sql, key_params = compiler.compile(expression)
            keys.append(f"{key_sql} {self.direction}")
            params = (*params, *key_params)
        sql = f"(array_agg({value_sql} ORDER BY {', '.join(keys)}))[1]"
        return sql, tuple(params)


class First(_Ordered):
    timescale_function = "first"
    direction = "ASC"
    name = "First"


class Last(_Ordered):
    timescale_function = "last"
    direction = "DESC"
    name = "Last"


def bucketed(
    queryset: QuerySet,
    *,
    time_field: str,
    interval: str | timedelta,
    origin: datetime = DEFAULT_ORIGIN,
    **aggregates,
) -> QuerySet:
    """Group ``queryset`` into time buckets: rows ``{'bucket': start, <aggregate>: value, ...}``
    ordered by bucket. Empty buckets are absent (no gap filling), on both databases."""
    width = parse_interval(interval)
    return (
        queryset.annotate(bucket=Bucket(models.F(time_field), width, origin))
        .values("bucket")
        .annotate(**aggregates)
        .order_by("bucket")
    )
