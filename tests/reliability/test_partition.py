"""A network partition is not a crash. The two bot hosts of the Procfile run in their own
network namespaces (two "machines" sharing one Redis and one PostgreSQL over veth links); the
worker and beat run here. One host is cut off for 30 s while it keeps running: its bots move
to the other host within 15 s, it gives them up on its own before their leases expire, no two
owners ever send orders (fencing tokens never go back), and once healed it rejoins without a
duplicate order or fill."""

from __future__ import annotations

import re
import threading
import time
from datetime import datetime

import pytest
import redis as redis_lib

from tests.reliability.conftest import logdir
from tests.reliability.services import Namespaces
from tests.reliability.stack import Agent, Stack, free_port, settled_audit, stack_env, wait_until

pytestmark = [pytest.mark.slow]
PREFIX = "rel-part"
HOSTS = {"bots": 1, "bots2": 2}  # Procfile process -> namespace number
LEASE_TTL_S = 6.0
CUT_S = 30
# The host's two ways of saying it gave a bot up: its renewal round, or the bot's own loop
# finding its lease past the local deadline.
LOST = re.compile(
    r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}): WARNING/MainProcess\] "
    r"(?:lease \S+:bot:(\d+):lease lost|bot (\d+) lost its lease)"
)


class LeaseWatch:
    """Polls every bot's lease five times a second: which pid held which token, and when."""

    def __init__(self, redis, bots: list[int]) -> None:
        self.redis, self.bots = redis, bots
        self.owner_of_token: dict[tuple[int, int], int] = {}
        self.samples: list[tuple[float, dict[int, int]]] = []
        self.expiry: dict[int, list[tuple[float, float]]] = {b: [] for b in bots}  # (wall time, expires at)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def now(self) -> dict[int, int]:
        values = self.redis.mget([f"{PREFIX}:bot:{b}:lease" for b in self.bots])
        out = {}
        for bot, value in zip(self.bots, values, strict=True):
            if value:
                _host, pid, _tag, token = value.decode().rsplit(":", 3)
                self.owner_of_token.setdefault((bot, int(token)), int(pid))
                out[bot] = int(pid)
            else:
                out[bot] = 0
        return out

    def expires_at(self, bot: int, before: float) -> float:
        """When Redis would expire the lease, as last seen before wall time ``before``."""
        seen = [expires for at, expires in self.expiry[bot] if at < before]
        return seen[-1] if seen else 0.0

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                pipe = self.redis.pipeline(transaction=False)
                for bot in self.bots:
                    pipe.pttl(f"{PREFIX}:bot:{bot}:lease")
                sent = time.time()
                for bot, pttl in zip(self.bots, pipe.execute(), strict=True):
                    if pttl > 0:
                        self.expiry[bot].append((sent, sent + pttl / 1000))
                self.samples.append((time.monotonic(), self.now()))
            except redis_lib.RedisError:
                pass
            self._stop.wait(0.2)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


@pytest.fixture(scope="module")
def partition(services):
    if services.namespaces is None:
        pytest.skip(f"PARTITION TESTS NOT RUN: {Namespaces.unavailable_reason()}")
    ns = services.namespaces
    services.pg.create_database("mm_part")
    env = stack_env(
        database_url=services.pg.url("mm_part"), redis_url=services.redis.url(1), prefix=PREFIX, port=free_port()
    )
    logs = logdir("partition")
    agent = Agent(env, logs / "agent.log")
    setup = agent.call("setup", bots_per_venue=3, venues=["sim:alpha", "replay:binance-spot"])
    stack = Stack(env, logs, netns={name: ns.name(n) for name, n in HOSTS.items()})
    for name, n in HOSTS.items():
        address = ns.host_address(n)
        stack.start(
            name,
            DATABASE_URL=services.pg.url("mm_part", host=address),
            REDIS_URL=services.redis.url(1, host=address),
            CELERY_BROKER_URL=services.redis.url(1, host=address),
        )
    stack.start("worker")
    stack.start("beat")
    redis = redis_lib.Redis.from_url(services.redis.url(1), socket_timeout=3)
    yield stack, agent, setup, redis, ns
    for n in HOSTS.values():
        ns.heal(n)
    stack.stop_all()
    agent.close()


def registered(redis, pid: int, since: float = 0.0) -> bool:
    import json

    return any(json.loads(v)["pid"] == pid and json.loads(v)["ts"] > since for v in redis.hvals(f"{PREFIX}:hosts"))


def all_stopped(agent, bots) -> bool:
    """All stopped; meanwhile run the supervisor as beat would (it repeats lost commands)."""
    if set(agent.call("states", bot_ids=bots).values()) == {"stopped"}:
        return True
    agent.call("tick")
    return False


def log_times_of_lost_leases(text: str) -> dict[int, float]:
    out = {}
    for line in text.splitlines():
        match = LOST.match(line)
        if match:
            at = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
            bot = int(match.group(2) or match.group(3))
            out[bot] = min(at, out.get(bot, at))
    return out


