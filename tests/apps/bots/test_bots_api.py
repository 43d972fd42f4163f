"""Bots through the API: validated configuration (400 naming each bad field), versioned history
with audited before/after, lifecycle actions that enqueue the worker task, kill switches, sharing."""

from __future__ import annotations

import time

import pytest

from apps.accounts.models import AuditLog
from apps.bots.models import Bot, BotConfigVersion
from apps.bots.services import bot_events_record
from tests.apps.bots.factories import FIXED_SPREAD, api, make_account, make_bot, sim_market

pytestmark = pytest.mark.django_db


def _payload(account, **overrides):
    payload = {
        "name": "quoter",
        "exchange_account": account.pk,
        "market": sim_market(account.venue).pk,
        "strategy": "fixed_spread",
        "params": dict(FIXED_SPREAD),
        "risk": {"max_position_base": "0.5", "daily_loss_limit": "100"},
    }
    payload.update(overrides)
    return payload


def test_trader_creates_a_bot_with_version_one_and_a_deterministic_client_id_prefix(trader):
    account = make_account(trader)
    response = api(trader).post("/api/v1/bots/", _payload(account), format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["client_id_prefix"] == f"mm{body['id']}x"
    assert (body["desired_state"], body["actual_state"], body["config_version"]) == ("stopped", "stopped", 1)
    assert BotConfigVersion.objects.get(bot_id=body["id"]).params == FIXED_SPREAD
    assert AuditLog.objects.filter(action="bot_created", object_id=str(body["id"])).exists()


def test_invalid_strategy_params_are_a_400_naming_each_bad_field(trader):
    params = {"order_amount": "-1", "bid_spread": "wide", "no_such_knob": 3}
    response = api(trader).post("/api/v1/bots/", _payload(make_account(trader), params=params), format="json")
    assert response.status_code == 400
    errors = response.json()["params"]
    assert set(errors) == {"order_amount", "bid_spread", "no_such_knob"}
    assert "greater than 0" in errors["order_amount"][0]
    assert Bot.objects.count() == 0


def test_an_amount_below_one_lot_is_refused_on_the_markets_lot(trader):
    params = {**FIXED_SPREAD, "order_amount": "0.00001"}  # sim lot is 0.0001
    response = api(trader).post("/api/v1/bots/", _payload(make_account(trader), params=params), format="json")
    assert response.status_code == 400 and "order_amount" in response.json()["params"]


def test_invalid_risk_limits_and_unknown_strategy_name_their_fields(trader):
    account = make_account(trader)
    bad_risk = api(trader).post(
        "/api/v1/bots/", _payload(account, risk={"max_open_orders": 0, "on_drawdown": "panic"}), format="json"
    )
    assert bad_risk.status_code == 400
    assert set(bad_risk.json()["risk"]) == {"max_open_orders", "on_drawdown"}
    bad_strategy = api(trader).post("/api/v1/bots/", _payload(account, strategy="martingale"), format="json")
    assert bad_strategy.status_code == 400 and "strategy" in bad_strategy.json()


def test_market_must_be_on_the_accounts_venue_and_account_must_be_yours(trader, other_trader):
    account = make_account(trader)
    wrong_venue = _payload(account, market=sim_market("sim:beta").pk)
    response = api(trader).post("/api/v1/bots/", wrong_venue, format="json")
    assert response.status_code == 400 and "market" in response.json()
    foreign = make_account(other_trader, label="bob's")
    response = api(trader).post("/api/v1/bots/", _payload(foreign), format="json")
    assert response.status_code == 400 and "exchange_account" in response.json()


def test_config_change_adds_a_version_and_audits_before_and_after(trader, sent_tasks):
    bot = make_bot(trader)
    client = api(trader)
    new_params = {**FIXED_SPREAD, "bid_spread": "0.002"}
    response = client.patch(f"/api/v1/bots/{bot.pk}/", {"params": new_params}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["config_version"] == 2
    history = client.get(f"/api/v1/bots/{bot.pk}/config-history/").json()
    assert [v["version"] for v in history] == [2, 1] and history[0]["author"] == "alice"
    entry = AuditLog.objects.get(action="config_changed", object_id=str(bot.pk))
    assert entry.before["params"]["bid_spread"] == "0.001" and entry.after["params"]["bid_spread"] == "0.002"
    # An invalid change leaves the bot as it was.
    bad = client.patch(f"/api/v1/bots/{bot.pk}/", {"params": {"order_amount": "0"}}, format="json")
    assert bad.status_code == 400 and "order_amount" in bad.json()["params"]
    assert Bot.objects.get(pk=bot.pk).config_version == 2


def test_lifecycle_actions_set_desired_state_audit_and_enqueue_by_name(
    trader, sent_tasks, django_capture_on_commit_callbacks
):
    bot = make_bot(trader)
    client = api(trader)
    steps = [("start", "running"), ("pause", "paused"), ("resume", "running"), ("stop", "stopped")]
    for verb, desired in steps:
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(f"/api/v1/bots/{bot.pk}/{verb}/")
        assert response.status_code == 200, (verb, response.content)
        assert response.json()["desired_state"] == desired
    with django_capture_on_commit_callbacks(execute=True):
        killed = client.post(f"/api/v1/bots/{bot.pk}/kill/", {"reason": "fat finger"}, format="json")
    assert killed.json()["desired_state"] == "stopped" and "fat finger" in killed.json()["state_reason"]
    assert [name for name, _, _ in sent_tasks] == ["workers.bots.apply_desired_state"] * 5
    assert all(args == [bot.pk] for _, args, _ in sent_tasks)
    assert sent_tasks[-1][2] == {"kill": True}
    actions = list(AuditLog.objects.filter(object_id=str(bot.pk)).order_by("id").values_list("action", flat=True))
    assert actions[-5:] == ["bot_started", "bot_paused", "bot_resumed", "bot_stopped", "bot_killed"]


def test_pausing_a_stopped_bot_is_a_400_naming_the_state(trader, sent_tasks):
    bot = make_bot(trader)
    response = api(trader).post(f"/api/v1/bots/{bot.pk}/pause/")
    assert response.status_code == 400 and "desired_state" in response.json()
    assert sent_tasks == []


def test_account_kill_switch_kills_its_bots_and_blocks_starts(trader, sent_tasks):
    bot = make_bot(trader)
    client = api(trader)
    client.post(f"/api/v1/bots/{bot.pk}/start/")
    response = client.post(
        f"/api/v1/accounts/{bot.exchange_account_id}/kill/", {"reason": "venue outage"}, format="json"
    )
    assert response.status_code == 200 and response.json() == {"bots_killed": 1}
    assert Bot.objects.get(pk=bot.pk).desired_state == "stopped"
    refused = client.post(f"/api/v1/bots/{bot.pk}/start/")
    assert refused.status_code == 400 and "exchange_account" in refused.json()
    client.post(f"/api/v1/accounts/{bot.exchange_account_id}/kill/", {"on": False}, format="json")
    assert client.post(f"/api/v1/bots/{bot.pk}/start/").status_code == 200


def test_kill_all_is_for_operators_only(trader, operator, other_trader, sent_tasks):
    bots = [make_bot(trader), make_bot(other_trader, name="b2")]
    for bot in bots:
        api(bot.owner).post(f"/api/v1/bots/{bot.pk}/start/")
    assert api(trader).post("/api/v1/kill-all/").status_code == 403
    response = api(operator).post("/api/v1/kill-all/", {"reason": "drill"}, format="json")
    assert response.status_code == 200 and response.json() == {"bots_killed": 2}
    assert set(Bot.objects.values_list("desired_state", flat=True)) == {"stopped"}


def test_shared_bot_is_readable_but_not_writable_by_the_viewer(trader, viewer, sent_tasks):
    bot = make_bot(trader)
    assert api(viewer).get(f"/api/v1/bots/{bot.pk}/").status_code == 404
    shared = api(trader).post(f"/api/v1/bots/{bot.pk}/share/", {"usernames": ["victor"]}, format="json")
    assert shared.status_code == 200 and shared.json()["shared_with"] == ["victor"]
    assert api(viewer).get(f"/api/v1/bots/{bot.pk}/").status_code == 200
    assert api(viewer).post(f"/api/v1/bots/{bot.pk}/start/").status_code == 403
    assert api(viewer).patch(f"/api/v1/bots/{bot.pk}/", {"name": "mine"}, format="json").status_code == 403
    unknown = api(trader).post(f"/api/v1/bots/{bot.pk}/share/", {"usernames": ["nobody"]}, format="json")
    assert unknown.status_code == 400 and "usernames" in unknown.json()


def test_events_endpoint_lists_recorded_events_newest_first(trader):
    bot = make_bot(trader)
    now = time.time_ns()
    bot_events_record([(bot.pk, now, "state", "running", "quoting", None)])
    bot_events_record([(bot.pk, now + 1000, "risk", "daily_loss", "paused: daily loss", {"limit": "100"})])
    body = api(trader).get(f"/api/v1/bots/{bot.pk}/events/").json()
    assert [e["code"] for e in body["results"]] == ["daily_loss", "running"]
    only_risk = api(trader).get(f"/api/v1/bots/{bot.pk}/events/", {"kind": "risk"}).json()
    assert only_risk["count"] == 1


def test_a_running_bot_cannot_be_deleted_a_stopped_one_can(trader, sent_tasks):
    bot = make_bot(trader)
    client = api(trader)
    client.post(f"/api/v1/bots/{bot.pk}/start/")
    refused = client.delete(f"/api/v1/bots/{bot.pk}/")
    assert refused.status_code == 409 and "desired_state" in refused.json()
    client.post(f"/api/v1/bots/{bot.pk}/stop/")
    assert client.delete(f"/api/v1/bots/{bot.pk}/").status_code == 204


@pytest.mark.parametrize(
    ("change", "section"),
    [
        ({"params": {**FIXED_SPREAD, "order_amount": "1e999999"}}, "params"),
        ({"params": {**FIXED_SPREAD, "price_ceiling": "1e999999"}}, "params"),
        ({"risk": {"max_position_base": "1e999999"}}, "risk"),
        ({"risk": {"daily_loss_limit": "1e999999"}}, "risk"),
    ],
)
def test_absurd_magnitudes_are_a_400_not_a_crash_at_start(trader, sent_tasks, change, section):
    bot = make_bot(trader)
    response = api(trader).patch(f"/api/v1/bots/{bot.pk}/", change, format="json")
    assert response.status_code == 400, response.content
    assert section in response.json()
    assert Bot.objects.get(pk=bot.pk).config_version == 1


def test_bot_serializer_fast_path_equals_drf_field_by_field(trader):
    """``BotSerializer`` rows come from the read plan (apps/core/serializers.py); they must be
    exactly what DRF's generic path gives, for every field, for list rows (annotated, only some
    columns loaded) and for a bot loaded plainly (detail, create responses)."""
    from apps.accounts.models import Role
    from apps.bots.api import BotSerializer, BotViewSet
    from apps.bots.services import bot_share
    from apps.core.serializers import _read_plan
    from tests.apps.bots.factories import make_user

    account = make_account(trader)
    plain = make_bot(trader, account=account, name="plain")
    shared = make_bot(trader, account=account, name="shared", params={**FIXED_SPREAD, "order_levels": 3})
    bot_share(bot=shared, actor=trader, users=[make_user("zoe", Role.VIEWER), make_user("ann", Role.VIEWER)])
    Bot.objects.filter(pk=plain.pk).update(state_reason="paused: daily loss", auto_resume=True)

    class Request:
        user = trader

    assert _read_plan(BotSerializer), "the bot serializer fell back to DRF's path"
    view = BotViewSet(request=Request(), action="list", format_kwarg=None)
    listed = list(view.get_queryset())
    assert [b.name for b in listed] == ["plain", "shared"]
    for bot in [*listed, Bot.objects.get(pk=plain.pk), Bot.objects.get(pk=shared.pk)]:
        serializer = BotSerializer()
        fast, generic = serializer.to_representation(bot), serializer.generic_representation(bot)
        assert fast == generic
        assert list(fast) == list(generic) == BotSerializer.Meta.fields  # same keys, same order
    assert BotSerializer().to_representation(listed[1])["shared_with"] == ["ann", "zoe"]
    assert BotSerializer().to_representation(listed[0])["created"].endswith("Z")
