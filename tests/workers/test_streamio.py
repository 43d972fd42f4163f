"""The stream reader's XREAD loop in C (native/mm_streamio.c, ``Pump``) against the real Redis
and against a local server that misbehaves the ways a connection can: replies cut into pieces,
cut off, never sent, not RESP, or not shaped like XREAD's. The pure-Python path must give the
same entries."""

from __future__ import annotations

import logging
import os
import resource
import socket
import threading
import time

import hiredis
import mm_streamio  # built by scripts/bootstrap.sh (pip install ./native): its absence is a failure here
import pytest
from redis.exceptions import ResponseError

from workers.host import _StreamSocket
from workers.redismux import pack

PIECES = [
    b"+OK\r\n",
    b"-ERR wrong type\r\n",
    b":-42\r\n",
    b"$5\r\nhe\r\no\r\n",  # a bulk string may hold CR LF
    b"$0\r\n\r\n",
    b"$-1\r\n",
    b"*-1\r\n",
    b"*0\r\n",
    b"*2\r\n*2\r\n$1\r\na\r\n:1\r\n*1\r\n$-1\r\n",
    b"%1\r\n+k\r\n*2\r\n:1\r\n:2\r\n",  # RESP3 map
    b"|1\r\n+ttl\r\n:3\r\n$2\r\nhi\r\n",  # RESP3 attribute, then the reply it describes
    b"_\r\n",
    b",1.5\r\n",
]


@pytest.mark.parametrize("reply", PIECES)
def test_reply_length_finds_the_end_of_one_reply_and_needs_every_byte_of_it(reply):
    assert mm_streamio.reply_length(reply) == len(reply)
    assert mm_streamio.reply_length(reply + b"+NEXT\r\n") == len(reply)  # a second reply is not read into
    for cut in range(len(reply)):
        assert mm_streamio.reply_length(reply[:cut]) == 0, cut


def test_reply_length_refuses_bytes_that_are_not_resp():
    with pytest.raises(ValueError, match="not a RESP reply"):
        mm_streamio.reply_length(b"HTTP/1.1 200 OK\r\n")


def _xadd_many(clean_redis, stream: str, n: int, size: int) -> None:
    pipe = clean_redis.pipeline()
    for i in range(n):
        pipe.xadd(stream, {"e": bytes([65 + i % 26]) * size, "p": str(i)})
    pipe.execute()


