"""Writes for balances and PnL snapshots. Snapshots are written batched
(:func:`pnl_snapshots_record`: one fixed ``INSERT ... SELECT FROM unnest(arrays)`` for a list of
rows, see ``apps.core.writes``), by the bot hosts' database writer threads and anything else."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any

from django.core.exceptions import ValidationError
from django.db import connection, transaction

from apps.core.timeseries import ns_to_dt
from apps.core.writes import COPY_MIN_ROWS, NUMERIC_LIMIT, batchable, describe_values
from apps.exchanges.models import ExchangeAccount
from apps.portfolio.models import Balance
from trading.contracts import to_decimal


def _amount(field: str, value: Any, *, minimum: Decimal | None = None) -> Decimal:
    try:
        d = Decimal(repr(value) if isinstance(value, float) else str(value))
    except (InvalidOperation, ValueError):
        raise ValidationError({field: f"{value!r} is not a decimal number"}) from None
    if not d.is_finite() or (minimum is not None and d < minimum) or abs(d) >= NUMERIC_LIMIT:
        raise ValidationError(
            {field: f"{value!r} is not accepted; accepted: a finite decimal >= {minimum} and below 1E+20"}
        )
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


_PNL_INSERT_SQL = """
    INSERT INTO portfolio_pnlsnapshot (ts, bot_id, position, cash, mid, realized, unrealized, fees, equity,
                                       peak_equity, drawdown)
    SELECT * FROM unnest(%s::timestamptz[], %s::bigint[], %s::numeric[], %s::numeric[], %s::numeric[],
                         %s::numeric[], %s::numeric[], %s::numeric[], %s::numeric[], %s::numeric[], %s::numeric[])
"""


_PNL_COPY_SQL = (
    "COPY portfolio_pnlsnapshot (ts, bot_id, position, cash, mid, realized, unrealized, fees, equity, peak_equity, "
    "drawdown) FROM STDIN"
)


@batchable
def pnl_snapshots_record(rows: list[tuple]) -> None:
    """Insert PnL snapshots in one fixed statement (COPY from ``COPY_MIN_ROWS`` rows); the table's insert triggers keep the minute
    roll-up as for any insert. Rows are in the engine's integer units, converted here (in the
    database writer, not in the bot loop): (ts ns, bot id, instrument, position lots, cash
    units, mid in ticks or None (may end in .5), realized, unrealized, fees, equity, peak
    equity, drawdown (cash units))."""
    if not rows:
        return
    columns: list[list] = [[] for _ in range(11)]
    for ts, bot_id, inst, position, cash, mid, *amounts in rows:  # amounts: realized .. drawdown
        values = (
            ns_to_dt(ts),
            bot_id,
            inst.quantity(position),
            inst.cash(cash),
            None if mid is None else inst.price(1) * Decimal(str(mid)),
            *(inst.cash(x) for x in amounts),
        )
        for column, value in zip(columns, values, strict=True):
            column.append(value)
    with connection.cursor() as cursor:
        if len(rows) < COPY_MIN_ROWS:
            cursor.execute(_PNL_INSERT_SQL, columns)
            return
        with cursor.cursor.copy(_PNL_COPY_SQL) as copy:
            for values in zip(*columns, strict=True):
                copy.write_row(values)


def _describe_snapshot(row: tuple) -> str:
    _ts, _bot, inst, position, cash, _mid, realized, _unrealized, _fees, equity, *_ = row
    return (
        "PnL snapshot ("
        + describe_values(
            position=inst.quantity(position),
            cash=inst.cash(cash),
            realized=inst.cash(realized),
            equity=inst.cash(equity),
        )
        + ")"
    )


pnl_snapshots_record.describe = _describe_snapshot

_PERP_SNAPSHOT_SQL = """
    INSERT INTO portfolio_pnlsnapshot (ts, bot_id, position, cash, mid, realized, unrealized, fees, equity,
                                       peak_equity, drawdown, funding)
    SELECT * FROM unnest(%s::timestamptz[], %s::bigint[], %s::numeric[], %s::numeric[], %s::numeric[],
                         %s::numeric[], %s::numeric[], %s::numeric[], %s::numeric[], %s::numeric[], %s::numeric[],
                         %s::numeric[])
"""


@batchable
def perp_snapshots_record(rows: list[tuple]) -> None:
    """Insert a perpetual bot's PnL snapshots: (ts ns, bot id, position in contracts, cash (wallet
    + realized + funding - fees), mark or None, realized, unrealized, fees, equity (margin
    balance), peak equity, drawdown, funding), money as exact fractions of the settle currency."""
    if not rows:
        return
    columns: list[list] = [[] for _ in range(12)]
    for ts, bot_id, *amounts in rows:
        values = (ns_to_dt(ts), bot_id, *(None if a is None else to_decimal(Fraction(a)) for a in amounts))
        for column, value in zip(columns, values, strict=True):
            column.append(value)
    with connection.cursor() as cursor:
        cursor.execute(_PERP_SNAPSHOT_SQL, columns)


def _describe_perp_snapshot(row: tuple) -> str:
    _ts, _bot, position, _cash, _mark, realized, _u, _f, equity, *_rest = row

    def dec(value) -> str:
        return f"{to_decimal(Fraction(value), 18):f}"

    return f"perp PnL snapshot (position {dec(position)}, realized {dec(realized)}, equity {dec(equity)})"


perp_snapshots_record.describe = _describe_perp_snapshot

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
