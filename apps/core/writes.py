"""Markers and row descriptions for the batched write services (``apps.orders.services``,
``apps.portfolio.services``, ``apps.bots.services``).

A batched write takes one list of rows and writes them with one fixed statement. The markers
tell a batching caller (the bot hosts' database writer threads, ``workers.dbwriter``) what it may
do with them: merge consecutive calls into one (:func:`batchable`), commit with
``synchronous_commit`` on (:func:`durable`), run them before the rest of a merged batch
(``batch_first``). ``fn.describe(row)`` names a row the database refused, with the values it
cannot hold (:func:`describe_values`).
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

# NUMERIC(38, 18) (money and sizes in the database) holds absolute values below 10^20.
NUMERIC_LIMIT = Decimal(10) ** 20
# A call with at least this many rows writes them with COPY (bulk ingest): at 50,000 rows an
# ``INSERT ... FROM unnest(arrays)`` costs about 2.5x more per row (bench/README.md, "Fills and
# PnL ingest"). The bot hosts' batches (``workers.dbwriter.MAX_BATCH``, 2,000) stay below it.
COPY_MIN_ROWS = 5000


def batchable(fn: Callable) -> Callable:
    """Mark a function taking one list as safe to merge with its queued neighbours."""
    fn.batchable = True
    return fn


def durable(fn: Callable) -> Callable:
    """Mark a batchable function whose rows must survive a PostgreSQL crash once committed
    (fills; order state changes reconciliation reads): a batch holding it commits with
    ``synchronous_commit`` on. Without it a commit can be acknowledged, the caller told, and
    the rows still lost by a crash within ~3 x ``wal_writer_delay``."""
    fn.durable = True
    return fn


def describe_values(**values) -> str:
    """``name value`` pairs for a refused row's description, naming the values the database
    cannot hold (NUMERIC(38, 18): below 10^20 in absolute value)."""
    parts = []
    for name, value in values.items():
        if isinstance(value, Decimal) and value.is_finite() and abs(value) >= NUMERIC_LIMIT:
            parts.append(f"{name} {value} (beyond NUMERIC(38, 18): below 1E+20 accepted)")
        else:
            parts.append(f"{name} {value}")
    return ", ".join(parts)
