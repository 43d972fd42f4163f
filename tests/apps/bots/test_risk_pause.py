"""The risk sweep's pause as part of the bot's row: written with its event (apps.bots.risk_pause),
shown read-only in the API, overridden by the trader's resume/start (also from desired running),
kept by a pause, cleared by stop, kill and flatten."""

from __future__ import annotations

import time

import pytest

from apps.accounts.models import AuditLog
from apps.bots.models import RISK_PAUSE_REASON_MAX, Bot, BotEvent
from apps.bots.risk_pause import bot_risk_pause, bot_risk_resume
from apps.bots.services import bot_pause, bot_start, bot_stop
from tests.apps.bots.factories import api, make_bot

pytestmark = pytest.mark.django_db


def _risk_paused_bot(trader, reason: str = "daily loss 150.00 above the limit 100") -> Bot:
    bot = make_bot(trader)
    bot_start(bot=bot, actor=trader)
    assert bot_risk_pause(bot.pk, reason, time.time_ns())
    return Bot.objects.get(pk=bot.pk)


def test_a_risk_pause_is_recorded_once_on_the_row_with_its_event_and_bounded(trader):
    bot = _risk_paused_bot(trader, "daily loss " + "9" * 2000)
    assert bot.risk_paused_at is not None and len(bot.risk_paused_reason) == RISK_PAUSE_REASON_MAX
    assert (bot.desired_state, bot.actual_state) == ("running", "paused")
    assert bot.state_reason.startswith("risk: daily loss 999")
    assert BotEvent.objects.filter(bot=bot, code="risk_pause").count() == 1
    assert not bot_risk_pause(bot.pk, "again", time.time_ns())  # already paused: nothing written
    assert BotEvent.objects.filter(bot=bot, code="risk_pause").count() == 1
    stopped = make_bot(trader, name="stopped")  # a stopped bot is not paused by the sweep
    assert not bot_risk_pause(stopped.pk, "daily loss", time.time_ns())
    assert Bot.objects.get(pk=stopped.pk).risk_paused_at is None


def test_auto_resume_clears_only_a_bot_whose_desired_state_is_running(trader):
    bot = _risk_paused_bot(trader)
    bot_pause(bot=bot, actor=trader)  # the trader paused it meanwhile
    assert not bot_risk_resume(bot.pk, time.time_ns(), auto=True)
    assert Bot.objects.get(pk=bot.pk).risk_paused_at is not None
    assert bot_risk_resume(bot.pk, time.time_ns(), auto=False)  # the sweep, once the condition cleared
    bot = Bot.objects.get(pk=bot.pk)
    assert (bot.risk_paused_at, bot.risk_paused_reason, bot.desired_state) == (None, "", "paused")
    assert not BotEvent.objects.filter(bot=bot, code="risk_resume").exists()


def test_the_api_shows_the_risk_pause_read_only(trader):
    bot = _risk_paused_bot(trader)
    client = api(trader)
    body = client.get(f"/api/v1/bots/{bot.pk}/").json()
    assert body["risk_paused_reason"] == "daily loss 150.00 above the limit 100"
    assert body["risk_paused_at"].endswith("Z")
    listed = {row["id"]: row for row in client.get("/api/v1/bots/").json()["results"]}
    assert listed[bot.pk]["risk_paused_reason"] == body["risk_paused_reason"]
    assert listed[bot.pk]["risk_paused_at"] == body["risk_paused_at"]
    response = client.patch(
        f"/api/v1/bots/{bot.pk}/", {"risk_paused_reason": "", "risk_paused_at": None}, format="json"
    )
    assert response.status_code == 200, response.content
    assert Bot.objects.get(pk=bot.pk).risk_paused_at is not None  # not writable through the API
    schema = client.get("/api/v1/schema/?format=json")
    assert schema.status_code == 200
    props = schema.json()["components"]["schemas"]["Bot"]["properties"]
    assert props["risk_paused_reason"]["readOnly"] and props["risk_paused_at"]["readOnly"]
    assert "risk sweep" in props["risk_paused_reason"]["description"]


