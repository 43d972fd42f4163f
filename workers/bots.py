"""Bot lifecycle tasks (enqueued by name by ``apps.bots.services``)."""

from __future__ import annotations

from celery import shared_task

from workers import lifecycle


@shared_task(name="workers.bots.apply_desired_state")
def apply_desired_state(bot_id: int, kill: bool = False, reload_config: bool = False, flatten: bool = False) -> str:
    """Make the bot's loop follow its desired state: claim, pause, resume, reload, stop or kill
    (cancel everything, optionally flatten with a taker order)."""
    return lifecycle.apply(int(bot_id), kill=kill, reload_config=reload_config, flatten=flatten)


@shared_task(name="workers.bots.flatten")
def flatten(bot_id: int, attempt: int = 0) -> str:
    """Close a stopped bot's position through its own loop (see :mod:`workers.flatten`)."""
    from workers import flatten as flattening

    done = flattening.step(int(bot_id), int(attempt))
    if done == "wait":
        flatten.apply_async(args=[bot_id, attempt + 1], countdown=flattening.STEP_SECONDS)
    return done


@shared_task(name="workers.bots.manual_order")
def manual_order(bot_id: int, payload: str) -> str:
    """Hand a trader's manual order to the bot's owner (its loop applies the bot's risk)."""
    from workers import lifecycle
    from workers.manual_orders import PREFIX

    redis = lifecycle.redis_client()
    if not lifecycle.lease_value(redis, int(bot_id)):
        return "the bot has no owner now: not sent"
    heard = lifecycle.control(redis, int(bot_id), PREFIX + payload)
    return "sent to owner" if heard else "no host heard it"


@shared_task(name="workers.bots.hedge_resume")
def hedge_resume(bot_id: int) -> str:
    """Tell a hedged bot's owner the trader resumes quoting after a hedge safety stop."""
    redis = lifecycle.redis_client()
    if not lifecycle.lease_value(redis, int(bot_id)):
        return "the bot has no owner now: not sent"
    heard = lifecycle.control(redis, int(bot_id), "hedge_resume")
    return "sent to owner" if heard else "no host heard it"
