"""The host's database writes in a child process, so they never hold the loop's GIL.

A bot host used to run its database writers as threads of its own process. Each write is
Python work (SQL text, parameters, Decimals) and several socket round trips, and every one of
those had to win the GIL back from the event loop that runs hundreds of bots' cycles: the loop
lost ~0.4 ms on each of its own socket calls getting the GIL back, and an awaited order row took
26 ms at the median with 250 bots (bench/bench_bots.py, docs/workers.md). Here the same
:class:`workers.dbwriter.DbWriter` threads run in a child process (``python -m workers.dbproc``)
and the loop only pickles requests onto a pipe, once per loop turn.

Nothing handed over is lost: every request stays in the parent until the child reports it
committed (or failed for good); if the child dies, a new one is started and gets every request
not yet reported, in order (the writes are idempotent: inserts ignore rows already there, order
updates only move forward). When the host dies, the child sees end-of-file on its input, finishes
every write it has received and exits.

Protocol (both directions): frames of a 4-byte big-endian length and a pickle. Parent -> child:
first an init dict (database settings, writer options), then lists of requests, each pickled on
its own: ``(seq, writer, fn, args, wants_result)``; ``fn`` is a module-level function (pickled by
reference). Child -> parent: lists of ``(seq, result or None, error text or None)``.

A request is pickled when it is made and only its bytes are kept until the child confirms it:
the rows themselves are freed at once. Kept as objects, the thousands of row tuples waiting in
a busy host were what its young-generation garbage collections spent their time on (each one
stops every bot of the host).
"""

from __future__ import annotations

import asyncio
import logging
import os
import pickle
import struct
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[1]
_LEN = struct.Struct(">I")
STATS = "*stats*"  # a request answered by the child itself: its writers' timings


class DbCallError(Exception):
    """A database call failed for good in the writer process (the text says why)."""


