"""TimescaleDB policies and continuous aggregates for migrations, skipped on plain PostgreSQL.

Each ``*_sql`` function renders the statements TimescaleDB 2.x expects; :func:`timescale_only`
wraps them in a ``RunPython`` operation that executes them only when
``apps.core.timeseries.timescale_enabled(connection)`` is true at migrate time (and does nothing
on plain PostgreSQL, where the same tables stay ordinary tables).

Usage in a migration::

    from apps.core import timescale

    operations = [
        ...,
        timescale.timescale_only(
            timescale.compression_sql("marketdata_trade", segment_by=["market_id"], order_by="ts DESC"),
            timescale.retention_sql("marketdata_trade", drop_after="90 days"),
            reverse=timescale.remove_policies_sql("marketdata_trade"),
        ),
    ]

Compression note: on a hypertable with a unique index, TimescaleDB requires every column of
that index to be a ``segmentby`` or ``orderby`` column — :func:`compression_sql` callers list
them (e.g. trades unique on ``(market_id, trade_id, ts)`` segment by ``market_id`` and order by
``ts DESC, trade_id``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from django.db import migrations

_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]*")
_INTERVAL = re.compile(r"[0-9]+ (?:second|minute|hour|day|week|month|year)s?")
_ORDER_ITEM = re.compile(r"[a-z_][a-z0-9_]*(?: (?:ASC|DESC))?(?: NULLS (?:FIRST|LAST))?")


def _identifier(value: str, field: str) -> str:
    if not isinstance(value, str) or not _IDENTIFIER.fullmatch(value):
        raise ValueError(f"{field}: {value!r} is not a plain SQL identifier; accepted: lower-case [a-z0-9_]")
    return value


def _interval(value: str, field: str) -> str:
    if not isinstance(value, str) or not _INTERVAL.fullmatch(value):
        raise ValueError(f"{field}: {value!r} is not an interval; accepted: e.g. '7 days', '1 minute'")
    return value


def _order_by(value: str, field: str = "order_by") -> str:
    items = [item.strip() for item in value.split(",")]
    for item in items:
        if not _ORDER_ITEM.fullmatch(item):
            raise ValueError(f"{field}: {item!r} is not 'column [ASC|DESC]'")
    return ", ".join(items)


def compression_sql(
    table: str, *, segment_by: Sequence[str], order_by: str = "ts DESC", compress_after: str = "7 days"
) -> list[str]:
    """Enable native compression on hypertable ``table`` and add the compression policy."""
    _identifier(table, "table")
    segments = ", ".join(_identifier(column, "segment_by") for column in segment_by)
    return [
        f"ALTER TABLE {table} SET (timescaledb.compress, "
        f"timescaledb.compress_segmentby = '{segments}', "
        f"timescaledb.compress_orderby = '{_order_by(order_by)}')",
        f"SELECT add_compression_policy('{table}', compress_after => INTERVAL "
        f"'{_interval(compress_after, 'compress_after')}', if_not_exists => true)",
    ]


def retention_sql(table: str, *, drop_after: str) -> list[str]:
    """Drop chunks of hypertable (or continuous aggregate) ``table`` older than ``drop_after``."""
    _identifier(table, "table")
    return [
        f"SELECT add_retention_policy('{table}', drop_after => INTERVAL "
        f"'{_interval(drop_after, 'drop_after')}', if_not_exists => true)"
    ]


def remove_policies_sql(table: str, *, compression: bool = True, retention: bool = True) -> list[str]:
    """Reverse of :func:`compression_sql` / :func:`retention_sql`."""
    _identifier(table, "table")
    statements = []
    if retention:
        statements.append(f"SELECT remove_retention_policy('{table}', if_exists => true)")
    if compression:
        statements.append(f"SELECT remove_compression_policy('{table}', if_exists => true)")
        statements.append(f"ALTER TABLE {table} SET (timescaledb.compress = false)")
    return statements


def continuous_aggregate_sql(
    view: str,
    *,
    select: str,
    start_offset: str,
    end_offset: str,
    schedule_interval: str,
) -> list[str]:
    """Create continuous aggregate ``view`` from ``select`` (which must group by a
    ``time_bucket(...)``) and its refresh policy. ``WITH NO DATA`` lets it run inside the
    migration's transaction; the policy fills it in the background."""
    _identifier(view, "view")
    if "time_bucket(" not in select:
        raise ValueError("select: a continuous aggregate must group by time_bucket(...)")
    return [
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {view} WITH (timescaledb.continuous) AS {select.strip()} WITH NO DATA",
        f"SELECT add_continuous_aggregate_policy('{view}', "
        f"start_offset => INTERVAL '{_interval(start_offset, 'start_offset')}', "
        f"end_offset => INTERVAL '{_interval(end_offset, 'end_offset')}', "
        f"schedule_interval => INTERVAL '{_interval(schedule_interval, 'schedule_interval')}', "
        "if_not_exists => true)",
    ]


def drop_continuous_aggregate_sql(view: str) -> list[str]:
    """Reverse of :func:`continuous_aggregate_sql` (dropping the view drops its policy)."""
    return [f"DROP MATERIALIZED VIEW IF EXISTS {_identifier(view, 'view')}"]


def candles_select_sql(trades_table: str, *, width: str = "1 minute") -> str:
    """OHLCV per market and bucket from a trades table with ``ts``, ``market_id``, ``price``, ``qty``."""
    _identifier(trades_table, "trades_table")
    return (
        f"SELECT market_id, time_bucket(INTERVAL '{_interval(width, 'width')}', ts) AS bucket, "
        "first(price, ts) AS open, max(price) AS high, min(price) AS low, last(price, ts) AS close, "
        "sum(qty) AS volume, count(*) AS trades "
        f"FROM {trades_table} GROUP BY market_id, bucket"
    )


def _flatten(groups: Iterable[str | Iterable[str]]) -> list[str]:
    statements: list[str] = []
    for group in groups:
        if isinstance(group, str):
            statements.append(group)
        else:
            statements.extend(group)
    return statements


def timescale_only(*groups: str | Iterable[str], reverse: Iterable[str] = ()) -> migrations.RunPython:
    """A migration operation running ``groups`` (statements or lists of them) in order, only
    where TimescaleDB is enabled; ``reverse`` runs on unapply, also only there."""
    forward_sql = _flatten(groups)
    reverse_sql = _flatten([reverse])

    def run(sql: list[str]):
        def apply(apps, schema_editor):
            from apps.core.timeseries import timescale_enabled

            if not timescale_enabled(schema_editor.connection):
                return
            for statement in sql:
                schema_editor.execute(statement)

        return apply

    return migrations.RunPython(run(forward_sql), run(reverse_sql), elidable=False)
