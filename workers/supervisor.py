"""The supervisor (beat, every 5 s): desired vs actual state of every bot and feed.

Bots that must run are put in the wanted set (hosts claim them when their lease is free — after
a crash the lease expires within its TTL and any live host takes the bot over); owners of bots
that must stop are told so (again every tick until they do); bots that must stop and have no
owner are cleaned up; owners of bots the risk sweep paused (``Bot.risk_paused_at``) are told
to pause until they report it, and never to resume; feeds needed by running bots or by
dashboards/arbitrage (a ``feed:<venue>:<symbol>:interest`` key with a TTL) are wanted too. ``actual_state`` follows what
the loops report, with a BotEvent when an owner is lost.
"""

from __future__ import annotations

import json
import logging
import time

from celery import shared_task

from apps.bots.services import bot_events_record, bot_state_set
from workers import keys, lifecycle, records

logger = logging.getLogger(__name__)


def tick() -> dict[str, int]:
    """One supervision pass; returns counters."""
    from apps.bots.models import Bot

    redis = lifecycle.redis_client()
    bots = list(
        Bot.objects.values_list(
            "id",
            "desired_state",
            "actual_state",
            "market__venue",
            "market__symbol",
            "exchange_account__kill_switch",
            "state_reason",
            "risk_paused_at",
        )
    )
    counters = {"wanted": 0, "claim_pending": 0, "stop_sent": 0, "cleaned": 0, "owned": 0}
    pipe = redis.pipeline(transaction=False)
    for bot_id, *_ in bots:
        pipe.get(keys.bot_lease(bot_id))
        pipe.get(keys.bot_status(bot_id))
    raw = pipe.execute()
    wanted: set[int] = set()
    feeds: set[str] = set()
    events = []
    now = time.time_ns()
    for i, (bot_id, desired, actual, venue, symbol, kill, reason, risk_paused_at) in enumerate(bots):
        lease, status = raw[2 * i], raw[2 * i + 1]
        status = json.loads(status) if status else None
        must_run = desired in lifecycle.RUN_STATES and not kill and actual != "error"
        if lease:
            counters["owned"] += 1
        if must_run:
            wanted.add(bot_id)
            feeds.add(f"{venue}|{symbol}")
            if not lease:
                counters["claim_pending"] += 1
                if actual in ("running", "paused"):
                    events.append(
                        (bot_id, now, "lifecycle", "owner_lost", "no live owner; waiting for take-over", None)
                    )
                    bot_state_set(bot_id, "starting", "owner lost; waiting for a worker to take over")
            elif status:
                loop_state = status.get("state")
                paused_by_risk = risk_paused_at is not None
                if (desired == "paused" or paused_by_risk) and loop_state == "running":
                    lifecycle.control(redis, bot_id, "pause")
                elif desired == "running" and loop_state == "paused" and not paused_by_risk:
                    lifecycle.control(redis, bot_id, "resume")
                if loop_state in ("running", "paused") and loop_state != actual:
                    bot_state_set(bot_id, loop_state, reason if loop_state == "paused" else "")
        else:
            if lease:
                lifecycle.control(redis, bot_id, "kill" if kill else "stop")
                counters["stop_sent"] += 1
            elif actual not in ("stopped", "error") or (
                actual == "error" and (reason or "").startswith(records.STOP_UNCONFIRMED)
            ):  # an unconfirmed stop is retried here until the venue confirms it
                lifecycle.apply(bot_id, kill=kill)
                counters["cleaned"] += 1
    # Feeds wanted by dashboards / the arbitrage tracker.
    interest = list(redis.scan_iter(match=f"{keys.prefix()}:feed:*:interest", count=500))
    for value in redis.mget(interest) if interest else []:
        if value:
            feeds.add(value.decode())  # "venue|symbol"
    current_bots = {int(b) for b in redis.smembers(keys.bots_wanted())}
    current_feeds = {f.decode() for f in redis.smembers(keys.feeds_wanted())}
    pipe = redis.pipeline()
    if wanted - current_bots:
        pipe.sadd(keys.bots_wanted(), *(wanted - current_bots))
    if current_bots - wanted:
        pipe.srem(keys.bots_wanted(), *(current_bots - wanted))
    if feeds - current_feeds:
        pipe.sadd(keys.feeds_wanted(), *(feeds - current_feeds))
    if current_feeds - feeds:
        pipe.srem(keys.feeds_wanted(), *(current_feeds - feeds))
    pipe.execute()
    if events:
        bot_events_record(events)
    counters["wanted"] = len(wanted)
    return counters


@shared_task(name="workers.supervisor.tick")
def supervisor_tick() -> dict[str, int]:
    """Beat entry point (every 5 s); stamps its run for /healthz (``apps.core.health``)."""
    from apps.core.health import write_stamp

    counters = tick()
    write_stamp("supervisor", {"worker": getattr(supervisor_tick.request, "hostname", None), **counters})
    return counters


def register_feed_interest(venue: str, symbol: str, ttl_s: int = 60) -> None:
    """Dashboards and the arbitrage tracker call this to keep a feed running without a bot."""
    redis = lifecycle.redis_client()
    pipe = redis.pipeline()
    pipe.set(keys.feed_interest(venue, symbol), f"{venue}|{symbol}", ex=ttl_s)
    pipe.sadd(keys.feeds_wanted(), f"{venue}|{symbol}")
    pipe.execute()
