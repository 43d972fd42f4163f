"""The whole Procfile (web, default worker, two bot hosts, beat) against its own Redis and
PostgreSQL, with paper bots trading on the sim and replay venues: kill -9 each process kind,
restart Redis, restart PostgreSQL, pull the kill switches under load. Nothing is lost or
duplicated, no order is left without its owner, every process comes back, and ``/healthz``
says the truth all along. The tests run in file order on one stack (module scope)."""

from __future__ import annotations

import time

import psycopg
import pytest
import redis as redis_lib

from tests.reliability.conftest import logdir
from tests.reliability.stack import (
    Agent,
    HealthWatcher,
    Stack,
    free_port,
    http_status,
    post_json,
    settled_audit,
    stack_env,
    wait_until,
)

pytestmark = [pytest.mark.slow]
PREFIX = "rel-crash"
PROCESSES = ("web", "worker", "bots", "bots2", "beat")
TAKEOVER_S = 15


class Run:
    """Everything a test of this module needs: the stack, the agent, the bots."""

    def __init__(self, services) -> None:
        self.services = services
        port = free_port()
        self.base = f"http://127.0.0.1:{port}"
        services.pg.create_database("mm_crash")
        env = stack_env(
            database_url=services.pg.url("mm_crash"), redis_url=services.redis.url(0), prefix=PREFIX, port=port
        )
        self.logs = logdir("crash")
        self.agent = Agent(env, self.logs / "agent.log")
        self.setup = self.agent.call("setup", bots_per_venue=4, venues=["sim:alpha", "replay:binance-spot"])
        self.accounts = self.setup["accounts"]
        # Two of the sim bots stay in reserve (stopped): started later through the database
        # only, they prove that beat -> worker -> supervisor -> host works again.
        self.reserve = self.setup["bots"][2:4]
        self.bots = [b for b in self.setup["bots"] if b not in self.reserve]
        self.redis = redis_lib.Redis.from_url(services.redis.url(0), socket_timeout=3)
        self.stack = Stack(env, self.logs)
        self.outages: list[tuple[str, float, float]] = []  # (what, down at, back at)
        self.web_orphans: list[int] | None = None
        self.worker_survived_redis: bool | None = None
        for name in PROCESSES:
            self.stack.start(name)
        self.health = HealthWatcher(self.base)

    def owners(self, bots=None) -> dict[int, int]:
        """bot -> pid of the process holding its lease (0: none)."""
        bots = bots or self.bots
        try:
            values = self.redis.mget([f"{PREFIX}:bot:{b}:lease" for b in bots])
        except redis_lib.exceptions.BusyLoadingError:  # just restarted, still loading its AOF
            return dict.fromkeys(bots, 0)
        return {b: int(v.decode().split(":")[1]) if v else 0 for b, v in zip(bots, values, strict=True)}

    def running(self, bots=None) -> bool:
        states = self.agent.call("states", bot_ids=bots or self.bots)
        return all(s == "running" for s in states.values())

    def fills(self) -> int:
        return self.agent.call("fills", account_ids=[a["id"] for a in self.accounts])

    def trades_again(self, timeout: float = 45) -> bool:
        before = self.fills()
        return wait_until(lambda: self.fills() > before, timeout, interval=1.0)

    def close(self) -> None:
        self.health.stop()
        self.stack.stop_all()
        self.agent.close()


@pytest.fixture(scope="module")
def run(services):
    r = Run(services)
    yield r
    r.close()


def dead(run) -> list[str]:
    return [name for name in PROCESSES if not run.stack.alive(name)]


def test_the_stack_starts_from_the_procfile_and_trades(run):
    assert run.agent.call("want", bot_ids=run.bots) == len(run.bots)
    assert wait_until(lambda: http_status(run.base + "/healthz") == 200, 60, interval=1.0), "healthz never 200"
    assert wait_until(lambda: all(run.owners().values()), 60, interval=1.0), f"bots not claimed: {run.owners()}"
    assert wait_until(run.running, 30, interval=1.0)
    assert wait_until(lambda: run.fills() >= 3, 60, interval=1.0), "no fills on the paper venues"
    assert {run.stack.pid("bots"), run.stack.pid("bots2")} >= set(run.owners().values())
    assert not dead(run)


