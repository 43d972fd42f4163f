"""Flatten a stopped bot: its position can only be closed by its own loop (which prices the
reduce-only IOC order against its book and passes it through the bot's pre-trade risk), so the
bot is brought up paused (no quotes), then told ``kill_flatten`` once its loop owns it and has
rebuilt the position from the fills. Each step is a short task that schedules the next one, so
no worker waits. A bot a user starts meanwhile is left alone."""

from __future__ import annotations

import time

from apps.bots.services import bot_events_record, bot_state_set
from workers import keys
from workers.lifecycle import control, lease_value, redis_client, want_bot

STEP_SECONDS = 1.0
MAX_STEPS = 90


def step(bot_id: int, attempt: int = 0) -> str:
    """One step; returns what was done, ``"wait"`` when the next step is due."""
    from apps.bots.models import Bot

    bot = Bot.objects.select_related("market", "exchange_account").filter(pk=bot_id).first()
    if bot is None:
        return "no such bot"
    if bot.desired_state == "running":
        return "started by a user meanwhile: not flattened"
    redis = redis_client()
    if attempt == 0:
        Bot.objects.filter(pk=bot_id).update(desired_state="paused", state_reason="flatten: starting paused")
        bot_state_set(bot_id, "starting", "flatten: starting paused")
        want_bot(redis, bot_id, bot.market.venue, bot.market.symbol)
        bot_events_record(
            [
                (
                    bot_id,
                    time.time_ns(),
                    "lifecycle",
                    "flatten",
                    "flatten: starting the loop paused to close the position",
                    None,
                )
            ]
        )
        return "wait"
    if lease_value(redis, bot_id) is not None and bot.actual_state == "paused":
        Bot.objects.filter(pk=bot_id).update(desired_state="stopped", state_reason=f"flattened ({bot.state_reason})")
        redis.srem(keys.bots_wanted(), bot_id)
        control(redis, bot_id, "kill_flatten")
        return "kill_flatten"
    if attempt >= MAX_STEPS:
        Bot.objects.filter(pk=bot_id).update(desired_state="stopped")
        redis.srem(keys.bots_wanted(), bot_id)
        control(redis, bot_id, "kill")
        bot_events_record(
            [(bot_id, time.time_ns(), "lifecycle", "flatten_failed",
              f"flatten: the loop did not start within {MAX_STEPS * STEP_SECONDS:.0f} s; position kept", None)]
        )  # fmt: skip
        return "gave up"
    return "wait"
