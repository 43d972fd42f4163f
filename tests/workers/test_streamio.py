"""The stream reader's exchange in C (native/mm_streamio.c) against the real Redis and against a
local server that misbehaves the ways a connection can: replies cut into pieces, cut off,
never sent, or not RESP at all. The pure-Python path must give the same results."""

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


@pytest.mark.parametrize("native", [True, False], ids=["C", "python"])
def test_xread_returns_every_entry_of_a_reply_larger_than_any_buffer(clean_redis, settings, native):
    stream = f"{settings.REDIS_PREFIX}:streamio:big"
    _xadd_many(clean_redis, stream, 300, 9000)  # ~2.7 MB: many receives, the buffer grows
    reader = _StreamSocket(settings.REDIS_URL)
    reader.native = native
    try:
        # Linux turns packet receive stamps on a moment after the first socket asks for them
        # (deferred work): a reply read at once may carry none (then the reader uses its clock).
        reader._connect()
        time.sleep(0.1)
        before = time.time_ns()
        result = reader.xread({stream: b"0-0"}, count=1000, block_ms=100)
        after = time.time_ns()
        [(name, entries)] = result
        assert name == stream.encode()
        assert len(entries) == 300
        assert [fields[3] for _id, fields in entries] == [str(i).encode() for i in range(300)]
        assert all(fields[1] == bytes([65 + i % 26]) * 9000 for i, (_id, fields) in enumerate(entries))
        assert before <= reader.arrived_ns <= after  # the kernel's stamp of the reply's first bytes
        # nothing newer: the blocking read times out empty, and the connection is still in step
        last = entries[-1][0]
        assert reader.xread({stream: last}, count=10, block_ms=50) is None
        clean_redis.xadd(stream, {"e": b"x", "p": "300"})
        [(_, [(_, fields)])] = reader.xread({stream: last}, count=10, block_ms=50)
        assert fields == [b"e", b"x", b"p", b"300"]
    finally:
        reader.close()


@pytest.mark.parametrize("native", [True, False], ids=["C", "python"])
def test_an_error_reply_is_raised_and_the_connection_stays_usable(clean_redis, settings, native):
    key = f"{settings.REDIS_PREFIX}:streamio:not-a-stream"
    clean_redis.set(key, "x")
    stream = f"{settings.REDIS_PREFIX}:streamio:ok"
    clean_redis.xadd(stream, {"e": b"1", "p": "1"})
    reader = _StreamSocket(settings.REDIS_URL)
    reader.native = native
    try:
        with pytest.raises(ResponseError, match="WRONGTYPE"):
            reader.xread({key: b"0-0"}, count=10, block_ms=10)
        [(_, entries)] = reader.xread({stream: b"0-0"}, count=10, block_ms=10)
        assert len(entries) == 1
    finally:
        reader.close()


def test_the_wake_byte_goes_out_first_and_a_full_wake_socket_is_no_error(clean_redis, settings):
    stream = f"{settings.REDIS_PREFIX}:streamio:wake"
    clean_redis.xadd(stream, {"e": b"1", "p": "1"})
    wake_r, wake_w = socket.socketpair()
    wake_w.setblocking(False)
    reader = _StreamSocket(settings.REDIS_URL)
    try:
        reader.xread({stream: b"0-0"}, count=10, block_ms=10, wake_fd=wake_w.fileno())
        assert wake_r.recv(16) == b"\0"
        filled = 0
        while True:  # nobody reads the loop's side: its buffer fills up
            try:
                filled += wake_w.send(b"\0" * 4096)
            except BlockingIOError:
                break
        [(_, entries)] = reader.xread({stream: b"0-0"}, count=10, block_ms=10, wake_fd=wake_w.fileno())
        assert len(entries) == 1 and filled > 0
    finally:
        reader.close()
        wake_r.close()
        wake_w.close()


