"""The risk sweep's pause lives in the bot's row: a host in this process (real Redis and
PostgreSQL) keeps a risk-paused bot paused when Redis loses every key of the deployment (the
lease, the wanted sets, the paper venue), including through the take-over that follows; the
trader's resume, or auto-resume once the condition cleared, makes it quote again."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from tests.conftest import _delete_prefixed
from tests.workers.helpers import make_paper_bots, wait_until

pytestmark = [pytest.mark.django_db(transaction=True)]


def _quoting_bot(redis_client, *, auto_resume: bool):
    """One paper bot with a daily loss limit of 50,000 USDT, claimed by the host and quoting. The
    limit is far above what the account's 10 BTC can lose to the sim market's moves in a test, so
    the loop's own daily-loss check (the same limit) never pauses the bot itself."""
    from apps.bots.models import Bot
    from apps.portfolio.models import PnlSnapshot
    from workers import keys, supervisor

    _user, account, (bot,) = make_paper_bots(1)
    Bot.objects.filter(pk=bot.pk).update(
        risk={"max_position_base": "5", "daily_loss_limit": "50000"}, auto_resume=auto_resume
    )
    supervisor.tick()
    k_orders = keys.paper(account.pk, "BTC/USDT", "orders")
    assert wait_until(lambda: redis_client.hlen(k_orders) >= 2, 30), "the bot never quoted"
    assert wait_until(lambda: PnlSnapshot.objects.filter(bot=bot).exists(), 15)
    return Bot.objects.get(pk=bot.pk), k_orders


def _lose_a_million_today(bot):
    """The day's opening snapshot 1,000,000 USDT above the bot's first one (the bot was up
    earlier today): its equity now is a daily loss far above the limit of 50,000."""
    from apps.portfolio.models import PnlSnapshot

    first = PnlSnapshot.objects.filter(bot=bot).order_by("ts").first()
    day_start = first.ts.replace(hour=0, minute=0, second=0, microsecond=0)
    return PnlSnapshot.objects.create(
        ts=max(day_start, first.ts - timedelta(seconds=1)), bot=bot, position=first.position, cash=first.cash,
        mid=first.mid, realized=first.realized, unrealized=first.unrealized, fees=first.fees,
        equity=first.equity + 1_000_000, peak_equity=first.equity + 1_000_000, drawdown=0,
    )  # fmt: skip


def _paused_by_the_sweep(bot, redis_client, k_orders) -> None:
    from apps.bots.models import Bot
    from workers import risk

    assert risk.sweep()["paused"] == 1
    row = Bot.objects.get(pk=bot.pk)
    assert row.risk_paused_reason.startswith("daily loss") and row.risk_paused_at is not None
    assert row.desired_state == "running"  # the trader's intent is unchanged
    assert wait_until(lambda: redis_client.hlen(k_orders) == 0, 15), "quotes left resting after the pause"
    assert wait_until(lambda: host_state(redis_client, bot.pk) == "paused", 10)


def host_state(redis_client, bot_id: int) -> str | None:
    from workers import keys, lifecycle

    status = lifecycle.bot_status(redis_client, bot_id)
    return None if status is None or not redis_client.exists(keys.bot_lease(bot_id)) else status.get("state")


def test_a_risk_pause_survives_redis_losing_its_keys_and_the_traders_resume_clears_it(host, redis_client):
    from django.conf import settings

    from apps.bots.models import Bot, BotEvent
    from apps.bots.services import bot_resume
    from apps.core.models import Incident
    from apps.orders.models import Order
    from workers import keys, lifecycle, risk, supervisor

    bot, k_orders = _quoting_bot(redis_client, auto_resume=False)
    _lose_a_million_today(bot)
    _paused_by_the_sweep(bot, redis_client, k_orders)
    starts = BotEvent.objects.filter(bot=bot, code="owner").count()
    last_order = Order.objects.filter(bot=bot).order_by("-id").values_list("id", flat=True).first() or 0

    # Redis loses every key of this deployment (this test run's prefix only: the Redis is shared):
    # the bot's lease, the wanted sets, the paper venue's orders.
    _delete_prefixed(redis_client, settings.REDIS_PREFIX)
    assert not redis_client.exists(keys.bot_lease(bot.pk))

    # For 15 s, with the supervisor's ticks (beat: every 5 s) and the host's own claims and
    # desired-state reads, nothing is quoted: the host that takes the bot over starts it paused.
    deadline = time.monotonic() + 15
    next_tick = 0.0
    while time.monotonic() < deadline:
        if time.monotonic() >= next_tick:
            supervisor.tick()
            next_tick = time.monotonic() + 5
        assert redis_client.hlen(k_orders) == 0, "the risk-paused bot quoted after Redis lost its keys"
        time.sleep(0.2)
    assert not Order.objects.filter(bot=bot, id__gt=last_order).exists()
    # It was taken over again (a new loop, started paused with the reason), not just left alone.
    assert wait_until(lambda: BotEvent.objects.filter(bot=bot, code="owner").count() > starts, 5)
    assert host_state(redis_client, bot.pk) == "paused"
    row = Bot.objects.get(pk=bot.pk)
    assert (row.actual_state, row.state_reason) == ("paused", f"risk: {row.risk_paused_reason}")
    # The sweep finds it paused already: no second incident.
    assert risk.sweep()["paused"] == 0
    assert Incident.objects.filter(bot=bot, kind="risk").count() == 1

    # The trader resumes it: the pause is cleared (an override) and the bot quotes again.
    bot_resume(bot=row, actor=row.owner)
    lifecycle.apply(bot.pk)  # what the enqueued workers.bots.apply_desired_state does
    row = Bot.objects.get(pk=bot.pk)
    assert (row.risk_paused_reason, row.risk_paused_at) == ("", None)
    assert BotEvent.objects.filter(bot=bot, code="risk_override").exists()
    assert wait_until(lambda: redis_client.hlen(k_orders) >= 2, 20), "the resumed bot did not quote"
    assert wait_until(lambda: Bot.objects.get(pk=bot.pk).actual_state == "running", 10)


def test_auto_resume_clears_the_risk_pause_once_the_condition_clears(host, redis_client):
    from apps.bots.models import Bot, BotEvent
    from workers import risk

    bot, k_orders = _quoting_bot(redis_client, auto_resume=True)
    opening = _lose_a_million_today(bot)
    _paused_by_the_sweep(bot, redis_client, k_orders)
    assert risk.sweep()["resumed"] == 0  # still losing: stays paused
    time.sleep(6)  # past one of the host's desired-state reads: it does not resume the bot either
    assert redis_client.hlen(k_orders) == 0 and host_state(redis_client, bot.pk) == "paused"

    opening.delete()  # the day's loss is back within the limit
    assert risk.sweep()["resumed"] == 1
    row = Bot.objects.get(pk=bot.pk)
    assert (row.risk_paused_reason, row.risk_paused_at) == ("", None)
    assert BotEvent.objects.filter(bot=bot, code="risk_resume").exists()
    assert wait_until(lambda: redis_client.hlen(k_orders) >= 2, 20), "the auto-resumed bot did not quote"
    assert wait_until(lambda: host_state(redis_client, bot.pk) == "running", 10)
