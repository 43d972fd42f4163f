"""One database thread per host: the asyncio loops hand it writes and (when they must wait,
e.g. an order row before the place is sent) await the result.

Writes are retried until they succeed: a dropped connection (PostgreSQL restarted, the backend
terminated) is closed and reopened, so nothing handed to the writer is lost while the process
lives. What a dead process had not written yet is recovered by take-over reconciliation.
Consecutive calls of the same *batchable* function (one list argument, marked
with :func:`batchable`) are merged into one call, in order.
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


def batchable(fn: Callable) -> Callable:
    """Mark a function taking one list as safe to merge with its queued neighbours."""
    fn.batchable = True
    return fn


class DbWriter:
    """Run callables on a dedicated thread with a Django connection, retrying DB errors."""

    def __init__(self, name: str = "db-writer") -> None:
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._stop = threading.Event()
        self._held: tuple | None = None
        self.errors = 0
        self._thread.start()

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Fire and forget (still retried until it succeeds)."""
        self._queue.put((fn, args, None, None))

    def call(self, fn: Callable[..., Any], *args: Any) -> asyncio.Future:
        """Run ``fn(*args)`` on the writer thread; await the returned future for the result."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.put((fn, args, loop, future))
        return future

    def stop(self) -> None:
        self._stop.set()
        self._queue.put(None)

    def pending(self) -> int:
        return self._queue.qsize()

    def _next(self) -> tuple | None:
        if self._held is not None:
            item, self._held = self._held, None
            return item
        return self._queue.get()

    def _merge(self, fn: Callable, rows: list, waiters: list) -> list:
        rows = list(rows)
        while len(rows) < MAX_BATCH:
            try:
                nxt = self._queue.get_nowait()
            except queue.Empty:
                break
            if nxt is not None and nxt[0] is fn:
                rows.extend(nxt[1][0])
                if nxt[3] is not None:
                    waiters.append((nxt[2], nxt[3]))
                continue
            self._held = nxt  # a different call: it runs next, order kept
            break
        return rows

    def _run(self) -> None:
        from django import db

        while not self._stop.is_set():
            item = self._next()
            if item is None:
                break
            fn, args, loop, future = item
            waiters = [] if future is None else [(loop, future)]
            if getattr(fn, "batchable", False):
                args = (self._merge(fn, args[0], waiters),)
            delay = 0.05
            while True:
                try:
                    result = fn(*args)
                    for w_loop, w_future in waiters:
                        _hand_back(w_loop, w_future, result, None)
                    break
                except (db.OperationalError, db.InterfaceError) as exc:
                    self.errors += 1
                    logger.warning("database write %s failed (%s); reconnecting", getattr(fn, "__name__", fn), exc)
                    db.connection.close()
                    time.sleep(delay)
                    delay = min(delay * 2, 2.0)
                    if self._stop.is_set():
                        break
                except Exception as exc:  # a bug or bad data: report, never kill the thread
                    self.errors += 1
                    logger.exception("database write %s failed", getattr(fn, "__name__", fn))
                    for w_loop, w_future in waiters:
                        _hand_back(w_loop, w_future, None, exc)
                    break
        db.connection.close()


def _hand_back(loop: asyncio.AbstractEventLoop, future: asyncio.Future, result: Any, exc: BaseException | None) -> None:
    try:
        loop.call_soon_threadsafe(_resolve, future, result, exc)
    except RuntimeError:  # the host's loop is gone (shutting down): nobody waits any more
        pass


def _resolve(future: asyncio.Future, result: Any, exc: BaseException | None) -> None:
    if future.done():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)
