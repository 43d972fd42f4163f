"""Running a batch of write services in one transaction (the bot hosts' database writer threads,
``workers.dbwriter``).

A batch is ``[(fn, rows), ...]``: batchable write services (:mod:`apps.core.writes`) with the rows
of every call merged. :func:`run_batch` writes it with the Django connection of the calling thread.

Why on the writer threads and not in a child process: the slowest 1 % of a host's loop turns
overlap a writer batch ~79 % of the time (~20 % of all turns), which looks like the writers
holding the GIL; with the batches in a child process (a standard-library process pool, measured
2026-12-07, bench/README.md "Paper bots per worker") the overlap stayed at 79 % and neither the
placing cycle nor feed -> engine improved: those turns wait for a CPU that PostgreSQL is using to
take the batch, not for the GIL.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def run_batch(groups: list[tuple[Callable, list]], *, durable: bool, one_statement: bool, session: dict) -> list:
    """Write ``groups`` in one transaction (one commit), ``synchronous_commit`` on when ``durable``.

    ``one_statement`` with a single group: the statement runs alone in autocommit with the
    session's ``synchronous_commit`` (set only when it changes; ``session``, ``{"conn", "durable"}``,
    keeps that state for the caller's connection). Returns each group's result and its seconds
    and CPU seconds."""
    from django.db import connection, transaction

    if one_statement and len(groups) == 1:
        connection.ensure_connection()
        if connection.connection is not session["conn"] or session["durable"] != durable:
            with connection.cursor() as cursor:
                cursor.execute(f"SET synchronous_commit TO {'ON' if durable else 'OFF'}")
            session["conn"], session["durable"] = connection.connection, durable
        fn, rows = groups[0]
        return [_timed(fn, rows)]
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL synchronous_commit TO {'ON' if durable else 'OFF'}")
        return [_timed(fn, rows) for fn, rows in groups]


def _timed(fn: Callable, rows: list) -> tuple[Any, float, float]:
    t0, c0 = time.perf_counter(), time.thread_time()
    result = fn(rows)
    return result, time.perf_counter() - t0, time.thread_time() - c0
