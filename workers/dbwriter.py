"""The bot host's database writers: plain threads, each with its own Django connection.

A host has three (:class:`workers.host.Host`): telemetry and order updates (``db``), order rows
a place waits for (``orders``) and setup reads (``setup``), so an awaited row never queues
behind telemetry. The loop hands a write over with :meth:`AsyncWriter.submit` (fire and forget)
or :meth:`AsyncWriter.call` (a future for the result); the writer thread runs them in order.

- **Batched**: consecutive calls of the same *batchable* function (one list argument, marked
  with ``apps.core.writes.batchable``: the write services of ``apps.orders.services``,
  ``apps.portfolio.services`` and ``apps.bots.services``, fixed ``unnest(array)`` statements) are merged into one statement, row creation first
  (``batch_first``), in one transaction. The commit is synchronous (waits for the WAL flush)
  when the batch holds a *durable* function (``apps.core.writes.durable``: fills and order state changes),
  else ``synchronous_commit`` is off (telemetry: a PostgreSQL crash may take its last ~0.6 s).
- **Retried**: a dropped connection (``OperationalError``/``InterfaceError``: PostgreSQL
  restarted, the backend terminated) is closed and the same batch retried, with backoff, until
  the database takes it; nothing handed over is lost while the process lives (what a dead
  process had not written is recovered by take-over reconciliation).
- **Isolated**: any other error (a value the database refuses, e.g. one overflowing
  ``numeric(38,18)``) splits the batch: each call alone, then each row of a failing call alone.
  Only the rows the database refuses are dropped (logged, and reported to ``on_refused`` with
  the call's ``owner``, the bot that made it); every other bot's rows are written at once.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)
MAX_BATCH = 2000


def _is_durable(fn: Callable) -> bool:
    return getattr(fn, "durable", False)


class RowsRefused(Exception):
    """The database refused some rows of a call for good (the others were written)."""


class _Call:
    """One submitted call: function, arguments, completion callback and owner (a bot id)."""

    __slots__ = ("args", "done", "fn", "owner")

    def __init__(self, fn: Callable, args: tuple, done: Callable | None, owner: int | None) -> None:
        self.fn, self.args, self.done, self.owner = fn, args, done, owner


class DbWriter:
    """Run callables on a dedicated thread with a Django connection (see the module docstring).

    ``on_refused(owner, fn, row, error)`` is called on the writer thread for each row the
    database refused for good."""

    def __init__(
        self,
        name: str = "db-writer",
        *,
        one_statement: bool = False,
        linger_s: float = 0.0,
        on_refused: Callable[[int | None, Callable, Any, BaseException], None] | None = None,
    ) -> None:
        # ``one_statement``: each batchable function here writes with a single statement, so a
        # batch of one function runs as that statement alone (autocommit, ``synchronous_commit``
        # set for the session, off unless the function is durable): one round trip instead of
        # four (BEGIN, SET LOCAL, it, COMMIT).
        self.one_statement = one_statement
        # ``linger_s``: a batchable write first waits this long for more to join its batch (one
        # transaction for many calls). For telemetry that nobody awaits, not for order rows.
        self.linger_s = linger_s
        self.on_refused = on_refused
        self._session = {"conn": None, "durable": None}  # this thread's synchronous_commit setting
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._held: list = []  # the item ``_collect`` read past (it runs next): at most one
        self.errors = 0
        self.refused = 0  # rows dropped because the database refused them
        self.timing: dict[str, list] = {}  # function name -> [calls, rows, seconds, thread CPU seconds]
        self.cpu_s = 0.0  # this thread's CPU time so far (Python holding the GIL, and libpq)
        self._thread.start()

    def submit(
        self, fn: Callable[..., Any], *args: Any, done: Callable | None = None, owner: int | None = None
    ) -> None:
        """Queue ``fn(*args)``. ``done(result, exc)``, if given, is called on the writer thread
        once the write is committed (or failed for good)."""
        self._queue.put(_Call(fn, args, done, owner))

    def drain(self, timeout: float | None = None) -> None:
        """Finish everything queued so far (retrying until the database takes it), then end."""
        self._queue.put(None)
        self._thread.join(timeout)

    def pending(self) -> int:
        return self._queue.qsize()

    def _next(self) -> _Call | None:
        if self._held:
            return self._held.pop()
        return self._queue.get()

    def _collect(self, first: _Call) -> list[tuple[Callable, list[_Call]]]:
        """The queued batchable calls after ``first`` (stopping at the first call that is not
        batchable, which runs next), grouped per function in order; ``batch_first`` functions
        (row creation) go first: a later write of the batch may refer to a row they create."""
        groups: dict[Callable, list[_Call]] = {first.fn: [first]}
        total = len(first.args[0])
        while total < MAX_BATCH:
            try:
                nxt = self._queue.get_nowait()
            except queue.Empty:
                break
            if nxt is None or not getattr(nxt.fn, "batchable", False):
                self._held.append(nxt)  # may be None: the end
                break
            groups.setdefault(nxt.fn, []).append(nxt)
            total += len(nxt.args[0])
        return sorted(groups.items(), key=lambda kv: not getattr(kv[0], "batch_first", False))

    def _run_batch(self, groups: list[tuple[Callable, list[_Call]]]) -> list:
        """One transaction, one commit for the whole batch. Without a durable function in it,
        ``synchronous_commit`` is off: the commit does not wait for the WAL flush, and only a
        PostgreSQL crash can lose its last few hundred ms of rows (telemetry). With one (fills,
        order updates) the commit waits for the flush: what was acknowledged survives a crash;
        what was not is still queued here and retried. Returns each group's result."""
        from apps.core.write_batches import run_batch

        durable_batch = any(_is_durable(fn) for fn, _calls in groups)
        merged = [(fn, [row for c in calls for row in c.args[0]]) for fn, calls in groups]
        answers = run_batch(merged, durable=durable_batch, one_statement=self.one_statement, session=self._session)
        results = []
        for (fn, rows), (result, seconds, cpu) in zip(merged, answers, strict=True):
            stat = self.timing.setdefault(fn.__name__, [0, 0, 0.0, 0.0])
            stat[0] += 1
            stat[1] += len(rows)
            stat[2] += seconds
            stat[3] += cpu
            results.append(result)
        return results

    def _retrying(self, work: Callable[[], Any]) -> Any:
        """``work()``, retried after a dropped connection until the database takes it."""
        from django import db

        delay = 0.05
        while True:
            try:
                return work()
            except (db.OperationalError, db.InterfaceError) as exc:
                self.errors += 1
                logger.warning("database write failed (%s); reconnecting and retrying", exc)
                db.connection.close()
                time.sleep(delay)
                delay = min(delay * 2, 2.0)

    def _write_batch(self, groups: list[tuple[Callable, list[_Call]]]) -> None:
        """Write a merged batch; if the database refuses it, each call alone (``_write_call``)."""
        try:
            results = self._retrying(lambda: self._run_batch(groups))
        except Exception:
            self.errors += 1
            for fn, calls in groups:
                for call in calls:
                    self._write_call(fn, call)
            return
        for (_fn, calls), result in zip(groups, results, strict=True):
            for call in calls:
                _notify(call, result, None)

    def _write_call(self, fn: Callable, call: _Call) -> None:
        """One call of a refused batch; if refused too, each of its rows alone: only the rows the
        database refuses are dropped (reported to ``on_refused``), the others are written."""
        rows = call.args[0]
        try:
            result = self._retrying(lambda: self._run_batch([(fn, [call])]))
        except Exception as exc:
            if len(rows) == 1:
                self._refuse(fn, call, rows[0], exc)
                _notify(call, None, RowsRefused(f"{fn.__name__}: 1 row refused: {exc}"))
                return
            refused = 0
            for row in rows:
                try:
                    self._retrying(lambda row=row: self._run_batch([(fn, [_Call(fn, ([row],), None, None)])]))
                except Exception as row_exc:
                    refused += 1
                    self._refuse(fn, call, row, row_exc)
            _notify(call, None, RowsRefused(f"{fn.__name__}: {refused} of {len(rows)} rows refused: {exc}"))
            return
        _notify(call, result, None)

    def _refuse(self, fn: Callable, call: _Call, row: Any, exc: BaseException) -> None:
        self.refused += 1
        describe = getattr(fn, "describe", None)
        what = describe(row) if describe is not None else repr(row)[:300]
        logger.error("database refused a %s row of bot %s (%s): %s", fn.__name__, call.owner, what, exc)
        if self.on_refused is not None:
            try:
                self.on_refused(call.owner, fn, row, exc)
            except Exception:
                logger.exception("reporting a refused row failed")

    def _run(self) -> None:
        from django import db

        while True:
            self.cpu_s = time.thread_time()
            item = self._next()
            if item is None:
                break
            if getattr(item.fn, "batchable", False):
                if self.linger_s:
                    time.sleep(self.linger_s)
                self._write_batch(self._collect(item))
                continue
            try:
                result = self._retrying(lambda item=item: item.fn(*item.args))
            except Exception as exc:  # a bug or bad data: reported to the caller, never kills the thread
                self.errors += 1
                logger.exception("database call %s failed", getattr(item.fn, "__name__", item.fn))
                _notify(item, None, exc)
                continue
            _notify(item, result, None)
        db.connection.close()