@pytest.mark.parametrize("case", ["busier host", "the heir"])
def test_kill9_of_a_bot_host_moves_its_bots_and_the_restarted_host_takes_work(run, case):
    # First the host owning the most bots; then the other one, which owns them all by then.
    hosts = {"bots": run.stack.pid("bots"), "bots2": run.stack.pid("bots2")}
    owners = run.owners()
    victim = max(hosts, key=lambda name: sum(pid == hosts[name] for pid in owners.values()))
    heir = "bots2" if victim == "bots" else "bots"
    owned = [b for b, pid in owners.items() if pid == hosts[victim]]
    assert owned, f"no bot owned by either host: {owners}"
    if case == "the heir":
        assert len(owned) == len(run.bots), f"after the first kill, the heir does not own every bot: {owners}"
    run.stack.kill9(victim)
    killed_at = time.monotonic()
    heir_pid = run.stack.pid(heir)
    moved = wait_until(lambda: set(run.owners().values()) == {heir_pid}, TAKEOVER_S + 5, interval=0.2)
    took = time.monotonic() - killed_at
    assert moved and took < TAKEOVER_S, f"{len(owned)} bots of the killed host not moved in {took:.1f}s"
    print(f"kill -9 {victim}: {len(owned)} bots moved in {took:.1f} s")
    # Nothing the killed host started (a child process of any kind) outlives it for long.
    assert wait_until(lambda: not run.stack.leftovers(victim), 15), (
        f"orphans of {victim}: {run.stack.leftovers(victim)}"
    )
    run.stack.start(victim)
    assert wait_until(lambda: run.running(), 20, interval=1.0)
    assert run.trades_again(), "no fills after the take-over"
    # The restarted host registers and is able to take work (the next case kills the heir).
    assert wait_until(
        lambda: any(f'"pid": {run.stack.pid(victim)}'.encode() in v for v in run.redis.hvals(f"{PREFIX}:hosts")), 40
    ), "the restarted host never registered"


@pytest.mark.parametrize("victim", ["worker", "beat"])
def test_kill9_of_the_control_plane_and_its_work_resumes_after_restart(run, victim):
    """The default worker runs the supervisor that beat schedules: a bot wanted in the database
    only runs once both are back."""
    bot = run.reserve.pop()
    run.stack.kill9(victim)
    assert wait_until(lambda: not run.stack.leftovers(victim), 15), (
        f"orphans of {victim}: {run.stack.leftovers(victim)}"
    )
    if victim == "beat":  # let ticks sent before the kill be run (the broker's queue drained)
        assert wait_until(lambda: run.redis.llen(f"{PREFIX}:celery:default") == 0, 20)
        time.sleep(2)
    run.agent.call("want", bot_ids=[bot])
    time.sleep(6)  # more than one supervisor period without the victim
    assert run.owners([bot])[bot] == 0, f"{bot} was claimed with the {victim} dead: the check proves nothing"
    run.stack.start(victim)
    assert wait_until(lambda: run.owners([bot])[bot], 60, interval=1.0), f"the {victim}'s work did not resume"
    assert wait_until(lambda: run.running([bot]), 20, interval=1.0)
    run.bots.append(bot)
    assert not dead(run)


def test_kill9_of_the_web_server_and_it_serves_again(run):
    run.stack.kill9("web")
    down_at = time.monotonic()
    time.sleep(3)
    run.web_orphans = run.stack.leftovers("web")
    # The master's workers must go with it (mmsite/webserver.py: they die with their parent).
    # Whatever is left is recorded (the next test fails on it), then cleared, then restarted.
    run.stack.kill_session("web")
    assert wait_until(lambda: http_status(run.base + "/healthz") == 0, 10), "the web server still answers"
    run.stack.start("web")
    assert wait_until(lambda: http_status(run.base + "/healthz") == 200, 60, interval=0.5), "web not back"
    run.outages.append(("web", down_at, time.monotonic()))
    assert not dead(run)


def _outage_is_reported(run, what: str, down_at: float, up_at: float) -> None:
    # A dependency counts as down from 3 s after it went (timeouts of requests in flight) until
    # it was started again: every answer meanwhile must be non-200.
    statuses = run.health.between(down_at + 3, up_at)
    assert statuses, f"no /healthz sample while {what} was down"
    assert 200 not in statuses, f"/healthz said 200 while {what} was down: {statuses}"


