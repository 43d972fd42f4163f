"""Desired vs actual state of bots, from synchronous code (Celery tasks and the supervisor).

A bot that must run (desired running or paused, account kill switch off, not in error) is in
the wanted set; hosts claim it (one the risk sweep paused, ``Bot.risk_paused_at``, runs paused). The owner of a bot is told what to do on the bot's control
channel. A bot that must stop and has no owner is cleaned up here: its orders are cancelled on
the venue under its lease (fenced), then the database rows are closed.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time

from apps.bots.services import bot_events_record, bot_state_set
from apps.orders.services import open_orders_close
from workers import keys, records
from workers.leases import SyncLease
from workers.paper_scripts import DELETE

logger = logging.getLogger(__name__)
RUN_STATES = ("running", "paused")


def redis_client():
    from apps.core.health import redis_client as client

    return client()


def lease_value(redis, bot_id: int) -> str | None:
    raw = redis.get(keys.bot_lease(bot_id))
    return raw.decode() if raw else None


def bot_status(redis, bot_id: int) -> dict | None:
    raw = redis.get(keys.bot_status(bot_id))
    return json.loads(raw) if raw else None


def control(redis, bot_id: int, message: str) -> int:
    """Tell the owner of a bot; returns how many hosts heard it."""
    return redis.publish(keys.bot_control(bot_id), message)


def want_bot(redis, bot_id: int, venue: str, symbol: str) -> None:
    pipe = redis.pipeline()
    pipe.sadd(keys.bots_wanted(), bot_id)
    pipe.sadd(keys.feeds_wanted(), f"{venue}|{symbol}")
    pipe.execute()


def stop_unowned(redis, bot, reason: str) -> int:
    """Cancel every venue order of a bot no one owns; returns how many were cancelled.

    Takes the bot's lease for the duration (so no host starts it meanwhile); if the lease is
    held by someone, nothing is done (the owner handles it) and -1 is returned.
    """
    owner = f"cleanup:{socket.gethostname()}:{os.getpid()}"
    lease = SyncLease(redis, keys.bot_lease(bot.pk), keys.bot_fence(bot.pk), owner)
    if not lease.acquire():
        return -1
    try:
        from django.conf import settings

        from workers import live_venue
        from workers.hedged_records import live_legs, paper_legs

        cancelled = 0
        # Paper legs first: their cancels are Redis writes fenced by the lease, which a slow
        # exchange (each live leg's requests below) could otherwise outlast.
        for account_id, symbol, prefix in paper_legs(bot):  # a hedged bot has two
            k_orders = keys.paper(account_id, symbol, "orders")
            for cid in redis.hkeys(k_orders):
                cid = cid.decode()
                if cid.startswith(prefix + "-"):
                    ok = redis.eval(
                        DELETE,
                        3,
                        lease.key,
                        k_orders,
                        keys.place_log(),
                        lease.value,
                        cid,
                        "cancel",
                        bot.pk,
                        lease.token,
                    )
                    cancelled += int(bool(ok))
        for setup in live_legs(bot):  # each live leg on its exchange, by its client-id family
            cancelled += live_venue.stop_unowned_live(
                bot.pk, lease, reason, settings.REDIS_URL, setup, close_rows=False
            )
        open_orders_close(bot.pk, set(), "cancelled", reason)
        return cancelled
    finally:
        lease.release()


def apply(bot_id: int, *, kill: bool = False, reload_config: bool = False, flatten: bool = False) -> str:
    """Make one bot's actual state follow its desired state; returns what was done."""
    from apps.bots.models import Bot

    bot = Bot.objects.select_related("market", "exchange_account").filter(pk=bot_id).first()
    if bot is None:
        return "no such bot"
    redis = redis_client()
    owned = lease_value(redis, bot_id) is not None
    must_run = bot.desired_state in RUN_STATES and not bot.exchange_account.kill_switch and not kill
    if must_run:
        if bot.actual_state == "error" or not owned:
            bot_state_set(bot_id, "starting", "")
        want_bot(redis, bot_id, bot.market.venue, bot.market.symbol)
        if owned:
            if reload_config:
                control(redis, bot_id, "reload")
                return "reload"
            if bot.desired_state == "paused" or bot.risk_paused_at is not None:
                control(redis, bot_id, "pause")
                return "paused"
            control(redis, bot_id, "resume")
            return bot.desired_state
        return "wanted"
    redis.srem(keys.bots_wanted(), bot_id)
    how = ("kill_flatten" if flatten else "kill") if kill or bot.exchange_account.kill_switch else "stop"
    if owned:
        bot_state_set(bot_id, "stopping", bot.state_reason)
        control(redis, bot_id, how)
        return how
    try:
        cancelled = stop_unowned(redis, bot, how)
    except Exception as exc:  # a live exchange unreachable / orders still open: the supervisor retries
        logger.warning("bot %s: stop without an owner failed: %s", bot_id, exc)
        if bot.actual_state != "error":  # once, not at every retry
            bot_state_set(bot_id, "error", f"{records.STOP_UNCONFIRMED}: {exc}"[:500])
            bot_events_record(
                [(bot_id, time.time_ns(), "lifecycle", "stop_unconfirmed", f"{how}: no owner; {exc}"[:1000], None)]
            )
        return f"{how} (unowned) failed"
    if cancelled >= 0:
        retried = bot.actual_state == "error" and (bot.state_reason or "").startswith(records.STOP_UNCONFIRMED)
        bot_state_set(bot_id, "stopped", "" if retried else bot.state_reason)
        bot_events_record(
            [(bot_id, time.time_ns(), "lifecycle", how, f"{how}: no owner; {cancelled} venue orders cancelled", None)]
        )
    else:  # a host took it meanwhile: tell it
        control(redis, bot_id, how)
    return f"{how} (unowned)"