class _Running:
    """``pump.run(fd, ...)`` on its own thread, as the host's reader runs it."""

    def __init__(self, pump, fd: int, *, count: int = 1000, block_ms: int = 50, timeout_ms: int = 3000) -> None:
        self.pump, self.error = pump, None
        self.thread = threading.Thread(target=self._run, args=(fd, count, block_ms, timeout_ms))
        self.thread.start()

    def _run(self, *args) -> None:
        try:
            self.pump.run(*args)
        except BaseException as exc:  # handed to the test
            self.error = exc

    def wait_for(self, entries: int, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while self.pump.counts()[1] < entries and self.thread.is_alive():
            assert time.monotonic() < deadline, (
                f"only {self.pump.counts()} (replies, entries, held off) within {timeout} s"
            )
            time.sleep(0.005)

    def stop(self) -> BaseException | None:
        self.pump.interrupt()
        self.thread.join(5)
        assert not self.thread.is_alive(), "run() did not return after interrupt()"
        return self.error


def _entries(replies) -> list[tuple[bytes, bytes, list]]:
    """(stream, id, fields) of every entry of the pump's replies, in order."""
    out = []
    for data, *_stamps in replies:
        parser = hiredis.Reader()
        parser.feed(data)
        reply = parser.gets()
        assert reply is not False and not parser.has_data()
        for stream, entries in reply:
            out.extend((stream, entry_id, fields) for entry_id, fields in entries)
    return out


def _connected(settings) -> socket.socket:
    reader = _StreamSocket(settings.REDIS_URL)
    sock = reader.connected()
    # Linux turns packet receive stamps on a moment after the first socket asks for them
    # (deferred work): a reply read at once may carry none (then the reader uses its clock).
    time.sleep(0.1)
    return sock


def test_the_pump_queues_every_entry_of_replies_larger_than_any_buffer_as_the_python_path_reads_them(
    clean_redis, settings
):
    big, small = f"{settings.REDIS_PREFIX}:streamio:big", f"{settings.REDIS_PREFIX}:streamio:small"
    _xadd_many(clean_redis, big, 300, 9000)  # ~2.7 MB: many receives, the buffer grows
    clean_redis.xadd(small, {"e": b"s", "p": "7"})
    wake_r, wake_w = socket.socketpair()
    sock = _connected(settings)
    pump = mm_streamio.Pump(wake_w.fileno())
    pump.set_streams([(big.encode(), b"0-0"), (small.encode(), b"0-0")])
    before = time.time_ns()
    running = _Running(pump, sock.fileno())
    try:
        running.wait_for(301)
        clean_redis.xadd(small, {"e": b"later", "p": "8"})  # the pump goes on from where it was
        running.wait_for(302)
    finally:
        assert running.stop() is None
    after = time.time_ns()
    replies = pump.take()
    got = _entries(replies)
    assert len(got) == 302
    assert [f[3] for s, _i, f in got if s == big.encode()] == [str(i).encode() for i in range(300)]
    assert all(
        f[1] == bytes([65 + i % 26]) * 9000 for i, (_s, _i, f) in enumerate(x for x in got if x[0] == big.encode())
    )
    assert [f for s, _i, f in got if s == small.encode()] == [[b"e", b"s", b"p", b"7"], [b"e", b"later", b"p", b"8"]]
    for _data, sent, arrived, received in replies:
        assert before <= sent <= arrived <= received <= after  # arrived: the kernel's stamp
    # each stream's position is its last entry's id: nothing is read twice, nothing skipped
    last = {s: i for s, i, _f in got}
    assert dict(pump.streams()) == last
    assert pump.take() == []
    # the pure-Python path reads the same entries
    python = _StreamSocket(settings.REDIS_URL)
    try:
        result = python.xread({big: b"0-0", small: b"0-0"}, count=1000, block_ms=10)
        same = [(s, i, f) for s, entries in result for i, f in entries]
        assert sorted(same) == sorted(got)
        assert python.xread({big: last[big.encode()], small: last[small.encode()]}, count=10, block_ms=10) is None
    finally:
        python.close()
        sock.close()
        wake_r.close()
        wake_w.close()


def test_the_loop_is_woken_once_per_take_and_a_full_wake_socket_is_no_error(clean_redis, settings):
    stream = f"{settings.REDIS_PREFIX}:streamio:wake"
    wake_r, wake_w = socket.socketpair()
    wake_r.setblocking(False)
    wake_w.setblocking(False)
    sock = _connected(settings)
    pump = mm_streamio.Pump(wake_w.fileno())
    pump.set_streams([(stream.encode(), b"0-0")])
    running = _Running(pump, sock.fileno())
    try:
        for n in range(1, 4):  # three replies before the loop takes any: one wake-up
            clean_redis.xadd(stream, {"e": b"x", "p": str(n)})
            running.wait_for(n)
        assert wake_r.recv(16) == b"\0"
        assert len(pump.take()) == 3
        clean_redis.xadd(stream, {"e": b"x", "p": "4"})  # taken: the next reply wakes it again
        running.wait_for(4)
        time.sleep(0.05)
        assert wake_r.recv(16) == b"\0"
        assert len(pump.take()) == 1
        filled = 0
        while True:  # nobody reads the loop's side: its buffer fills up
            try:
                filled += wake_w.send(b"\0" * 4096)
            except BlockingIOError:
                break
        clean_redis.xadd(stream, {"e": b"x", "p": "5"})
        running.wait_for(5)
        assert filled > 0 and [f[3] for _s, _i, f in _entries(pump.take())] == [b"5"]
    finally:
        assert running.stop() is None
        sock.close()
        wake_r.close()
        wake_w.close()


@pytest.fixture
def not_a_stream_and_a_stream(clean_redis, settings) -> tuple[str, str]:
    """A key XREAD refuses (WRONGTYPE) and a stream with one entry."""
    key = f"{settings.REDIS_PREFIX}:streamio:not-a-stream"
    clean_redis.set(key, "x")
    stream = f"{settings.REDIS_PREFIX}:streamio:ok"
    clean_redis.xadd(stream, {"e": b"1", "p": "1"})
    return key, stream


def test_an_error_reply_is_raised_naming_it_and_nothing_is_queued(not_a_stream_and_a_stream, settings):
    key, stream = not_a_stream_and_a_stream
    sock = _connected(settings)
    pump = mm_streamio.Pump(-1)
    try:
        pump.set_streams([(key.encode(), b"0-0")])
        with pytest.raises(RuntimeError, match="Redis answered XREAD with an error: WRONGTYPE"):
            pump.run(sock.fileno(), 10, 10, 3000)
        assert pump.take() == [] and pump.counts() == (0, 0, 0)
        pump.set_streams([(stream.encode(), b"0-0")])  # the connection is still in step
        running = _Running(pump, sock.fileno())
        running.wait_for(1)
        assert running.stop() is None
        assert [f for _s, _i, f in _entries(pump.take())] == [[b"e", b"1", b"p", b"1"]]
    finally:
        sock.close()


def test_the_python_path_raises_an_error_reply_and_its_connection_stays_usable(not_a_stream_and_a_stream, settings):
    key, stream = not_a_stream_and_a_stream
    reader = _StreamSocket(settings.REDIS_URL)
    try:
        with pytest.raises(ResponseError, match="WRONGTYPE"):
            reader.xread({key: b"0-0"}, count=10, block_ms=10)
        [(_, entries)] = reader.xread({stream: b"0-0"}, count=10, block_ms=10)
        assert len(entries) == 1
    finally:
        reader.close()


def test_the_gil_is_free_while_the_pump_runs_and_streams_change_only_between_runs(clean_redis, settings):
    """Another Python thread keeps running all the while; interrupt() ends the run within its
    BLOCK; the streams cannot change under a running pump."""
    stream = f"{settings.REDIS_PREFIX}:streamio:empty"
    clean_redis.xadd(stream, {"e": b"1", "p": "1"})
    last = clean_redis.xinfo_stream(stream)["last-generated-id"]
    sock = _connected(settings)
    pump = mm_streamio.Pump(-1)
    pump.set_streams([(stream.encode(), last)])
    counts, stop = [0], threading.Event()

    def spin() -> None:
        while not stop.is_set():
            counts[0] += 1

    spinner = threading.Thread(target=spin)
    spinner.start()
    running = _Running(pump, sock.fileno(), block_ms=100)
    try:
        time.sleep(0.05)
        started = counts[0]
        time.sleep(0.3)
        during = counts[0] - started
        with pytest.raises(RuntimeError, match="while run"):
            pump.set_streams([(b"other", b"0-0")])
        t0 = time.monotonic()
    finally:
        error = running.stop()
        stop.set()
        spinner.join()
        sock.close()
    assert error is None
    assert time.monotonic() - t0 < 1.0  # its XREAD in flight (BLOCK 100 ms), then it returned
    assert during > 10_000  # the spinner ran (with the GIL held, it would not have moved at all)
    assert pump.streams() == [(stream.encode(), last)] and pump.take() == []


def test_the_pump_holds_off_while_the_loop_has_not_taken_its_share_and_loses_nothing(clean_redis, settings):
    """A loop that stops taking (stuck) must not make the reader queue without bound: past
    ``max_queued_bytes`` the pump waits, the entries wait in Redis, and after a take it goes on
    from where it was; interrupt() ends a run that is holding off at once."""
    stream = f"{settings.REDIS_PREFIX}:streamio:held"
    sock = _connected(settings)
    pump = mm_streamio.Pump(-1, max_queued_bytes=1)  # one reply of any size fills it
    pump.set_streams([(stream.encode(), b"0-0")])
    running = _Running(pump, sock.fileno())
    try:
        clean_redis.xadd(stream, {"e": b"x", "p": "1"})
        running.wait_for(1)
        for n in range(2, 5):
            clean_redis.xadd(stream, {"e": b"x", "p": str(n)})
        time.sleep(0.3)
        assert pump.counts() == (1, 1, 1)  # held off: the three newer entries wait in Redis
        assert [f[3] for _s, _i, f in _entries(pump.take())] == [b"1"]
        running.wait_for(4)  # taken: it reads on, all three in one reply
        assert pump.counts()[:2] == (2, 4)
        t0 = time.monotonic()
    finally:
        error = running.stop()
        sock.close()
    assert error is None and time.monotonic() - t0 < 0.5  # holding off again: interrupted at once
    assert [f[3] for _s, _i, f in _entries(pump.take())] == [b"2", b"3", b"4"]
    assert pump.counts()[2] == 2


def test_bad_arguments_are_refused_naming_what_is_accepted():
    with pytest.raises(ValueError, match=r"max_queued_bytes must be > 0 \(got 0\)"):
        mm_streamio.Pump(-1, max_queued_bytes=0)
    pump = mm_streamio.Pump(-1)
    with pytest.raises(ValueError, match="at least one stream"):
        pump.run(0, 10, 10, 100)
    with pytest.raises(ValueError, match=r"stream 1: .*entry id of 1 to 47 bytes .*got 1 and 0 bytes"):
        pump.set_streams([(b"a", b"0-0"), (b"b", b"")])
    with pytest.raises(TypeError):
        pump.set_streams([("text", b"0-0")])
    assert pump.streams() == []  # a refused list changes nothing
    pump.set_streams([(b"a", b"0-0")])
    with pytest.raises(ValueError, match=r"count must be > 0.*got 0"):
        pump.run(0, 0, 10, 100)


class _Server:
    """A local TCP server: ``script(conn)`` talks to the one client (its requests unread)."""

    def __init__(self, script) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.script = script
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        with conn:
            self.script(conn)

    def client(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=3)
        sock.settimeout(10)  # as the reader's socket: non-blocking underneath, polled in C
        return sock

    def close(self) -> None:
        self.listener.close()
        self.thread.join(5)


def _xread_reply(stream: bytes, entries: list[tuple[bytes, list[bytes]]]) -> bytes:
    parts = [b"*1\r\n*2\r\n", pack((stream,))[4:], b"*%d\r\n" % len(entries)]  # pack: *1 header, then $name
    for entry_id, fields in entries:
        parts.append(b"*2\r\n$%d\r\n%s\r\n" % (len(entry_id), entry_id) + pack(tuple(fields)))
    return b"".join(parts)


def _pump_against(server: _Server, timeout_ms: int = 3000):
    """Run a pump on one stream ``s`` against ``server`` until it fails: (error, replies, streams)."""
    sock = server.client()
    pump = mm_streamio.Pump(-1)
    pump.set_streams([(b"s", b"0-0")])
    try:
        with pytest.raises(Exception) as failed:
            pump.run(sock.fileno(), 100, 100, timeout_ms)
        return failed.value, pump.take(), pump.streams()
    finally:
        sock.close()
        server.close()


def test_replies_arriving_in_pieces_are_queued_whole_and_a_server_gone_keeps_them():
    first = _xread_reply(b"s", [(b"5-0", [b"e", b"x" * 70000, b"p", b"1"])])
    second = _xread_reply(b"s", [(b"6-0", [b"e", b"y", b"p", b"2"]), (b"6-1", [b"e", b"z", b"p", b"3"])])

    def dribble(conn):
        conn.recv(65536)
        for i in range(0, 40):  # the first 40 bytes one at a time, then the rest in two parts
            conn.sendall(first[i : i + 1])
            time.sleep(0.001)
        conn.sendall(first[40:5000])
        time.sleep(0.02)
        conn.sendall(first[5000:])
        request = conn.recv(65536)
        assert b"$3\r\n5-0\r\n" in request, request  # the next XREAD goes on after the last id
        conn.sendall(b"*-1\r\n")  # BLOCK ran out: nothing is queued
        conn.recv(65536)
        conn.sendall(second)
        conn.recv(65536)  # then the server goes away

    error, replies, streams = _pump_against(_Server(dribble))
    assert isinstance(error, ConnectionError) and "Redis closed the connection (0 bytes" in str(error)
    assert [data for data, *_ in replies] == [first, second]  # both kept through the failure
    assert [(i, f[3]) for _s, i, f in _entries(replies)] == [(b"5-0", b"1"), (b"6-0", b"2"), (b"6-1", b"3")]
    assert streams == [(b"s", b"6-1")]  # a new connection goes on from there


def test_a_reply_cut_off_is_a_connection_error_naming_what_arrived():
    error, replies, _ = _pump_against(
        _Server(lambda conn: (conn.recv(65536), conn.sendall(b"*1\r\n*2\r\n$1\r\ns\r\n")))
    )
    assert isinstance(error, ConnectionError) and "Redis closed the connection (15 bytes" in str(error)
    assert replies == []


def test_no_reply_within_the_timeout_is_a_timeout_error():
    server = _Server(lambda conn: (conn.recv(65536), time.sleep(0.8)))  # reads the request, never answers
    t0 = time.monotonic()
    error, replies, _ = _pump_against(server, timeout_ms=300)
    assert isinstance(error, TimeoutError)
    assert "no complete reply from Redis within 300 ms (0 bytes" in str(error)
    assert 0.79 <= time.monotonic() - t0 < 3 and replies == []  # 0.3 s, then the server's 0.8 s end


@pytest.mark.parametrize(
    "answer, message",
    [
        (b"HTTP/1.1 400 Bad Request\r\n\r\n", "not a RESP reply: unexpected type byte"),
        (b"+OK\r\n", "not an XREAD reply: 5 bytes of an unexpected shape"),
        (b"*1\r\n*2\r\n:1\r\n*0\r\n", "not an XREAD reply"),  # a stream name that is not a string
        (b"*-1\r\n+PONG\r\n", "not an XREAD reply: 12 bytes"),  # a reply to nothing behind it: out of step
    ],
)
def test_bytes_that_are_not_an_xread_reply_are_a_connection_error(answer, message):
    error, replies, streams = _pump_against(
        _Server(lambda conn: (conn.recv(65536), conn.sendall(answer), time.sleep(0.3)))
    )
    assert isinstance(error, ConnectionError) and message in str(error), error
    assert replies == [] and streams == [(b"s", b"0-0")]


def _in_thread(fn):
    """Run fn in a new thread (scheduling policy is per thread) and return (result, policy, priority)."""
    out = []

    def run() -> None:
        result = fn()
        out.append((result, os.sched_getscheduler(0), os.sched_getparam(0).sched_priority))

    t = threading.Thread(target=run)
    t.start()
    t.join(5)
    return out[0]


def test_the_reader_thread_runs_at_real_time_priority_where_the_system_allows_it():
    from workers.host import _reader_realtime

    allowed = os.geteuid() == 0 or resource.getrlimit(resource.RLIMIT_RTPRIO)[0] >= 1
    result, policy, priority = _in_thread(_reader_realtime)
    assert result is allowed
    if allowed:
        assert (policy, priority) == (os.SCHED_FIFO, 1)
    else:
        assert policy == os.SCHED_OTHER
    assert os.sched_getscheduler(0) == os.SCHED_OTHER  # only the calling thread changed


def test_real_time_priority_can_be_turned_off_and_its_refusal_is_logged(monkeypatch, caplog):
    from workers.host import _reader_realtime

    monkeypatch.setenv("MM_READER_REALTIME", "0")
    assert _in_thread(_reader_realtime)[:2] == (False, os.SCHED_OTHER)
    monkeypatch.delenv("MM_READER_REALTIME")

    def refuse(*_args):  # what Linux answers without root, CAP_SYS_NICE or RLIMIT_RTPRIO
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "sched_setscheduler", refuse)
    with caplog.at_level(logging.INFO, logger="workers.host"):
        assert _in_thread(_reader_realtime)[:2] == (False, os.SCHED_OTHER)
    assert "real-time priority not available" in caplog.text and "ulimit -r 1" in caplog.text