def test_redis_restart_is_survived_by_every_process(run):
    assert wait_until(run.running, 30, interval=1.0)
    # The default worker is busy (a backtest in flight, unacknowledged) when Redis goes.
    backtest = run.agent.call("backtest", max_events=5_000_000)
    assert wait_until(lambda: run.agent.call("backtest_status", run_id=backtest) != "queued", 30, 0.3)
    assert run.agent.call("backtest_status", run_id=backtest) == "running", "the backtest ended before Redis went"
    run.services.redis.kill()
    down_at = time.monotonic()
    time.sleep(8)  # longer than the lease TTL: every owner loses its leases
    up_at = time.monotonic()  # it may answer before start() returns: the outage ends here
    run.services.redis.start()
    run.outages.append(("redis", down_at, up_at))
    _outage_is_reported(run, "Redis", down_at, up_at)
    assert wait_until(lambda: http_status(run.base + "/healthz") == 200, 45, interval=1.0), "healthz not 200 again"
    assert wait_until(lambda: run.agent.call("backtest_status", run_id=backtest) != "running", 60, 1.0)
    time.sleep(3)
    # Issue 23 defect 1 (fixed in mmsite/celery.py): kombu's Redis transport ended the default
    # worker here. Recorded (the next test fails on it); the worker is then restarted, as a
    # supervisor would, so the rest of the suite still runs on a whole stack.
    run.worker_survived_redis = run.stack.alive("worker")
    if not run.worker_survived_redis:
        print("redis restart: THE DEFAULT WORKER DIED (kombu restore_unacked); restarting it")
        run.stack.start("worker")
    assert not dead(run), f"died on the Redis restart: {dead(run)}"
    assert wait_until(lambda: all(run.owners().values()), 45, interval=1.0), "bots not claimed again"
    assert wait_until(run.running, 30, interval=1.0)
    assert run.trades_again(), "no fills after the Redis restart"
    # Settled: every fill made around the restart is in the database (checked here, before the
    # PostgreSQL restart, so each fault is judged on its own).
    audit = settled_audit(run.agent, run.accounts, run.bots)
    assert audit["lost"] == [] and audit["duplicated"] == [], (audit["lost"], audit["duplicated"])


def test_the_default_worker_survives_a_redis_restart_with_a_task_in_flight(run):
    assert run.worker_survived_redis, "the default worker exited after the Redis restart (see worker.log)"


def test_postgres_restart_is_survived_by_every_process(run):
    run.services.pg.stop("immediate")
    down_at = time.monotonic()
    time.sleep(6)
    up_at = time.monotonic()  # it may answer before start() returns: the outage ends here
    run.services.pg.start()
    run.outages.append(("postgres", down_at, up_at))
    _outage_is_reported(run, "PostgreSQL", down_at, up_at)
    assert wait_until(lambda: http_status(run.base + "/healthz") == 200, 45, interval=1.0), "healthz not 200 again"
    assert not dead(run), f"died on the PostgreSQL restart: {dead(run)}"
    assert wait_until(run.running, 30, interval=1.0)
    assert run.trades_again(), "no fills after the PostgreSQL restart"
    assert_no_fill_lost_once_reconciled(run)


def test_postgres_crash_right_after_a_redis_restart_loses_no_fill(run):
    """A burst of writes (bots claimed again after a Redis restart, trading) when PostgreSQL
    crashes: every fill still ends up in the database. The writer commits with
    ``synchronous_commit`` off, so the crash can take the last ~0.6 s of commits (seen in 4 of
    6 runs); the reconciliation job (beat, every 30 s) records them from the venue's trades."""
    run.services.redis.kill()
    time.sleep(7)  # > lease TTL
    run.services.redis.start()
    assert wait_until(lambda: all(run.owners().values()), 45, interval=0.5), "bots not claimed again"
    assert run.trades_again(30), "no fills after the Redis restart"
    time.sleep(1.5)
    run.services.pg.stop("immediate")
    time.sleep(3)
    run.services.pg.start()
    assert wait_until(run.running, 45, interval=1.0)
    if not run.stack.alive("worker"):  # issue 23 defect 1 again (test above): restart it
        print("redis restart: THE DEFAULT WORKER DIED again; restarting it")
        run.stack.start("worker")
    assert not dead(run), dead(run)
    assert_no_fill_lost_once_reconciled(run)


