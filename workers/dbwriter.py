"""A database writer thread; a host's writers run in its database process
(:mod:`workers.dbproc`), which hands them the loops' writes and reports each one done.

Writes are retried until they succeed: a dropped connection (PostgreSQL restarted, the backend
terminated) is closed and reopened, so nothing handed to the writer is lost while the process
lives. What a dead process had not written yet is recovered by take-over reconciliation.
Consecutive calls of the same *batchable* function (one list argument, marked
with :func:`batchable`) are merged into one call, in order.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)
MAX_BATCH = 2000


def batchable(fn: Callable) -> Callable:
    """Mark a function taking one list as safe to merge with its queued neighbours."""
    fn.batchable = True
    return fn


class DbWriter:
    """Run callables on a dedicated thread with a Django connection, retrying DB errors."""

    def __init__(self, name: str = "db-writer", *, one_statement: bool = False, linger_s: float = 0.0) -> None:
        # ``one_statement``: each batchable function here writes with a single statement, so a
        # batch of one function runs as that statement alone (its own transaction, committed
        # asynchronously: ``synchronous_commit`` is off for the whole session): one round trip
        # to PostgreSQL instead of four (BEGIN, SET LOCAL, the statement, COMMIT), each of which
        # had to win the GIL back from the bot loops.
        self.one_statement = one_statement
        # ``linger_s``: a batchable write first waits this long for more to join its batch (one
        # transaction for many calls: fewer round trips, each of which has to win the GIL back
        # from the bot loops). For telemetry that nobody awaits, not for the order rows.
        self.linger_s = linger_s
        self._session = None  # the connection the session setting was made on
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._held: list = []  # the item ``_collect`` read past (it runs next): at most one
        self.errors = 0
        self.timing: dict[str, list] = {}  # function name -> [calls, rows, seconds]
        self._thread.start()

    def submit(self, fn: Callable[..., Any], *args: Any, done: Callable | None = None) -> None:
        """Fire and forget (still retried until it succeeds). ``done(result, exc)``, if given, is
        called on the writer thread once the write is committed (or failed for good)."""
        self._queue.put((fn, args, done))

    def drain(self, timeout: float | None = None) -> None:
        """Finish everything queued so far (retrying until the database takes it), then end."""
        self._queue.put(None)
        self._thread.join(timeout)

    def pending(self) -> int:
        return self._queue.qsize()

    def _next(self) -> tuple | None:
        if self._held:
            return self._held.pop()
        return self._queue.get()

    def _collect(self, first: tuple) -> list[tuple]:
        """Drain the queued batchable calls after ``first`` (stopping at the first call that is
        not batchable, which runs next): grouped per function, rows concatenated in order."""
        groups: dict[Callable, tuple[list, list]] = {}

        def add(item: tuple) -> None:
            fn, args, done = item
            rows, waiters = groups.setdefault(fn, ([], []))
            rows.extend(args[0])
            if done is not None:
                waiters.append(done)

        add(first)
        total = len(first[1][0])
        while total < MAX_BATCH:
            try:
                nxt = self._queue.get_nowait()
            except queue.Empty:
                break
            if nxt is None or not getattr(nxt[0], "batchable", False):
                self._held.append(nxt)  # may be None: the end
                break
            add(nxt)
            total += len(nxt[1][0])
        # Functions marked ``batch_first`` (row creation) go first: a later write of the batch
        # may refer to a row they create; otherwise in order of first appearance.
        ordered = sorted(groups.items(), key=lambda kv: not getattr(kv[0], "batch_first", False))
        return [(fn, rows, waiters) for fn, (rows, waiters) in ordered]

    def _run_batch(self, groups: list[tuple]) -> None:
        """One transaction, one commit for the whole batch, with ``synchronous_commit`` off:
        the commit does not wait for the WAL flush (on this shared machine a flush takes 0.1-1 s).
        Only a PostgreSQL crash can lose the last few hundred ms of rows, and everything here is
        recoverable from the venue: orders on the venue unknown to the database are cancelled by
        take-over and by reconciliation, missing fills are recorded from the venue's trades."""
        from django.db import connection, transaction

        if self.one_statement and len(groups) == 1:
            connection.ensure_connection()
            if connection.connection is not self._session:  # a new connection: set it up once
                with connection.cursor() as cursor:
                    cursor.execute("SET synchronous_commit TO OFF")
                self._session = connection.connection
            fn, rows, _ = groups[0]
            results = [self._timed(fn, rows)]
        else:
            with transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.execute("SET LOCAL synchronous_commit TO OFF")
                results = [self._timed(fn, rows) for fn, rows, _ in groups]
        for (_fn, _rows, waiters), result in zip(groups, results, strict=True):
            for done in waiters:
                done(result, None)

    def _timed(self, fn: Callable, rows: list) -> Any:
        t0 = time.perf_counter()
        result = fn(rows)
        stat = self.timing.setdefault(fn.__name__, [0, 0, 0.0])
        stat[0] += 1
        stat[1] += len(rows)
        stat[2] += time.perf_counter() - t0
        return result

    def _run(self) -> None:
        from django import db

        while True:
            item = self._next()
            if item is None:
                break
            fn = item[0]
            if self.linger_s and getattr(fn, "batchable", False):
                time.sleep(self.linger_s)
            work = [("batch", self._collect(item))] if getattr(fn, "batchable", False) else [("call", item)]
            delay = 0.05
            while work:
                kind, payload = work[0]
                try:
                    if kind == "batch":
                        self._run_batch(payload)
                    else:
                        fn, args, done = payload
                        result = fn(*args)
                        if done is not None:
                            done(result, None)
                    work.pop(0)
                except (db.OperationalError, db.InterfaceError) as exc:
                    self.errors += 1
                    logger.warning("database write failed (%s); reconnecting and retrying", exc)
                    db.connection.close()
                    time.sleep(delay)
                    delay = min(delay * 2, 2.0)
                except Exception as exc:  # a bug or bad data: isolate it, never kill the thread
                    self.errors += 1
                    work.pop(0)
                    if kind == "batch" and len(payload) > 1:
                        work[:0] = [("batch", [group]) for group in payload]  # retry one by one
                        continue
                    logger.exception("database write failed")
                    waiters = payload[0][2] if kind == "batch" else [payload[2]]
                    for done in waiters:
                        if done is not None:
                            done(None, exc)
        db.connection.close()
