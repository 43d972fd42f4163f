"""One bot host process for ``bench/bench_bots.py`` (the production :class:`workers.host.Host`, as a
``bots,feeds`` worker process runs it), driven by its parent through stdin:

``start``: forget what was measured so far (after the warm-up); ``stop``: write the raw samples
measured since ``start`` as JSON to ``--out``; ``exit``: stop the host (leases released) and leave.
Each answer is one line on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mmsite.settings.local")


LOOP_LAG_NS: list[int] = []
# Wall and loop-thread CPU ns of each event-loop turn with work, as two flat lists of ints: a
# tuple per turn (thousands a second) was a container the garbage collector tracks, and made
# the young-generation collections this bench measures (ints are not tracked).
TURN_WALL_NS: list[int] = []
TURN_CPU_NS: list[int] = []
TURN_END_NS: list[int] = []  # when each of those turns ended (ns since the epoch)
# (start, end) ns since the epoch of each batch a database writer thread ran, flat: start, end, ...
WRITER_WINDOWS: list[int] = []
GC_PAUSES: dict[int, list[int]] = {0: [], 1: [], 2: []}  # generation -> collection times (ns)
GC_CPU: dict[int, list[int]] = {0: [], 1: [], 2: []}  # generation -> CPU time of each collection (ns)
GC_WINDOWS: list[tuple[int, int]] = []  # (start, end) of each collection, ns since the epoch
_gc_started = [0, 0, 0]


def _gc_callback(phase: str, info: dict) -> None:
    """How long each garbage collection holds the GIL (every thread of the host waits), in wall
    time and in the collecting thread's CPU time (which a loaded machine does not inflate)."""
    if phase == "start":
        _gc_started[0], _gc_started[1], _gc_started[2] = time.perf_counter_ns(), time.time_ns(), time.thread_time_ns()
    else:
        GC_PAUSES[info["generation"]].append(time.perf_counter_ns() - _gc_started[0])
        GC_CPU[info["generation"]].append(time.thread_time_ns() - _gc_started[2])
        GC_WINDOWS.append((_gc_started[1], time.time_ns()))


async def _watch_loop() -> None:
    """How late the host's event loop runs a 10 ms timer (how long a ready task waits)."""
    import asyncio

    while True:
        t0 = time.perf_counter_ns()
        await asyncio.sleep(0.01)
        LOOP_LAG_NS.append(time.perf_counter_ns() - t0 - 10_000_000)


def _time_turns(loop) -> None:
    """Wall and CPU time of each turn of the host's loop (``_run_once``: select, then every
    ready callback): a turn whose wall time is far above its CPU time was preempted (the
    machine is saturated); one whose CPU time is long simply had much to do."""
    run_once, select = loop._run_once, loop._selector.select
    wall, cpu = time.perf_counter_ns, time.thread_time_ns
    after_select = [0, 0]

    def timed_select(timeout=None):
        events = select(timeout)
        after_select[0], after_select[1] = wall(), cpu()
        return events

    def timed() -> None:
        PASSES[0] += 1
        run_once()
        w = wall() - after_select[0]
        if w > 20_000:  # a turn that ran callbacks (not just a select that found nothing)
            TURN_WALL_NS.append(w)
            TURN_CPU_NS.append(cpu() - after_select[1])
            TURN_END_NS.append(time.time_ns())

    loop._selector.select = timed_select
    loop._run_once = timed


LOOP_CPU = [0, 0]  # the loop thread's CPU ns at start and at stop


async def _thread_cpu_ns() -> int:
    return time.thread_time_ns()


def _loop_cpu_ns(host) -> int:
    """The CPU time of the host's loop thread so far (read on that thread)."""
    import asyncio

    return asyncio.run_coroutine_threadsafe(_thread_cpu_ns(), host.loop).result(60)


PASSES = [0]  # turns of the host's loop so far (``_time_turns``)
# Per paper venue round trip (``PaperVenue._exec``): the loop turns it spanned, from the call to
# its result back in the bot's task. Every turn in between ran the other ready bots first, so
# this, unlike milliseconds, does not depend on how loaded the machine is.
TRIP_PASSES: list[int] = []


def _watch_venue_trips() -> None:
    from workers.paper_venue import PaperVenue

    exec_ = PaperVenue._exec

    async def counted(self, ops):
        before = PASSES[0]
        try:
            return await exec_(self, ops)
        finally:
            if ops:
                TRIP_PASSES.append(PASSES[0] - before)

    PaperVenue._exec = counted


def _watch_writers(host) -> None:
    """Note when each database writer thread runs a batch (to set against the slow loop turns)."""
    for async_writer in (host.db, host.db_orders, host.db_setup):
        writer = async_writer.writer
        run_batch = writer._run_batch

        def timed(groups, run_batch=run_batch):
            start = time.time_ns()
            try:
                return run_batch(groups)
            finally:
                WRITER_WINDOWS.append(start)
                WRITER_WINDOWS.append(time.time_ns())

        writer._run_batch = timed


