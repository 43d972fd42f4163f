"""Running a batch of write services in one transaction, in this process or in a child process.

A batch is ``[(fn, rows), ...]``: batchable write services (:mod:`apps.core.writes`) with the rows
of every call merged. :func:`run_batch` writes it with the Django connection of the calling
thread. :class:`ChildWriter` runs the same function in a child process of a standard-library
``ProcessPoolExecutor`` (one worker, so batches run in the order they are sent), for the bot
hosts' database writers (``workers.dbwriter``).

Why a child process: a bot host's event loop and its writer threads share one GIL. Building the
statement parameters of ~800 order rows a second takes the writer threads 0.07-0.08 of a core of
Python, in slices of up to the interpreter's 5 ms switch interval, and each time the loop thread
comes back from a system call (a Redis reply, ``select``) while a writer holds the GIL it waits
for that slice: on 2026-12-07 the slowest 1 % of loop turns overlapped a writer batch 77 % of the
time (21 % of all turns). In the child the parameters are built under its own GIL; the host only
pickles the rows (C) and waits with the GIL released. ``bench/README.md`` has the comparison
(``MM_DB_WRITER=thread`` runs the batches on the writer threads themselves).

Errors cross the process boundary as plain values (a database exception need not pickle): a
dropped connection comes back as :class:`BatchRetry` (the writer reconnects and retries), any
other error as itself when it pickles (a ``ValidationError`` naming the field), else as
:class:`BatchRefused` with its message (the writer splits the batch either way).
"""

from __future__ import annotations

import concurrent.futures
import logging
import multiprocessing
import os
import pickle
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

_session: dict[str, Any] = {"conn": None, "durable": None}  # the child's (or a thread's) session setting
_writers: weakref.WeakSet = weakref.WeakSet()  # every ChildWriter of this process (close_all)


class BatchRetry(Exception):
    """The connection dropped while writing the batch: reconnect and send it again."""


class BatchRefused(Exception):
    """The database refused the batch (a value it cannot hold, a constraint): split it."""


def run_batch(groups: list[tuple[Callable, list]], *, durable: bool, one_statement: bool, session=None) -> list:
    """Write ``groups`` in one transaction (one commit), ``synchronous_commit`` on when ``durable``.

    ``one_statement`` with a single group: the statement runs alone in autocommit with the
    session's ``synchronous_commit`` (set only when it changes; ``session`` keeps that state for
    the caller's connection). Returns each group's result and its [seconds, CPU seconds]."""
    from django.db import connection, transaction

    session = session if session is not None else _session
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


# ---------------------------------------------------------------------------------------------
def _child_init(database_name: str, parent_pid: int) -> None:
    """The child's start: Django with the parent's database (a test run renames it), and a
    watchdog that ends the child once its parent is gone (a host killed with SIGKILL: the pool's
    queue never reports it to a child, which holds both ends of its pipe)."""
    import django
    from django.conf import settings

    django.setup()
    settings.DATABASES["default"]["NAME"] = database_name
    threading.Thread(target=_exit_with_parent, args=(parent_pid,), name="parent-watch", daemon=True).start()


def _exit_with_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(0.5)
    os._exit(0)


def _child_batch(groups: list[tuple[Callable, list]], durable: bool, one_statement: bool):
    """Run in the child: ``("ok", results)``, ``("retry", message)`` or ``("refused", exception)``
    (the database's own exception when it pickles, else :class:`BatchRefused` with its message)."""
    from django import db

    try:
        return "ok", run_batch(groups, durable=durable, one_statement=one_statement)
    except (db.OperationalError, db.InterfaceError) as exc:
        db.connection.close()
        return "retry", str(exc)
    except Exception as exc:
        if db.connection.needs_rollback or not db.connection.is_usable():
            db.connection.close()
        try:
            pickle.dumps(exc)
        except Exception:
            return "refused", BatchRefused(f"{type(exc).__name__}: {exc}")
        return "refused", exc


class ChildWriter:
    """Batches written by one child process, in order (see the module docstring).

    The child is started with ``spawn`` (a bot host is a threaded Celery worker: forking it would
    copy locks held by other threads). If it dies, the batch it held is answered
    :class:`BatchRetry` and a new child is started for the retry."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None
        _writers.add(self)

    def _executor(self) -> concurrent.futures.ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                from django.db import connection

                self._pool = concurrent.futures.ProcessPoolExecutor(
                    max_workers=1,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_child_init,
                    initargs=(connection.settings_dict["NAME"], os.getpid()),
                )
            return self._pool

    def start(self) -> None:
        """Start the child now (``spawn`` and Django's setup take a second or two), so the first
        batch does not wait for it; a failure here is logged, the first batch tries again."""
        try:
            self._executor().submit(os.getpid).result()
        except Exception as exc:
            logger.warning("database writer child %s did not start: %s", self.name, exc)
            self.close(wait=False)

    def run(self, groups: list[tuple[Callable, list]], *, durable: bool, one_statement: bool) -> list:
        """Write the batch in the child; raise :class:`BatchRetry`, or the exception that refused it."""
        pool = self._executor()
        try:
            kind, value = pool.submit(_child_batch, groups, durable, one_statement).result()
        except concurrent.futures.process.BrokenProcessPool as exc:
            logger.warning("database writer child %s died (%s); starting another", self.name, exc)
            self.close(wait=False)
            raise BatchRetry(f"writer child died: {exc}") from None
        if kind == "ok":
            return value
        if kind == "retry":
            raise BatchRetry(value)
        raise value

    def close(self, wait: bool = True) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=wait, cancel_futures=not wait)


def close_all() -> None:
    """End every writer child of this process (and its database connection): for a test run's
    end, before its database is dropped, when some host was never drained."""
    for writer in list(_writers):
        writer.close(wait=True)


def child_writes_enabled() -> bool:
    """Whether the bot hosts write batches from a child process (``MM_DB_WRITER``, see mmsite.env)."""
    from mmsite import env

    return env.db_writer_mode() == "process" and os.name == "posix"
