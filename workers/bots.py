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