def test_the_traders_resume_of_a_risk_paused_running_bot_is_an_override(
    trader, sent_tasks, django_capture_on_commit_callbacks
):
    bot = _risk_paused_bot(trader)
    with django_capture_on_commit_callbacks(execute=True):
        response = api(trader).post(f"/api/v1/bots/{bot.pk}/resume/")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["desired_state"], body["risk_paused_reason"], body["risk_paused_at"]) == ("running", "", None)
    assert sent_tasks == [("workers.bots.apply_desired_state", [bot.pk], {})]
    override = BotEvent.objects.get(bot=bot, code="risk_override")
    assert override.message == f"risk pause cleared: resumed by {trader.username}"
    audit = AuditLog.objects.filter(action="bot_resumed", object_id=str(bot.pk)).latest("id")
    assert audit.before["risk_paused_reason"] == "daily loss 150.00 above the limit 100"
    # Without a risk pause, resuming a running bot changes nothing, as before.
    with django_capture_on_commit_callbacks(execute=True):
        again = api(trader).post(f"/api/v1/bots/{bot.pk}/resume/")
    assert again.status_code == 200 and len(sent_tasks) == 1
    assert BotEvent.objects.filter(bot=bot, code="risk_override").count() == 1


def test_start_overrides_a_pause_keeps_and_stop_clears_the_risk_pause(trader):
    bot = _risk_paused_bot(trader)
    bot_start(bot=bot, actor=trader)  # desired already running: an override all the same
    assert Bot.objects.get(pk=bot.pk).risk_paused_at is None
    assert BotEvent.objects.filter(bot=bot, code="risk_override").count() == 1
    assert bot_risk_pause(bot.pk, "drawdown", time.time_ns())
    bot_pause(bot=bot, actor=trader)
    bot = Bot.objects.get(pk=bot.pk)
    assert (bot.desired_state, bot.risk_paused_reason) == ("paused", "drawdown")  # a pause keeps it
    bot_stop(bot=bot, actor=trader)
    bot = Bot.objects.get(pk=bot.pk)
    assert (bot.desired_state, bot.risk_paused_at, bot.risk_paused_reason) == ("stopped", None, "")
    assert BotEvent.objects.filter(bot=bot, code="risk_override").count() == 1


def test_flatten_of_a_risk_paused_bot_clears_the_pause(trader):
    from apps.bots.controls import bot_flatten
    from apps.orders.models import Fill

    bot = _risk_paused_bot(trader)
    Fill.objects.create(
        ts=bot.risk_paused_at, account_id=bot.exchange_account_id, bot=bot, client_order_id="x-1",
        venue_trade_id="t-1", side="buy", price="60000", quantity="0.01", fee="0", fee_currency="USDT",
        liquidity="maker",
    )  # fmt: skip
    bot_flatten(bot=bot, actor=trader)
    bot = Bot.objects.get(pk=bot.pk)
    assert (bot.desired_state, bot.risk_paused_at) == ("stopped", None)


def test_the_bot_page_shows_the_risk_pause_and_offers_resume(trader, sent_tasks, django_capture_on_commit_callbacks):
    from django.urls import reverse

    from tests.apps.dashboard.conftest import client_for

    bot = _risk_paused_bot(trader)
    client = client_for(trader)
    body = client.get(reverse("bot-detail", args=[bot.pk])).content.decode()
    assert 'id="risk-pause"' in body and "daily loss 150.00 above the limit 100" in body
    assert "stays paused until you resume it" in body
    assert 'data-action="resume"' in body and 'data-action="pause"' in body
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(reverse("bot-action", args=[bot.pk, "resume"])).status_code == 302
    assert Bot.objects.get(pk=bot.pk).risk_paused_at is None
    body = client.get(reverse("bot-detail", args=[bot.pk])).content.decode()
    assert 'id="risk-pause"' not in body and 'data-action="resume"' not in body


def test_the_migration_copies_the_pauses_redis_held_before_the_upgrade(trader, clean_redis):
    """Migration 0005's data step: a pause stored the old way (``<prefix>:bot:<id>:riskpause``)
    becomes the row's, so the upgraded hosts' take-over does not set the bot quoting."""
    import importlib

    from django.apps import apps
    from django.conf import settings

    migration = importlib.import_module("apps.bots.migrations.0005_bot_risk_pause")
    paused, other = make_bot(trader, name="paused"), make_bot(trader, name="other")
    clean_redis.set(f"{settings.REDIS_PREFIX}:bot:{paused.pk}:riskpause", "daily loss 150.00 above the limit 100")
    migration.copy_redis_pauses(apps, None)
    paused, other = Bot.objects.get(pk=paused.pk), Bot.objects.get(pk=other.pk)
    assert paused.risk_paused_reason == "daily loss 150.00 above the limit 100" and paused.risk_paused_at
    assert (other.risk_paused_reason, other.risk_paused_at) == ("", None)


