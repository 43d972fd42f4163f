"""A fill the bot host's database writer acknowledged survives a PostgreSQL crash.

The writer commits telemetry with ``synchronous_commit`` off; a commit then answers before its
WAL is written out, and a PostgreSQL crash loses it. Fills and order state changes are durable
(``apps.core.writes.durable``): their commit waits for the WAL flush. Here PostgreSQL runs with
``wal_writer_delay`` 10 s (default 200 ms), so an asynchronous commit's WAL would certainly still
be in memory at the crash; the window is the same in production, only shorter."""

from __future__ import annotations

import time

import pytest

from tests.reliability.conftest import logdir
from tests.reliability.stack import Agent, free_port, stack_env

pytestmark = [pytest.mark.slow]


def test_fills_acknowledged_by_the_writer_survive_a_postgres_crash(services):
    services.pg.create_database("mm_durable")
    env = stack_env(
        database_url=services.pg.url("mm_durable"), redis_url=services.redis.url(7), prefix="rel-durable",
        port=free_port(),
    )  # fmt: skip
    agent = Agent(env, logdir("durable") / "agent.log")
    try:
        setup = agent.call("setup", bots_per_venue=1, venues=["sim:alpha"])
        account, bot = setup["accounts"][0]["id"], setup["bots"][0]
        services.pg.stop("fast")
        services.pg.extra_options = "-c wal_writer_delay=10s"
        try:
            services.pg.start()
            time.sleep(1)
            acknowledged = agent.call("writer_fills", account_id=account, bot_id=bot, prefix="crash", batches=20)
            services.pg.stop("immediate")  # a crash, within the WAL writer's delay
        finally:
            services.pg.extra_options = ""
            services.pg.start()
        stored = agent.call("fills_with_prefix", account_id=account, prefix="crash")
        assert acknowledged == 20
        assert stored == acknowledged, f"{acknowledged - stored} of {acknowledged} acknowledged fills lost"
    finally:
        agent.close()
