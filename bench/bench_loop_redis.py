"""Loop turns one Redis call costs on a busy host loop (redis-py asyncio, hiredis, real Redis).

16 tasks stand in for the bots a host wakes per turn, each burning 0.3 ms of CPU per turn of the
loop; the figure is how many turns pass between a call and its result back in the caller (each
turn is a batch of bot cycles on a real host), with redis-py's own connection and with
``workers.redis_conn.LoopConnection`` (both ``socket_timeout=5``, as the host's pool). The turn count
does not depend on how loaded the machine is; the milliseconds do.

    .venv/bin/python bench/bench_loop_redis.py
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mmsite.settings.local")


async def main() -> None:
    import redis.asyncio as aioredis

    from workers.redis_conn import LoopConnection

    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15")
    turns = [0]
    stop = False

    async def bot(i: int) -> None:
        while not stop:
            until = time.perf_counter() + 0.0003
            while time.perf_counter() < until:
                pass
            if i == 0:
                turns[0] += 1
            await asyncio.sleep(0)

    bots = [asyncio.create_task(bot(i)) for i in range(16)]
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for name, cls in (("redis-py Connection", aioredis.Connection), ("LoopConnection", LoopConnection)) * 2:
        pool = aioredis.BlockingConnectionPool.from_url(
            url, max_connections=64, timeout=10, socket_timeout=5, socket_connect_timeout=3, connection_class=cls
        )
        client = aioredis.Redis(connection_pool=pool)
        await client.ping()
        for label in ("one EVAL", "pipeline of 3 EVAL"):
            counts, ms = [], []
            for _ in range(300):
                t0, w0 = turns[0], time.perf_counter()
                if label == "one EVAL":
                    await client.eval("return 1", 0)
                else:
                    pipe = client.pipeline(transaction=False)
                    for _ in range(3):
                        pipe.eval("return 1", 0)
                    await pipe.execute()
                counts.append(turns[0] - t0)
                ms.append((time.perf_counter() - w0) * 1e3)
            counts.sort()
            ms.sort()
            print(
                f"{name:20s} {label:18s}: loop turns p50 {counts[150]}, p99 {counts[297]}; "
                f"ms p50 {ms[150]:.1f} (loaded machine: turns are what compares)"
            )
        await client.aclose()
    stop = True
    await asyncio.gather(*bots)


if __name__ == "__main__":
    asyncio.run(main())