def test_bots_stopped_right_after_a_postgres_crash_lose_no_fill(run):
    """PostgreSQL crashes while the bots trade and they are stopped (immediate stop) as soon
    as it is back: every venue trade still ends as exactly one fill row. A stopped bot is no
    longer reconciled once it has settled, so a fill the crash took (an asynchronous commit not
    yet written out) would stay lost. PostgreSQL runs with ``wal_writer_delay`` 10 s here
    (default 200 ms) to widen that window, and crashes the moment a new fill row is visible
    (before the fix: 2 fills lost; ``test_durable_writes.py`` shows the loss deterministically)."""
    run.agent.call("want", bot_ids=run.bots)
    assert wait_until(run.running, 45, interval=1.0)
    run.services.pg.stop("fast")
    run.services.pg.extra_options = "-c wal_writer_delay=10s"
    run.services.pg.start()
    try:
        assert wait_until(run.running, 45, interval=1.0)
        assert run.trades_again(30), "no fills after the PostgreSQL restart"
        time.sleep(2)
        # The crash lands the moment a new fill is visible: its commit is the newest in the WAL.
        with psycopg.connect(run.services.pg.url("mm_crash"), autocommit=True) as conn:
            count = "SELECT count(*) FROM orders_fill"
            before = conn.execute(count).fetchone()[0]
            deadline = time.monotonic() + 20
            while conn.execute(count).fetchone()[0] == before and time.monotonic() < deadline:
                time.sleep(0.002)
        run.services.pg.crash()
    finally:
        run.services.pg.extra_options = ""
    time.sleep(2)
    run.services.pg.start()
    stopped = list(run.bots)
    run.agent.call("stop", bot_ids=stopped, kill=True)
    assert wait_until(lambda: set(run.agent.call("states", bot_ids=stopped).values()) == {"stopped"}, 45, 1.0), (
        run.agent.call("states", bot_ids=stopped)
    )
    if not run.stack.alive("worker"):
        run.stack.start("worker")
    assert not dead(run), dead(run)
    time.sleep(40)  # beat runs the reconciliation (every 30 s; fills settle after 30 s), as in production
    audit = settled_audit(run.agent, run.accounts, run.bots)
    assert audit["lost"] == [] and audit["duplicated"] == [], (len(audit["lost"]), audit["lost"], audit["duplicated"])
    # The rest of the suite trades with every bot again.
    run.agent.call("want", bot_ids=stopped)
    assert wait_until(run.running, 45, interval=1.0)


def assert_no_fill_lost_once_reconciled(run) -> None:
    """Once the writers caught up and the reconciliation job ran (as beat runs it), every venue
    trade is exactly one fill row."""
    time.sleep(2)
    run.agent.call("reconcile")
    audit = settled_audit(run.agent, run.accounts, run.bots)
    assert audit["lost"] == [] and audit["duplicated"] == [], (audit["lost"], audit["duplicated"])


def test_kill_switches_under_load_leave_nothing_open_lost_or_duplicated(run):
    token = run.setup["token"]
    api = run.base + "/api/v1"
    first = run.accounts[0]["id"]
    status, body = post_json(f"{api}/exchange-accounts/{first}/kill/", token, {"on": True, "reason": "reliability"})
    assert status == 200 and body["bots_killed"] >= 1, (status, body)
    status, body = post_json(f"{api}/kill-all/", token, {"reason": "reliability"})
    assert status == 200, (status, body)
    assert wait_until(lambda: set(run.agent.call("states", bot_ids=run.bots).values()) == {"stopped"}, 30, 1.0), (
        run.agent.call("states", bot_ids=run.bots)
    )
    time.sleep(2)  # a place still in flight would land now
    run.agent.call("reconcile")
    audit = settled_audit(run.agent, run.accounts, run.bots)
    assert audit["venue_fills"] > 0 and audit["places"] > 0
    lost = audit["lost"]
    assert lost == [] and audit["extra"] == [], f"fills lost {lost} / unknown {audit['extra']}"
    assert audit["duplicated"] == [], f"fills recorded twice: {audit['duplicated']}"
    assert audit["placed_twice"] == [], f"orders placed twice: {audit['placed_twice']}"
    assert audit["orphans"] == [], f"venue orders without a row: {audit['orphans']}"
    assert audit["venue_open"] == [] and audit["db_open"] == [], (audit["venue_open"], audit["db_open"])
    for bot, tokens in audit["tokens"].items():
        assert tokens == sorted(tokens), f"bot {bot}: two owners sent orders (tokens {tokens})"
    assert not dead(run)


def test_kill9_of_the_web_server_leaves_no_process_serving(run):
    assert run.web_orphans == [], f"processes of the killed web server still running: {run.web_orphans}"


def test_healthz_was_truthful_throughout(run):
    """Non-200 (or no answer) during each outage, 200 when the stack was whole and settled."""
    for what, down_at, up_at in run.outages:
        if what != "web":
            _outage_is_reported(run, what, down_at, up_at)
    statuses = [s for _, s in run.health.samples]
    assert statuses.count(200) > len(statuses) / 3, "the stack was rarely healthy"
    assert http_status(run.base + "/healthz") == 200
