"""The Redis connection class of a bot host's loop (:class:`LoopConnection`)."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis
from redis.connection import HiredisRespSerializer
from redis.exceptions import TimeoutError as RedisTimeoutError

_PACKER = HiredisRespSerializer()


class LoopConnection(aioredis.Connection):
    """redis-py's connection, writing a command from the caller's own task, packed by hiredis.

    With ``socket_timeout`` set, redis-py sends each command through ``asyncio.wait_for``, which
    runs the write in a new task: the command leaves only after one pass of the loop's ready
    queue and the caller resumes after another. On a host loop that runs hundreds of bots (16
    woken per pass) each pass is a batch of bot cycles, so every venue write waited for two of
    them before it reached Redis (bench/README.md, "Paper bots per worker"). Here the same
    timeout bounds the write with ``asyncio.timeout`` (no task, no extra pass) around the
    library's own send.

    Commands are packed by ``hiredis.pack_command`` through redis-py's own serializer for it
    (``redis.connection.HiredisRespSerializer``, what redis-py's synchronous client uses when
    hiredis is installed; its asyncio client packs in Python, re-joining the growing buffer for
    every argument). The bytes are the same (``tests/workers/test_host_redis.py``); a paper
    cycle's script call has ~50 arguments, where the Python packer took 10-20 % of a host's
    loop time (bench/README.md, "Paper bots per worker")."""

    def pack_command(self, *args):
        return _PACKER.pack(*args)

    async def send_packed_command(self, command, check_health: bool = True) -> None:
        timeout = self.socket_timeout
        if not timeout:
            return await super().send_packed_command(command, check_health)
        self.socket_timeout = None  # the library's send without its wait_for task
        try:
            async with asyncio.timeout(timeout):
                await super().send_packed_command(command, check_health)
        except TimeoutError:  # the library has disconnected on the cancellation
            raise RedisTimeoutError("Timeout writing to socket") from None
        finally:
            self.socket_timeout = timeout
