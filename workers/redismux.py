"""One pipelined Redis connection shared by all of a host's bot loops for their venue writes.

Every quote cycle that sends orders makes one round trip of fenced Lua calls
(:meth:`workers.paper_venue.PaperVenue.send_many`). Through redis-py's asyncio client each such
round trip took a connection from the pool, packed every argument in Python, parsed the replies
and gave the connection back: about a third of a host's CPU with 250 bots (cProfile,
bench/bench_bots.py). Here the loops share one connection: a request is packed into RESP bytes
and written at once (Redis answers in order, so the replies are matched to the requests first in,
first out: many cycles can be in flight together), and replies are parsed by hiredis in C.

Errors keep redis-py's meaning for the callers: a Redis error reply raises
:class:`redis.exceptions.ResponseError` (after the whole request's replies are in); a dropped
connection or no answer within ``timeout_s`` fails every request in flight with
:class:`redis.exceptions.ConnectionError` / :class:`TimeoutError` and the next request reconnects.
A failed request may or may not have been applied, exactly as with a dropped redis-py pipeline:
the callers' fencing and take-over handle that.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

import hiredis
from redis.asyncio.connection import parse_url
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError


def pack(args: tuple) -> bytes:
    """One command as RESP bytes (arguments: bytes, str or int; amounts are integer units, so
    no float is ever sent). hiredis packs in C: half the time of the same loop in Python, on
    every fenced venue write (bench/bench_bots.py)."""
    try:
        return _pack_command(args)
    except TypeError:  # name the argument (hiredis does not)
        for a in args:
            if type(a) not in (bytes, str, int, float):  # bool is refused by hiredis too
                raise TypeError(f"Redis argument {a!r}: accepted bytes, str or int") from None
        raise


_pack_command = hiredis.pack_command


def connection_setup(options: dict) -> list[tuple]:
    """The commands a new connection sends first (AUTH, SELECT) for ``parse_url`` options."""
    setup: list[tuple] = []
    if options.get("password"):
        user = options.get("username")
        setup.append(("AUTH", user, options["password"]) if user else ("AUTH", options["password"]))
    if int(options.get("db", 0) or 0):
        setup.append(("SELECT", int(options["db"])))
    return setup


class _Protocol(asyncio.Protocol):
    def __init__(self, mux: RedisMux) -> None:
        self.mux = mux
        self.reader = hiredis.Reader(replyError=ResponseError)

    def data_received(self, data: bytes) -> None:
        reader = self.reader
        reader.feed(data)
        waiters = self.mux._waiters
        while True:
            reply = reader.gets()
            if reply is False:
                return
            if not waiters:  # a reply nobody waits for: the stream is out of step
                self.mux._fail(RedisConnectionError("Redis sent a reply no request was waiting for"))
                return
            waiter = waiters[0]
            waiter[2].append(reply)
            if len(waiter[2]) == waiter[1]:
                waiters.popleft()
                future = waiter[0]
                if not future.done():
                    errors = [r for r in waiter[2] if isinstance(r, ResponseError)]
                    if errors:
                        future.set_exception(errors[0])
                    else:
                        future.set_result(waiter[2])

    def connection_lost(self, exc: Exception | None) -> None:
        self.mux._lost(self, exc)


class RedisMux:
    """Pipelined requests over one connection (see the module docstring)."""

    def __init__(self, url: str, *, timeout_s: float = 5.0) -> None:
        self.options = parse_url(url)
        self.timeout_s = timeout_s
        self._transport: asyncio.Transport | None = None
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Future | None = None
        # Requests in flight, oldest first: [future, replies expected, replies so far, sent at].
        self._waiters: deque[list] = deque()
        self._watchdog: asyncio.TimerHandle | None = None
        self._wbuf: list[bytes] = []
        self._flush_scheduled = False
        self.reconnects = 0

    def _scheduled_flush(self) -> None:
        self._flush_scheduled = False
        self._flush()

    def _flush(self) -> None:
        data, self._wbuf = b"".join(self._wbuf), []
        if data and self._transport is not None:
            self._transport.write(data)

    async def execute(self, commands: list[tuple], *, now: bool = False) -> list:
        """Send the commands in one write; return their replies in order. The write is made at
        the end of this loop turn with every other request of the turn, or at once (``now``:
        a feed's publish, stamped just before)."""
        if self._transport is None:
            await self._connect()
        return await self._enqueue(commands, now)

    def submit(self, commands: list[tuple]) -> asyncio.Future | None:
        """Queue the commands as :meth:`execute` does, without waiting: the future gets their
        replies. ``None`` when not connected (then :meth:`execute` connects first): a request
        queued here is always written before any request made after it."""
        if self._transport is None:
            return None
        return self._enqueue(commands, False)

    def _enqueue(self, commands: list[tuple], now: bool) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._waiters.append([future, len(commands), [], time.monotonic()])
        # Written once per loop turn for every request made in it: one system call (each one
        # gives up the GIL and may wait to get it back) instead of one per quote cycle.
        self._wbuf.extend(pack(c) for c in commands)
        if now:
            self._flush()
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._scheduled_flush)
        if self._watchdog is None:
            self._watchdog = loop.call_later(self.timeout_s / 2, self._check_timeouts)
        return future

    async def _connect(self) -> None:
        if self._connecting is not None:  # another loop is connecting: wait for it
            await asyncio.shield(self._connecting)
            if self._transport is None:
                raise RedisConnectionError("Redis connection failed")
            return
        loop = asyncio.get_running_loop()
        self._connecting = loop.create_future()
        try:
            opts = self.options
            transport, protocol = await asyncio.wait_for(
                loop.create_connection(
                    lambda: _Protocol(self), opts.get("host", "127.0.0.1"), int(opts.get("port", 6379))
                ),
                self.timeout_s,
            )
            self._transport, self._protocol = transport, protocol
            setup = connection_setup(opts)
            if setup:
                self._connecting.set_result(None)
                self._connecting = None
                try:
                    await self.execute(setup)
                except ResponseError:  # refused (wrong password, no such database): not usable
                    self._fail(RedisConnectionError("Redis refused the connection's AUTH/SELECT"))
                    raise
        except (OSError, TimeoutError) as exc:
            self._transport = None
            raise RedisConnectionError(f"Redis connection failed: {exc}") from exc
        finally:
            if self._connecting is not None:
                self._connecting.set_result(None)
                self._connecting = None

    def _check_timeouts(self) -> None:
        self._watchdog = None
        if not self._waiters:
            return
        if time.monotonic() - self._waiters[0][3] > self.timeout_s:
            self._fail(RedisTimeoutError(f"no answer from Redis within {self.timeout_s:g} s"))
            return
        self._watchdog = asyncio.get_running_loop().call_later(self.timeout_s / 2, self._check_timeouts)

    def _fail(self, exc: Exception) -> None:
        """Fail every request in flight and drop the connection (its replies cannot be matched)."""
        transport = self._transport
        self._transport = None
        self._protocol = None
        self._wbuf = []  # requests of the failed waiters: never sent
        waiters, self._waiters = self._waiters, deque()
        for waiter in waiters:
            if not waiter[0].done():
                waiter[0].set_exception(exc)
        if transport is not None:
            self.reconnects += 1
            transport.close()

    def _lost(self, protocol: _Protocol, exc: Exception | None) -> None:
        if protocol is self._protocol:
            self._fail(RedisConnectionError(f"Redis connection lost: {exc or 'closed by the server'}"))

    async def aclose(self) -> None:
        if self._transport is not None:
            transport = self._transport
            self._transport = None
            transport.close()
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