def _notify(call: _Call, result: Any, exc: BaseException | None) -> None:
    """Tell the caller its call is done; a failing callback never stops the writer thread."""
    if call.done is None:
        return
    try:
        call.done(result, exc)
    except Exception:
        logger.exception("completion callback of %s failed", getattr(call.fn, "__name__", call.fn))


class AsyncWriter:
    """A :class:`DbWriter` as the host's event loop uses it (``submit`` / ``call`` / ``pending``)."""

    def __init__(self, writer: DbWriter) -> None:
        self.writer = writer
        self._submitted = 0  # counted on the loop thread
        self._completed = 0  # counted on the writer thread

    def _count(self, result: Any, exc: BaseException | None) -> None:
        self._completed += 1

    def submit(self, fn: Callable[..., Any], *args: Any, owner: int | None = None) -> None:
        """Fire and forget (retried until the database takes it or refuses its rows)."""
        self._submitted += 1
        self.writer.submit(fn, *args, done=self._count, owner=owner)

    def call(self, fn: Callable[..., Any], *args: Any, owner: int | None = None) -> asyncio.Future:
        """Run ``fn(*args)`` on the writer; await the returned future for the result."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()

        def done(result: Any, exc: BaseException | None) -> None:
            self._completed += 1
            if not loop.is_closed():  # else nobody waits any more
                loop.call_soon_threadsafe(_settle, future, result, exc)

        self._submitted += 1
        self.writer.submit(fn, *args, done=done, owner=owner)
        return future

    def pending(self) -> int:
        """Writes handed over and not yet committed (or failed for good)."""
        return self._submitted - self._completed

    def drain(self, timeout: float | None = None) -> None:
        self.writer.drain(timeout)


def _settle(future: asyncio.Future, result: Any, exc: BaseException | None) -> None:
    if future.done():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)