def test_a_venue_imposed_pause_replaces_the_sweeps_without_an_event(trader):
    """A paper perpetual's liquidation (``workers.paper_perp`` through its loop's ``liquidated``
    control) holds the bot paused in its row, whatever pause was there; its own incident and
    notification are written by the liquidation."""
    from apps.bots.risk_pause import bot_risk_hold

    bot = _risk_paused_bot(trader)
    bot_risk_hold(bot.pk, "liquidated: mark 1 reached the liquidation price 2", time.time_ns())
    bot = Bot.objects.get(pk=bot.pk)
    assert bot.risk_paused_reason.startswith("liquidated") and bot.risk_paused_at is not None
    assert (bot.actual_state, bot.state_reason) == ("paused", f"risk: {bot.risk_paused_reason}")
    assert BotEvent.objects.filter(bot=bot, kind="risk").count() == 1  # the sweep's pause only


def test_auto_resume_clears_the_sweeps_pause_but_not_a_liquidations(trader, clean_redis):
    """``risk_paused_by`` says what paused the bot. The sweep's auto-resume (a bot with
    ``auto_resume``, no breach left) clears its own pause; a liquidation's stays, shown on the
    page and in the API as such, until the trader resumes the bot."""
    from django.urls import reverse

    from apps.bots.risk_pause import bot_risk_hold
    from tests.apps.dashboard.conftest import client_for
    from workers import risk

    swept = _risk_paused_bot(trader)
    liquidated = make_bot(trader, name="liquidated")
    bot_start(bot=liquidated, actor=trader)
    Bot.objects.filter(pk__in=[swept.pk, liquidated.pk]).update(auto_resume=True)
    reason = "liquidated: mark 52849.8 reached the liquidation price 58721.96056225"
    bot_risk_hold(liquidated.pk, reason, time.time_ns())
    assert Bot.objects.get(pk=swept.pk).risk_paused_by == "risk_sweep"
    assert Bot.objects.get(pk=liquidated.pk).risk_paused_by == "liquidation"
    assert risk.sweep()["resumed"] == 1  # no PnL, no breach: the sweep's pause only
    swept, liquidated = Bot.objects.get(pk=swept.pk), Bot.objects.get(pk=liquidated.pk)
    assert (swept.risk_paused_at, swept.risk_paused_by, swept.actual_state) == (None, "", "running")
    assert liquidated.risk_paused_at is not None and liquidated.risk_paused_reason == reason
    assert (liquidated.risk_paused_by, liquidated.actual_state) == ("liquidation", "paused")
    assert not bot_risk_resume(liquidated.pk, time.time_ns(), auto=False)  # nor once the trader paused it
    assert api(trader).get(f"/api/v1/bots/{liquidated.pk}/").json()["risk_paused_by"] == "liquidation"
    client = client_for(trader)
    body = client.get(reverse("bot-detail", args=[liquidated.pk])).content.decode()
    assert 'data-paused-by="liquidation"' in body and "Paused by a liquidation since" in body
    assert "stays paused until you resume it" in body  # although the bot has auto_resume
    bot_start(bot=liquidated, actor=trader)  # the trader's resume clears any pause
    liquidated = Bot.objects.get(pk=liquidated.pk)
    assert (liquidated.risk_paused_at, liquidated.risk_paused_reason, liquidated.risk_paused_by) == (None, "", "")


def test_the_migration_names_what_holds_the_existing_pauses(trader):
    import importlib

    from django.apps import apps

    migration = importlib.import_module("apps.bots.migrations.0006_bot_risk_paused_by")
    swept, liquidated, free = (make_bot(trader, name=n) for n in ("swept", "liquidated", "free"))
    Bot.objects.filter(pk=swept.pk).update(risk_paused_reason="drawdown 5", risk_paused_at="2026-12-01T00:00Z")
    Bot.objects.filter(pk=liquidated.pk).update(
        risk_paused_reason="liquidated: mark 1 reached 2", risk_paused_at="2026-12-01T00:00Z"
    )
    migration.name_existing_pauses(apps, None)
    by = dict(Bot.objects.values_list("pk", "risk_paused_by"))
    assert (by[swept.pk], by[liquidated.pk], by[free.pk]) == ("risk_sweep", "liquidation", "")