def _clear(host) -> None:
    LOOP_LAG_NS.clear()
    TURN_WALL_NS.clear()
    TURN_CPU_NS.clear()
    TURN_END_NS.clear()
    TRIP_PASSES.clear()
    WRITER_WINDOWS.clear()
    GC_WINDOWS.clear()
    for pauses in (*GC_PAUSES.values(), *GC_CPU.values()):
        pauses.clear()
    for runner in list(host.bots.values()):
        runner.cycle_ns.clear()
        runner.round_trips.clear()
        runner.send_cycle_ns.clear()
        runner.places = 0
        runner.conflated = 0
    host.feed_latency_ns.clear()
    host.bot_latency_ns.clear()
    host.order_row_wait_ns.clear()


def _samples(host) -> dict:
    runners = list(host.bots.values())
    return {
        "pid": os.getpid(),
        "bots": len(runners),
        "feeds": len(host.feeds),
        "cycle_ns": [x for r in runners for x in list(r.cycle_ns)],
        # (cycle ns, venue round trips in it): both deques are appended together per cycle (a
        # cycle ending while they are copied may leave one longer: the pairs stop there)
        "cycle_round_trips": [x for r in runners for x in zip(list(r.cycle_ns), list(r.round_trips), strict=False)],
        "send_cycle_ns": [x for r in runners for x in list(r.send_cycle_ns)],
        "feed_latency_ns": list(host.feed_latency_ns),
        "gc_windows": list(GC_WINDOWS),
        "bot_latency_ns": list(host.bot_latency_ns),
        "order_row_wait_ns": list(host.order_row_wait_ns),
        "places": sum(r.places for r in runners),
        "conflated": sum(r.conflated for r in runners),
        "db_backlog": host.db.pending() + host.db_orders.pending() + host.db_setup.pending(),
        "loop_lag_ns": list(LOOP_LAG_NS),
        "turns_ns": list(zip(TURN_WALL_NS, TURN_CPU_NS, strict=False)),
        "turn_end_ns": list(TURN_END_NS),
        "trip_passes": list(TRIP_PASSES),
        "writer_windows": list(zip(WRITER_WINDOWS[::2], WRITER_WINDOWS[1::2], strict=False)),
        "gc_pauses_ns": {str(g): list(p) for g, p in GC_PAUSES.items()},
        "gc_cpu_ns": {str(g): list(p) for g, p in GC_CPU.items()},
    }


def _db_timing(host) -> dict:
    """The database writer threads' timings (cumulative): function -> (calls, rows, seconds,
    writer-thread CPU seconds), and ``threads_cpu``: the writer threads' whole CPU time."""
    out: dict = {"threads_cpu": [0, 0, 0.0, 0.0]}
    for writer in (host.db, host.db_orders, host.db_setup):
        out["threads_cpu"][3] += writer.writer.cpu_s
        for k, v in dict(writer.writer.timing).items():
            total = out.setdefault(k, [0, 0, 0.0, 0.0])
            for i in range(4):
                total[i] += v[i]
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--capacity", type=int, required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    import logging

    import django

    django.setup()
    logging.getLogger("workers").setLevel(logging.WARNING)
    from workers.host import Host

    profile_dir = os.environ.get("BENCH_PROFILE_DIR")  # cProfile the loop thread while measuring
    profiler = None
    if profile_dir:
        import cProfile

        profiler = cProfile.Profile()

    import gc

    gc.callbacks.append(_gc_callback)
    host = Host(capacity=args.capacity)
    host.start_thread()
    host.started.wait(10)
    import asyncio

    asyncio.run_coroutine_threadsafe(_watch_loop(), host.loop)
    host.loop.call_soon_threadsafe(_time_turns, host.loop)
    _watch_writers(host)
    _watch_venue_trips()
    print("ready", flush=True)
    cpu0 = wall0 = 0.0
    timing0: dict = {}
    for line in sys.stdin:
        command = line.strip()
        if command == "start":
            _clear(host)
            timing0 = _db_timing(host)
            if profiler is not None:
                host.loop.call_soon_threadsafe(profiler.enable)
            cpu0, wall0 = time.process_time(), time.monotonic()
            LOOP_CPU[0] = _loop_cpu_ns(host)
            print("started", flush=True)
        elif command == "stop":
            if profiler is not None:
                host.loop.call_soon_threadsafe(profiler.disable)
                time.sleep(0.2)
                profiler.dump_stats(os.path.join(profile_dir, f"host-{os.getpid()}.prof"))
            LOOP_CPU[1] = _loop_cpu_ns(host)
            data = _samples(host)
            data["loop_cpu_s"] = (LOOP_CPU[1] - LOOP_CPU[0]) / 1e9
            timing = _db_timing(host)
            data["db_timing"] = {
                k: tuple(round(v[i] - timing0.get(k, (0, 0, 0, 0))[i], 2) for i in range(4)) for k, v in timing.items()
            }
            data["cpu_s"] = time.process_time() - cpu0
            data["wall_s"] = time.monotonic() - wall0
            Path(args.out).write_text(json.dumps(data))
            print("stopped", flush=True)
        elif command == "count":
            print(len(host.bots), flush=True)
        elif command == "exit":
            break
    host.stop()
    print("exited", flush=True)


if __name__ == "__main__":
    main()