def test_the_gil_is_free_while_the_exchange_waits_for_redis(clean_redis, settings):
    """A blocking XREAD of 300 ms: another Python thread keeps running all the while."""
    stream = f"{settings.REDIS_PREFIX}:streamio:empty"
    clean_redis.xadd(stream, {"e": b"1", "p": "1"})
    last = clean_redis.xinfo_stream(stream)["last-generated-id"]
    reader = _StreamSocket(settings.REDIS_URL)
    counts, stop = [0], threading.Event()

    def spin() -> None:
        while not stop.is_set():
            counts[0] += 1

    reader.xread({stream: last}, count=1, block_ms=1)  # connected
    spinner = threading.Thread(target=spin)
    spinner.start()
    try:
        time.sleep(0.05)
        started = counts[0]
        t0 = time.monotonic()
        assert reader.xread({stream: last}, count=1, block_ms=300) is None
        waited = time.monotonic() - t0
        during = counts[0] - started
    finally:
        stop.set()
        spinner.join()
        reader.close()
    assert waited >= 0.29
    assert during > 10_000  # the spinner ran (with the GIL held, it would not have moved at all)


class _Server:
    """A local TCP server that answers each request with ``script(conn)``."""

    def __init__(self, script) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.script = script
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        with conn:
            conn.recv(65536)
            self.script(conn)

    def client(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=3)
        sock.settimeout(10)  # as the reader's socket: non-blocking underneath, polled in C
        return sock

    def close(self) -> None:
        self.listener.close()
        self.thread.join(5)


def test_a_reply_arriving_in_pieces_is_returned_whole():
    reply = pack(("a", "bb", "x" * 70000))  # a RESP array of bulk strings, as a reply can be

    def dribble(conn):
        for i in range(0, 40):  # the first 40 bytes one at a time, then the rest in two parts
            conn.sendall(reply[i : i + 1])
            time.sleep(0.001)
        conn.sendall(reply[40:5000])
        time.sleep(0.02)
        conn.sendall(reply[5000:])
        time.sleep(0.2)

    server = _Server(dribble)
    sock = server.client()
    try:
        data, arrived = mm_streamio.exchange(sock.fileno(), -1, b"PING\r\n", 3000)
        assert data == reply
        assert arrived == 0  # this socket does not stamp receive times
        parser = hiredis.Reader()
        parser.feed(data)
        assert parser.gets() == [b"a", b"bb", b"x" * 70000]
    finally:
        sock.close()
        server.close()


def test_a_reply_cut_off_is_a_connection_error_naming_what_arrived():
    server = _Server(lambda conn: conn.sendall(b"*2\r\n$3\r\nabc\r\n"))  # then the server hangs up
    sock = server.client()
    try:
        with pytest.raises(ConnectionError, match=r"Redis closed the connection \(13 bytes"):
            mm_streamio.exchange(sock.fileno(), -1, b"PING\r\n", 3000)
    finally:
        sock.close()
        server.close()


def test_no_reply_within_the_timeout_is_a_timeout_error():
    done = threading.Event()
    server = _Server(lambda conn: done.wait(5))  # reads the request, never answers
    sock = server.client()
    try:
        t0 = time.monotonic()
        with pytest.raises(TimeoutError, match=r"no complete reply from Redis within 200 ms \(0 bytes"):
            mm_streamio.exchange(sock.fileno(), -1, b"PING\r\n", 200)
        assert 0.19 <= time.monotonic() - t0 < 2
    finally:
        done.set()
        sock.close()
        server.close()


def test_bytes_that_are_not_resp_are_a_connection_error():
    server = _Server(lambda conn: (conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n"), time.sleep(0.2)))
    sock = server.client()
    try:
        with pytest.raises(ConnectionError, match="not a RESP reply"):
            mm_streamio.exchange(sock.fileno(), -1, b"PING\r\n", 3000)
    finally:
        sock.close()
        server.close()


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


@pytest.mark.parametrize("native", [True, False], ids=["C", "python"])
def test_the_wake_byte_goes_out_even_when_redis_cannot_be_reached(native):
    """The reader owes the loop a wake-up when it reads again: if that read cannot even connect
    (Redis restarting), the loop must still be woken, or the batches it holds would wait."""
    unused = socket.create_server(("127.0.0.1", 0))
    port = unused.getsockname()[1]
    unused.close()  # nothing listens there now
    wake_r, wake_w = socket.socketpair()
    wake_w.setblocking(False)
    reader = _StreamSocket(f"redis://127.0.0.1:{port}/0")
    reader.native = native
    try:
        with pytest.raises(ConnectionRefusedError):
            reader.xread({"s": b"0-0"}, count=1, block_ms=1, wake_fd=wake_w.fileno())
        assert wake_r.recv(16) == b"\0"
    finally:
        reader.close()
        wake_r.close()
        wake_w.close()
