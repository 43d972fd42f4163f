"""Writes for balances and PnL snapshots (bulk inserts use COPY)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import ValidationError
from django.db import connection, transaction

from apps.exchanges.models import ExchangeAccount
from apps.portfolio.models import Balance, PnlSnapshot

PNL_COLUMNS = (
    "ts",
    "bot_id",
    "position",
    "cash",
    "mid",
    "realized",
    "unrealized",
    "fees",
    "equity",
    "peak_equity",
    "drawdown",
)
_REQUIRED = ("position", "cash", "realized", "unrealized", "fees", "equity", "peak_equity", "drawdown")


def _amount(field: str, value: Any, *, minimum: Decimal | None = None) -> Decimal:
    try:
        d = Decimal(repr(value) if isinstance(value, float) else str(value))
    except (InvalidOperation, ValueError):
        raise ValidationError({field: f"{value!r} is not a decimal number"}) from None
    if not d.is_finite() or (minimum is not None and d < minimum):
        raise ValidationError({field: f"{value!r} is not accepted; accepted: a finite decimal >= {minimum}"})
    return d


@transaction.atomic
def balances_replace(*, account: ExchangeAccount, balances: Mapping[str, Mapping[str, Any]]) -> list[Balance]:
    """Store the account's balances ``{asset: {"free": x, "total": y}}``; assets absent are removed."""
    kept = []
    for asset, amounts in balances.items():
        free = _amount(f"{asset}.free", amounts.get("free", 0), minimum=Decimal(0))
        total = _amount(f"{asset}.total", amounts.get("total", free), minimum=Decimal(0))
        balance, _ = Balance.objects.update_or_create(
            account=account, asset=str(asset).upper(), defaults={"free": free, "total": total}
        )
        kept.append(balance)
    Balance.objects.filter(account=account).exclude(pk__in=[b.pk for b in kept]).delete()
    return kept


def _pnl_row(row: Mapping[str, Any]) -> list[Any]:
    ts = row.get("ts")
    if not isinstance(ts, datetime) or ts.tzinfo is None:
        raise ValidationError({"ts": f"{ts!r} is not a timezone-aware datetime"})
    if row.get("bot_id") is None:
        raise ValidationError({"bot_id": "is missing"})
    for name in _REQUIRED:
        if row.get(name) is None:
            raise ValidationError({name: "is missing"})
    return [row.get(c) for c in PNL_COLUMNS]


def pnl_snapshot_record(**values: Any) -> PnlSnapshot:
    """Record one PnL snapshot (fields as on :class:`PnlSnapshot`, ``bot_id`` and ``ts`` required)."""
    _pnl_row(values)
    return PnlSnapshot.objects.create(**{c: values.get(c) for c in PNL_COLUMNS})


def pnl_snapshots_bulk_insert(rows: Iterable[Mapping[str, Any]], *, validate: bool = True) -> int:
    """Insert many snapshots with COPY; returns the number inserted. With ``validate=False``
    rows must already be complete (every column of ``PNL_COLUMNS``)."""
    count = 0
    columns = ", ".join(PNL_COLUMNS)
    sql = f"COPY portfolio_pnlsnapshot ({columns}) FROM STDIN"
    with transaction.atomic(), connection.cursor() as cursor, cursor.cursor.copy(sql) as copy:
        for row in rows:
            copy.write_row(_pnl_row(row) if validate else [row[c] for c in PNL_COLUMNS])
            count += 1
    return count


_ROLLUP_VALUES = ("position", "cash", "mid", "realized", "unrealized", "fees", "equity", "peak_equity")
_KEYS = "(SELECT DISTINCT * FROM unnest(%s::bigint[], %s::timestamptz[]) AS k (bot_id, bucket)) AS keys"
_FORGET_SQL = f"DELETE FROM portfolio_pnlminute m USING {_KEYS} WHERE m.bot_id = keys.bot_id AND m.bucket = keys.bucket"
_RECOMPUTE_SQL = f"""
INSERT INTO portfolio_pnlminute
    (bot_id, bucket, last_ts, {", ".join(_ROLLUP_VALUES)}, equity_high, equity_low, max_drawdown)
SELECT s.bot_id, keys.bucket, max(s.ts),
       {", ".join(f"(array_agg(s.{name} ORDER BY s.ts DESC))[1]" for name in _ROLLUP_VALUES)},
       max(s.equity), min(s.equity), max(s.drawdown)
FROM {_KEYS} JOIN portfolio_pnlsnapshot s
  ON s.bot_id = keys.bot_id AND s.ts >= keys.bucket AND s.ts < keys.bucket + INTERVAL '1 minute'
GROUP BY s.bot_id, keys.bucket
"""


def pnl_minutes_recompute(keys: Iterable[tuple[int, datetime]]) -> None:
    """Recompute the rollup of these (bot id, minute start) pairs from the snapshots left:
    what the AFTER DELETE trigger does on plain PostgreSQL, for TimescaleDB (where a row-level
    DELETE trigger would make every delete decompress the batches it touches)."""
    keys = list(keys)
    if not keys:
        return
    params = [[k[0] for k in keys], [k[1] for k in keys]]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_FORGET_SQL, params)
        cursor.execute(_RECOMPUTE_SQL, params)


def pnl_delete_for_bot(*, bot_id: int) -> int:
    """Delete a bot's PnL snapshots and its minute rollup; returns the snapshots deleted.

    Run before the bot's own delete (``pre_delete``, same transaction). The filter is on
    ``bot_id`` alone, the compression ``segmentby`` column, so on TimescaleDB compressed chunks
    lose whole batches without decompressing a row (no continuous aggregate and no row-level
    DELETE trigger on the table, either of which would force decompression and hit
    ``timescaledb.max_tuples_decompressed_per_dml_transaction``). The rollup rows go
    explicitly: on plain PostgreSQL a trigger would do it, on TimescaleDB nothing else does."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM portfolio_pnlsnapshot WHERE bot_id = %s", [bot_id])
        deleted = cursor.rowcount
        cursor.execute("DELETE FROM portfolio_pnlminute WHERE bot_id = %s", [bot_id])
    return deleted