class Writer:
    """One writer of the child process, as the bot loops use it (``submit`` / ``call``)."""

    def __init__(self, proc: DbProcess, name: str) -> None:
        self._proc = proc
        self.name = name

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Fire and forget (the child retries it until it succeeds)."""
        self._proc._send(self.name, fn, args, None)

    def call(self, fn: Callable[..., Any], *args: Any) -> asyncio.Future:
        """Run ``fn(*args)`` in the child; await the returned future for the result."""
        future = asyncio.get_running_loop().create_future()
        self._proc._send(self.name, fn, args, future)
        return future

    def pending(self) -> int:
        return self._proc.pending(self.name)


class _Reader(asyncio.Protocol):
    def __init__(self, proc: DbProcess) -> None:
        self.proc = proc
        self.buf = bytearray()

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        while len(buf) >= 4:
            (n,) = _LEN.unpack_from(buf)
            if len(buf) < 4 + n:
                break
            payload = bytes(buf[4 : 4 + n])
            del buf[: 4 + n]
            self.proc._on_replies(pickle.loads(payload))

    def connection_lost(self, exc: Exception | None) -> None:
        self.proc._on_child_gone()


class DbProcess:
    """The child process and its writers (``writers``: name -> DbWriter keyword arguments)."""

    def __init__(self, name: str, writers: dict[str, dict]) -> None:
        self.name = name
        self.writer_options = writers
        self.loop: asyncio.AbstractEventLoop | None = None
        self.proc: subprocess.Popen | None = None
        self._write = None  # the pipe transport to the child's stdin
        self._seq = 0
        self._outbox: list[bytes] = []
        self._flush_scheduled = False
        # seq -> (pickled request, writer, future or None): not yet reported done by the child.
        self._unacked: dict[int, tuple[bytes, str, asyncio.Future | None]] = {}
        self._pending: dict[str, int] = {}  # writer -> requests not yet reported done
        self._closing = False
        self._gone: asyncio.Event | None = None
        self.restarts = 0
        self.errors = 0

    def writer(self, name: str) -> Writer:
        if name not in self.writer_options:
            raise KeyError(f"no writer {name!r}; configured: {', '.join(self.writer_options)}")
        return Writer(self, name)

    def pending(self, name: str | None = None) -> int:
        """Requests not yet reported done (``name``: of one writer)."""
        if name is None:
            return len(self._unacked)
        return self._pending.get(name, 0)

    # ----------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Start the child (from the host's loop); requests made before are sent then."""
        from django.conf import settings
        from django.db import connections

        self.loop = asyncio.get_running_loop()
        self._gone = asyncio.Event()
        env = dict(os.environ)
        env["DJANGO_SETTINGS_MODULE"] = settings.SETTINGS_MODULE or env.get("DJANGO_SETTINGS_MODULE", "")
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "workers.dbproc", self.name],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=ROOT,
            env=env,
        )
        self._write, _ = await self.loop.connect_write_pipe(asyncio.BaseProtocol, self.proc.stdin)
        await self.loop.connect_read_pipe(lambda: _Reader(self), self.proc.stdout)
        # The database this process uses (a test run's test database included).
        db = {k: v for k, v in connections["default"].settings_dict.items() if k != "TEST"}
        self._frame({"db": db, "writers": self.writer_options})
        # Everything not reported done, in order: what was queued before the start and, after a
        # restart, what the dead child had not confirmed (the outbox is part of it).
        self._outbox = []
        if self._unacked:
            self._frame([req for req, _, _ in self._unacked.values()])

    def _send(self, writer: str, fn: Callable, args: tuple, future: asyncio.Future | None) -> None:
        self._seq += 1
        request = pickle.dumps((self._seq, writer, fn, args, future is not None), pickle.HIGHEST_PROTOCOL)
        self._unacked[self._seq] = (request, writer, future)
        self._pending[writer] = self._pending.get(writer, 0) + 1
        self._outbox.append(request)
        self._schedule_flush()

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled and self.loop is not None and self._write is not None:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        """One frame per loop turn for everything the bots handed over meanwhile."""
        self._flush_scheduled = False
        if not self._outbox or self._write is None or self._write.is_closing():
            return
        outbox, self._outbox = self._outbox, []
        self._frame(outbox)

    def _frame(self, obj: Any) -> None:
        payload = pickle.dumps(obj, pickle.HIGHEST_PROTOCOL)
        self._write.write(_LEN.pack(len(payload)) + payload)

    def _on_replies(self, replies: list) -> None:
        for seq, result, error in replies:
            request, writer, future = self._unacked.pop(seq, (None, None, None))
            if request is not None:
                self._pending[writer] -= 1
            if error is not None:
                self.errors += 1
            if future is None or future.done():
                continue
            if error is not None:
                future.set_exception(DbCallError(error))
            else:
                future.set_result(result)

    def _on_child_gone(self) -> None:
        if self._gone is not None:
            self._gone.set()
        if self._write is not None:
            self._write.close()  # the pipe to the dead child
        self._write = None
        if self._closing or self.loop is None or self.loop.is_closed():
            return
        code = self.proc.poll() if self.proc is not None else None
        logger.error(
            "database writer process %s exited (code %s) with %d writes not confirmed; restarting it",
            self.name,
            code,
            len(self._unacked),
        )
        self.restarts += 1
        self.loop.create_task(self._restart())

    async def _restart(self) -> None:
        delay = 0.2
        while not self._closing:
            await asyncio.sleep(delay)
            try:
                if self.proc is not None:
                    self.proc.wait(timeout=1)
                await self.start()
                return
            except Exception as exc:
                logger.error("database writer process %s not restarted: %s; retrying", self.name, exc)
                delay = min(delay * 2, 5.0)

    async def stats(self) -> dict:
        """The child's writers' timings: writer -> function -> [calls, rows, seconds]."""
        future = self.loop.create_future()
        self._send(STATS, None, (), future)
        return await future

    async def aclose(self, timeout: float = 30.0) -> None:
        """Hand over what is queued, let the child finish every write it has, and wait for it."""
        self._flush()
        self._closing = True
        if self._write is not None:
            self._write.close()  # end of input: the child drains its writers and exits
        if self._gone is not None:
            try:
                await asyncio.wait_for(self._gone.wait(), timeout)
            except TimeoutError:
                logger.error("database writer process %s still writing after %.0fs; killed", self.name, timeout)
        self.stop(timeout=1.0)

    def stop(self, timeout: float = 10.0) -> None:
        """Make sure the child is gone (from any thread; :meth:`aclose` is the orderly way)."""
        self._closing = True
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        try:
            if self.loop is None or self.loop.is_closed():
                proc.stdin.close()  # not on the loop's transport any more: close the pipe directly
        except OSError:
            pass
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


