"""The bot host's Redis connection (:class:`workers.redis_conn.LoopConnection`) on the real Redis."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis
from django.conf import settings
from redis.exceptions import TimeoutError as RedisTimeoutError

from workers.redis_conn import LoopConnection


def _client(connection_class, url: str | None = None, **options) -> aioredis.Redis:
    pool = aioredis.BlockingConnectionPool.from_url(
        url or settings.REDIS_URL,
        max_connections=4,
        timeout=5,
        socket_timeout=options.pop("socket_timeout", 5),
        socket_connect_timeout=3,
        connection_class=connection_class,
        **options,
    )
    return aioredis.Redis(connection_pool=pool)


async def _tasks_made(coro_fn) -> tuple[object, int]:
    """Run ``coro_fn()`` and count the tasks the loop created meanwhile."""
    loop = asyncio.get_running_loop()
    made = [0]
    previous = loop.get_task_factory()

    def factory(loop, coro, **kwargs):
        made[0] += 1
        return asyncio.Task(coro, loop=loop, **kwargs)

    loop.set_task_factory(factory)
    try:
        result = await coro_fn()
    finally:
        loop.set_task_factory(previous)
    return result, made[0]


def test_commands_and_pipelines_answer_without_a_task_per_write():
    """The same answers as redis-py's own connection, and no task per command (redis-py's
    ``wait_for`` made one per write, which cost a pass of a busy host loop each time)."""
    key = f"{settings.REDIS_PREFIX}:test-loopconn"

    async def pipe(client):
        p = client.pipeline(transaction=False)
        p.set(key, "1")
        p.incrby(key, 41)
        p.eval("return redis.call('GET', KEYS[1])", 1, key)
        return await p.execute()

    async def main():
        ours, theirs = _client(LoopConnection), _client(aioredis.Connection)
        try:
            await ours.ping()
            await theirs.ping()
            assert await pipe(ours) == [True, 42, b"42"]
            assert await pipe(theirs) == [True, 42, b"42"]
            value, ours_made = await _tasks_made(lambda: ours.eval("return redis.call('GET', KEYS[1])", 1, key))
            assert value == b"42"
            _, theirs_made = await _tasks_made(lambda: theirs.eval("return redis.call('GET', KEYS[1])", 1, key))
            assert ours_made == 0
            assert theirs_made >= 1  # redis-py's wait_for (if this changes, LoopConnection can go)
        finally:
            await ours.delete(key)
            await ours.aclose()
            await theirs.aclose()

    asyncio.run(main())


def test_a_write_the_server_does_not_take_times_out_and_drops_the_connection():
    """A server that accepts and never reads: the write blocks once the socket buffers are full,
    and fails after ``socket_timeout`` with redis-py's TimeoutError; the connection is closed."""

    async def main():
        accepted: list[asyncio.StreamWriter] = []

        async def never_read(reader, writer):
            """Answer the connection's set-up commands with +OK, then read nothing more."""
            accepted.append(writer)
            while True:
                data = await reader.read(65536)
                if not data or b"$3\r\nSET\r\n" in data:  # the test's write
                    break
                commands = sum(1 for line in data.split(b"\r\n") if line.startswith(b"*"))
                writer.write(b"+OK\r\n" * commands)
            await asyncio.sleep(30)

        server = await asyncio.start_server(never_read, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client = _client(LoopConnection, f"redis://127.0.0.1:{port}/0", socket_timeout=0.5)
        connection = await client.connection_pool.get_connection()
        try:
            loop = asyncio.get_running_loop()
            started = loop.time()
            with pytest.raises(RedisTimeoutError, match="Timeout writing to socket"):
                await connection.send_packed_command(connection.pack_command("SET", "k", b"x" * 64_000_000))
            assert 0.4 < loop.time() - started < 5
            assert not connection.is_connected
            assert connection.socket_timeout == 0.5  # restored for the reads
        finally:
            await client.connection_pool.release(connection)
            await client.aclose()
            for writer in accepted:
                writer.close()
            server.close()

    asyncio.run(main())


def test_commands_are_packed_as_redis_py_packs_them_and_round_trip_on_the_real_redis():
    """The hiredis packer gives byte for byte what redis-py's asyncio connection sends (command
    names with a space split, ints, floats, non-ASCII text, binary, a large value), and values
    written through it read back unchanged."""
    args_list = [
        ("SET", "k", "v"),
        ("CONFIG GET", "maxmemory"),
        ("EVALSHA", "ab" * 20, 2, "k1", "k2", 1, -5, 0.1, 1e30, "٣ü", b"bin\x00\xff", "x" * 70_000),
    ]
    plain = aioredis.Connection()
    ours = LoopConnection()
    for args in args_list:
        assert b"".join(ours.pack_command(*args)) == b"".join(plain.pack_command(*args)), args

    async def scenario():
        client = _client(LoopConnection)
        key = f"{settings.REDIS_PREFIX}:packer"
        values = {"text": "٣ü", "bin": b"\x00\xff", "int": 12, "float": 0.25, "big": "y" * 70_000}
        try:
            await client.hset(key, mapping=values)
            return await client.hgetall(key)
        finally:
            await client.delete(key)
            await client.aclose()

    got = asyncio.run(scenario())
    assert got == {b"text": "٣ü".encode(), b"bin": b"\x00\xff", b"int": b"12", b"float": b"0.25", b"big": b"y" * 70_000}