def test_a_cut_off_host_gives_up_its_bots_in_time_and_rejoins_without_duplicates(partition):
    stack, agent, setup, redis, ns = partition
    bots, accounts = setup["bots"], setup["accounts"]
    pids = {name: stack.pid(name) for name in HOSTS}
    # Two machines, one Redis and one PostgreSQL: both hosts register before any bot is wanted.
    assert wait_until(lambda: all(registered(redis, pid) for pid in pids.values()), 60, 1.0), "hosts not registered"
    agent.call("want", bot_ids=bots)
    watch = LeaseWatch(redis, bots)
    try:
        assert wait_until(lambda: all(watch.now().values()), 45, 1.0), f"bots not claimed: {watch.now()}"
        owners = watch.now()
        assert set(owners.values()) <= set(pids.values())
        assert wait_until(lambda: agent.call("fills", account_ids=[a["id"] for a in accounts]) >= 3, 60, 1.0)
        # Cut off the host owning the most bots (both own some when the claims spread).
        victim = max(HOSTS, key=lambda name: sum(pid == pids[name] for pid in owners.values()))
        heir_pid = pids["bots2" if victim == "bots" else "bots"]
        victims_bots = [b for b, pid in owners.items() if pid == pids[victim]]
        ns.cut(HOSTS[victim])
        cut_wall, cut_at = time.time(), time.monotonic()
        moved = wait_until(lambda: all(watch.now()[b] == heir_pid for b in victims_bots), 20, 0.2)
        moved_after = time.monotonic() - cut_at
        assert moved and moved_after < 15, f"bots {victims_bots} not moved within 15 s ({moved_after:.1f} s)"
        time.sleep(max(0.0, CUT_S - (time.monotonic() - cut_at)))
        assert stack.alive(victim), "the cut-off host exited (a partition is not a crash)"
        # It stopped on its own: each lease was given up locally before it expired in Redis.
        lost = log_times_of_lost_leases(stack.log_text(victim))
        late = {
            b: round(lost[b] - cut_wall, 1) for b in victims_bots if b in lost and lost[b] - cut_wall >= LEASE_TTL_S
        }
        missing = [b for b in victims_bots if b not in lost]
        assert not missing, f"the cut-off host never gave up bots {missing}"
        assert not late, f"leases given up only after they expired (s after the cut): {late}"
        given_up = sorted(round(lost[b] - cut_wall, 1) for b in victims_bots)
        margins = sorted(round(watch.expires_at(b, cut_wall) - lost[b], 1) for b in victims_bots)
        print(
            f"partition: {len(victims_bots)} bots moved in {moved_after:.1f} s; given up {given_up} s after the cut, "
            f"{margins} s before their leases expired in Redis"
        )
        # Every send is guarded by the lease's local deadline (0.9 x TTL after the last renewal
        # was sent); the log line comes when the bot's loop next looks (at least once a second),
        # so it is compared with the latest possible expiry (cut + TTL) and its margin to the
        # expiry Redis reported (PTTL before the cut) is printed, not asserted.
        ns.heal(HOSTS[victim])
        healed = time.time()
        assert wait_until(lambda: registered(redis, pids[victim], since=healed), 30, 1.0), "it never rejoined"
        fills = agent.call("fills", account_ids=[a["id"] for a in accounts])
        assert wait_until(lambda: agent.call("fills", account_ids=[a["id"] for a in accounts]) > fills, 45, 1.0)
    finally:
        watch.stop()
    agent.call("stop", bot_ids=bots)
    assert wait_until(lambda: all_stopped(agent, bots), 40, 1.0), agent.call("states", bot_ids=bots)
    time.sleep(1)
    agent.call("reconcile")
    audit = settled_audit(agent, accounts, bots)
    for bot, tokens in audit["tokens"].items():
        assert tokens == sorted(tokens), f"bot {bot}: two owners sent orders (tokens {tokens})"
        # Every token that sent orders belonged to one host, and the victim's old tokens were
        # not used after the heir's.
    for bot in victims_bots:
        seq = audit["tokens"].get(str(bot), [])
        assert len(set(seq)) >= 2, f"bot {bot}: the new owner never sent with a new token ({seq})"
        owners_in_order = [watch.owner_of_token.get((bot, t)) for t in dict.fromkeys(seq)]
        assert pids[victim] in owners_in_order and heir_pid in owners_in_order, owners_in_order
    assert audit["venue_fills"] > 0
    assert audit["lost"] == [] and audit["extra"] == [], f"fills lost {audit['lost']} / unknown {audit['extra']}"
    assert audit["duplicated"] == [] and audit["placed_twice"] == [], (audit["duplicated"], audit["placed_twice"])
    assert audit["orphans"] == [] and audit["venue_open"] == [] and audit["db_open"] == [], audit
    assert all(stack.alive(name) for name in (*HOSTS, "worker", "beat"))