# --------------------------------------------------------------------------------------------
# The child
# --------------------------------------------------------------------------------------------
def _read_exact(stream, n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        chunk = stream.read(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def _read_frame(stream) -> Any:
    head = _read_exact(stream, 4)
    if head is None:
        return None
    body = _read_exact(stream, _LEN.unpack(head)[0])
    return None if body is None else pickle.loads(body)


class _Replies:
    """Completions from the writer threads, written back to the parent in batches."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.items: list = []
        self.lock = threading.Lock()
        self.ready = threading.Event()
        self.parent_gone = False
        self._thread = threading.Thread(target=self._run, name="db-replies", daemon=True)
        self._thread.start()

    def add(self, seq: int, result: Any, error: str | None) -> None:
        with self.lock:
            self.items.append((seq, result, error))
        self.ready.set()

    def done_for(self, seq: int, wants_result: bool) -> Callable:
        def done(result: Any, exc: BaseException | None) -> None:
            error = None if exc is None else f"{type(exc).__name__}: {exc}"
            self.add(seq, result if wants_result and exc is None else None, error)

        return done

    def _run(self) -> None:
        while True:
            self.ready.wait()
            self.ready.clear()
            self.flush()

    def flush(self) -> None:
        with self.lock:
            items, self.items = self.items, []
        if not items or self.parent_gone:
            return
        try:
            payload = pickle.dumps(items, pickle.HIGHEST_PROTOCOL)
        except Exception:  # a result that cannot be pickled: report each one that fails
            safe = []
            for seq, result, error in items:
                try:
                    pickle.dumps(result)
                    safe.append((seq, result, error))
                except Exception as exc:
                    safe.append((seq, None, f"result not transferable: {exc}"))
            payload = pickle.dumps(safe, pickle.HIGHEST_PROTOCOL)
        data = _LEN.pack(len(payload)) + payload
        try:
            while data:
                data = data[os.write(self.fd, data) :]
        except OSError:  # the parent is gone: keep writing to the database, stop reporting
            self.parent_gone = True


def child_main(name: str) -> None:
    # Frames go to the parent on the original stdout; anything printed goes to stderr instead.
    out_fd = os.dup(1)
    os.dup2(2, 1)
    # Background writes: when the machine is busy, the bot loops' threads (latency-sensitive)
    # are scheduled first. Nobody waits on these writes except a live account's order rows.
    os.nice(int(os.environ.get("MM_DB_PROCESS_NICE", "5")))
    stdin = sys.stdin.buffer
    init = _read_frame(stdin)
    if init is None:
        return
    import django

    django.setup()
    from django.conf import settings
    from django.db import connections

    # This process only writes: with DEBUG on (development, the demo) Django would also format
    # and keep every statement it runs, a third of this process's CPU under load.
    settings.DEBUG = False
    from workers.dbwriter import DbWriter

    connections["default"].settings_dict.update(init["db"])
    writers = {w: DbWriter(f"{name}-{w}", **opts) for w, opts in init["writers"].items()}
    replies = _Replies(out_fd)
    while True:
        try:
            requests = _read_frame(stdin)
        except Exception as exc:  # a request that cannot be read: nothing sensible follows it
            logger.error("database writer process %s: bad request frame: %s", name, exc)
            break
        if requests is None:
            break
        for raw in requests:
            try:
                seq, writer, fn, args, wants_result = pickle.loads(raw)
            except Exception as exc:  # its seq is unknown: the parent resends it after a restart
                logger.error("database writer process %s: bad request: %s", name, exc)
                continue
            if writer == STATS:
                replies.add(seq, {w: dict(x.timing) for w, x in writers.items()}, None)
                continue
            target = writers.get(writer)
            if target is None:
                replies.add(seq, None, f"no writer {writer!r}")
                continue
            target.submit(fn, *args, done=replies.done_for(seq, wants_result))
    for w in writers.values():
        w.drain()
    replies.flush()


if __name__ == "__main__":
    child_main(sys.argv[1] if len(sys.argv) > 1 else "db")
