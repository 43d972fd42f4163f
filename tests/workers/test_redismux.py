"""The host's shared pipelined Redis connection (workers.redismux) against the real Redis."""

from __future__ import annotations

import asyncio

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from workers.redismux import RedisMux, pack


def test_pack_writes_resp_and_refuses_what_redis_cannot_take():
    assert pack(("SET", b"k", 12)) == b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n12\r\n"
    assert pack(("ECHO", "é")) == b"*2\r\n$4\r\nECHO\r\n$2\r\n\xc3\xa9\r\n"
    for bad in (None, [1], True):
        with pytest.raises(TypeError, match=r"Redis argument .* accepted bytes, str or int"):
            pack(("SET", "k", bad))


def test_many_requests_in_flight_get_their_own_replies_in_order(clean_redis, settings):
    key = f"{settings.REDIS_PREFIX}:mux:n"

    async def scenario():
        mux = RedisMux(settings.REDIS_URL)

        async def one(i: int):
            return await mux.execute([("INCR", key), ("ECHO", f"req-{i}"), ("EVAL", "return ARGV[1] + 1", 0, i)])

        results = await asyncio.gather(*(one(i) for i in range(200)))
        await mux.aclose()
        return results

    results = asyncio.run(scenario())
    assert [r[1] for r in results] == [f"req-{i}".encode() for i in range(200)]
    assert [r[2] for r in results] == [i + 1 for i in range(200)]
    assert sorted(r[0] for r in results) == list(range(1, 201))  # each INCR answered once
    assert int(clean_redis.get(key)) == 200


def test_an_error_reply_raises_after_the_request_and_the_connection_goes_on(clean_redis, settings):
    key = f"{settings.REDIS_PREFIX}:mux:e"

    async def scenario():
        mux = RedisMux(settings.REDIS_URL)
        with pytest.raises(ResponseError, match=r"wrong number of arguments"):
            await mux.execute([("SET", key, 1), ("INCRBY", key)])
        after = await mux.execute([("GET", key)])
        await mux.aclose()
        return after

    assert asyncio.run(scenario()) == [b"1"]  # the first command of the failed request was applied


def test_a_killed_connection_fails_what_is_in_flight_and_the_next_request_reconnects(clean_redis, settings):
    async def scenario():
        mux = RedisMux(settings.REDIS_URL)
        await mux.execute([("CLIENT", "SETNAME", "mux-under-test")])
        blocked = asyncio.ensure_future(mux.execute([("BLPOP", f"{settings.REDIS_PREFIX}:mux:never", 10)]))
        await asyncio.sleep(0.2)
        clients = clean_redis.client_list()
        (victim,) = [c for c in clients if c.get("name") == "mux-under-test"]
        clean_redis.client_kill_filter(_id=victim["id"])
        with pytest.raises(RedisConnectionError, match="connection lost"):
            await blocked
        again = await mux.execute([("PING",)])
        await mux.aclose()
        return again, mux.reconnects

    again, reconnects = asyncio.run(scenario())
    assert again == [b"PONG"] and reconnects == 1


def test_no_answer_within_the_timeout_fails_the_request(clean_redis, settings):
    async def scenario():
        mux = RedisMux(settings.REDIS_URL, timeout_s=0.5)
        with pytest.raises(RedisTimeoutError, match=r"no answer from Redis within 0\.5 s"):
            await mux.execute([("BLPOP", f"{settings.REDIS_PREFIX}:mux:never", 5)])
        again = await mux.execute([("PING",)])
        await mux.aclose()
        return again

    assert asyncio.run(scenario()) == [b"PONG"]


def test_submitted_requests_are_written_before_later_ones_and_need_a_connection(clean_redis, settings):
    """``submit`` queues without waiting (a paper fill ahead of its cycle's answer): written in
    order with what follows, answered through its future; with no connection it declines."""
    key = f"{settings.REDIS_PREFIX}:mux:order"

    async def scenario():
        mux = RedisMux(settings.REDIS_URL)
        assert mux.submit([("RPUSH", key, "never")]) is None  # not connected yet
        await mux.execute([("PING",)])
        first = mux.submit([("RPUSH", key, "fill")])
        second = await mux.execute([("RPUSH", key, "answer"), ("LRANGE", key, 0, -1)])
        assert first.done()  # answered before the request made after it
        got = first.result(), second
        await mux.aclose()
        return got

    first, second = asyncio.run(scenario())
    assert first == [1] and second == [2, [b"fill", b"answer"]]
    assert clean_redis.lrange(key, 0, -1) == [b"fill", b"answer"]
