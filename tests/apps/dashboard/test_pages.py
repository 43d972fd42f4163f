"""Every page: 200 for its owner, 404 for another trader, read-only for viewers, field errors on forms."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from apps.bots.models import Bot, DesiredState
from apps.portfolio.models import PnlSnapshot
from tests.apps.bots.factories import make_account, make_bot, sim_market
from tests.apps.dashboard.conftest import client_for

pytestmark = pytest.mark.django_db


def test_anonymous_visitors_are_sent_to_sign_in():
    from django.test import Client

    for name in ("overview", "markets", "arbitrage", "backtests", "settings", "operators", "bot-create"):
        response = Client().get(reverse(name))
        assert response.status_code == 302 and "/accounts/login/" in response["Location"], name


def test_overview_lists_my_bots_with_state_and_actions(trader, bot, other_trader):
    make_bot(other_trader, name="bobs-secret-bot")
    body = client_for(trader).get(reverse("overview")).content.decode()
    assert "alice-mm" in body
    assert "bobs-secret-bot" not in body
    assert reverse("bot-action", args=[bot.pk, "start"]) in body
    assert "Kill acct-alice-mm" in body  # the account kill switch


def test_overview_keeps_the_account_equity_sparkline_apart_from_the_bots_pnl(trader, bot):
    now = timezone.now()
    for i, equity in enumerate(["100", "101.5", "103"]):
        PnlSnapshot.objects.create(
            bot=bot,
            ts=now - timedelta(minutes=3 - i),
            position=Decimal("0.01"),
            cash=0,
            mid=Decimal("100"),
            realized=0,
            unrealized=0,
            fees=0,
            equity=Decimal(equity),
            peak_equity=Decimal(equity),
            drawdown=0,
        )
    body = client_for(trader).get(reverse("overview")).content.decode()
    # The account's equity moved (+3) but the bot has no fills: its own PnL is 0, the equity
    # change is only the sparkline labelled as the account's.
    row = body[body.index(f'<tr data-bot="{bot.pk}">') :]
    assert '<td class="r pnl-today"><span class="total"><span class="muted">0</span>' in row
    assert "Account equity today" in body
    assert f'id="chart-spark-{bot.pk}"' in body


def test_bot_page_renders_for_owner_with_charts_config_and_history(trader, bot):
    response = client_for(trader).get(reverse("bot-detail", args=[bot.pk]))
    assert response.status_code == 200
    body = response.content.decode()
    for needle in (
        'id="ladder"',
        'data-fig="fig-depth"',
        'data-fig="fig-pnl"',
        'data-fig="fig-inventory"',
        'data-fig="fig-drawdown"',
        'name="params.bid_spread"',
        'name="risk.max_position_base"',
        "Configuration history",
        f"/ws/bot/{bot.pk}/",
        "/ws/book/sim:alpha/BTC/USDT/",
    ):
        assert needle in body, needle
    assert "Position" in body and "Open orders" in body  # risk limits with usage


def test_another_traders_bot_is_not_found_on_every_bot_url(other_trader, bot):
    client = client_for(other_trader)
    assert client.get(reverse("bot-detail", args=[bot.pk])).status_code == 404
    assert client.post(reverse("bot-action", args=[bot.pk, "start"])).status_code == 404
    assert client.post(reverse("bot-config", args=[bot.pk]), {"name": "x"}).status_code == 404
    assert Bot.objects.get(pk=bot.pk).desired_state == DesiredState.STOPPED


def test_viewer_of_a_shared_bot_reads_but_cannot_act(viewer, shared_bot):
    client = client_for(viewer)
    body = client.get(reverse("bot-detail", args=[shared_bot.pk])).content.decode()
    assert "read-only" in body
    assert reverse("bot-action", args=[shared_bot.pk, "start"]) not in body
    assert client.post(reverse("bot-action", args=[shared_bot.pk, "start"])).status_code == 403
    assert client.post(reverse("bot-config", args=[shared_bot.pk]), {"name": "x"}).status_code == 403
    assert Bot.objects.get(pk=shared_bot.pk).desired_state == DesiredState.STOPPED


def test_start_pause_stop_buttons_change_the_desired_state(trader, bot, django_capture_on_commit_callbacks):
    client = client_for(trader)
    with django_capture_on_commit_callbacks(execute=False):
        assert client.post(reverse("bot-action", args=[bot.pk, "start"])).status_code == 302
    assert Bot.objects.get(pk=bot.pk).desired_state == DesiredState.RUNNING
    with django_capture_on_commit_callbacks(execute=False):
        client.post(reverse("bot-action", args=[bot.pk, "pause"]))
    assert Bot.objects.get(pk=bot.pk).desired_state == DesiredState.PAUSED
    with django_capture_on_commit_callbacks(execute=False):
        client.post(reverse("bot-action", args=[bot.pk, "stop"]))
    assert Bot.objects.get(pk=bot.pk).desired_state == DesiredState.STOPPED


def test_an_action_not_allowed_from_the_state_is_reported_not_crashed(trader, bot):
    response = client_for(trader).post(reverse("bot-action", args=[bot.pk, "pause"]), follow=True)
    assert "cannot pause a bot whose desired state is stopped" in response.content.decode()


def test_actions_are_post_only(trader, bot):
    assert client_for(trader).get(reverse("bot-action", args=[bot.pk, "start"])).status_code == 405


def test_config_form_shows_the_strategy_error_next_to_the_field(trader, bot):
    response = client_for(trader).post(
        reverse("bot-config", args=[bot.pk]),
        {
            "name": bot.name,
            "strategy": "fixed_spread",
            "params.order_amount": "0.001",
            "params.bid_spread": "-1",
            "params.ask_spread": "0.001",
            "risk.max_open_orders": "0",
        },
    )
    assert response.status_code == 400
    body = response.content.decode()
    assert 'data-field="params.bid_spread"' in body
    assert 'data-field="risk.max_open_orders"' in body
    assert Bot.objects.get(pk=bot.pk).config_version == 1


def test_config_form_saves_a_new_version(trader, bot):
    response = client_for(trader).post(
        reverse("bot-config", args=[bot.pk]),
        {
            "name": bot.name,
            "strategy": "fixed_spread",
            "params.order_amount": "0.002",
            "params.bid_spread": "0.002",
            "params.ask_spread": "0.002",
            "params.order_levels": "3",
            "risk.max_position_base": "2",
        },
    )
    assert response.status_code == 302
    bot.refresh_from_db()
    assert bot.config_version == 2
    assert bot.params["order_levels"] == 3 and bot.params["bid_spread"] == "0.002"
    assert bot.risk["max_position_base"] == "2"


def test_create_a_paper_bot_on_the_replay_venue(trader):
    account = make_account(trader, label="replay paper", venue="replay:binance-spot")
    market = sim_market("replay:binance-spot")
    client = client_for(trader)
    form = client.get(reverse("bot-create")).content.decode()
    assert "replay paper" in form and 'name="params.order_amount"' in form
    response = client.post(
        reverse("bot-create"),
        {
            "name": "my replay bot",
            "exchange_account": account.pk,
            "market": market.pk,
            "strategy": "fixed_spread",
            "params.order_amount": "0.001",
            "params.bid_spread": "0.0002",
            "params.ask_spread": "0.0002",
        },
    )
    bot = Bot.objects.get(owner=trader, name="my replay bot")
    assert response.status_code == 302 and response["Location"] == reverse("bot-detail", args=[bot.pk])
    assert bot.market == market and bot.desired_state == DesiredState.STOPPED


def test_create_form_shows_missing_and_bad_fields(trader):
    account = make_account(trader, label="replay paper", venue="replay:binance-spot")
    market = sim_market("replay:binance-spot")
    response = client_for(trader).post(
        reverse("bot-create"),
        {
            "name": "",
            "exchange_account": account.pk,
            "market": market.pk,
            "strategy": "fixed_spread",
            "params.bid_spread": "0.0002",
        },
    )
    assert response.status_code == 400
    assert 'data-field="name"' in response.content.decode()
    response = client_for(trader).post(
        reverse("bot-create"),
        {
            "name": "ok",
            "exchange_account": account.pk,
            "market": market.pk,
            "strategy": "fixed_spread",
            "params.bid_spread": "0.0002",
        },
    )
    assert response.status_code == 400
    assert 'data-field="params.order_amount"' in response.content.decode()
    assert not Bot.objects.filter(owner=trader).exists()


def test_create_bot_uses_my_risk_defaults(trader):
    client = client_for(trader)
    assert client.post(reverse("risk-defaults"), {"risk.max_position_base": "0.25"}).status_code == 302
    body = client.get(reverse("bot-create")).content.decode()
    assert 'name="risk.max_position_base" value="0.25"' in body


def test_risk_defaults_reject_bad_limits_with_the_field(trader):
    response = client_for(trader).post(reverse("risk-defaults"), {"risk.price_band": "5"})
    assert response.status_code == 400
    assert 'data-field="risk.price_band"' in response.content.decode()


def test_viewers_cannot_open_create_bot(viewer):
    response = client_for(viewer).get(reverse("bot-create"))
    assert response.status_code == 302


def test_market_pages_render(trader):
    market = sim_market()
    client = client_for(trader)
    assert "BTC/USDT" in client.get(reverse("markets")).content.decode()
    body = client.get(reverse("market-detail", args=[market.pk])).content.decode()
    assert 'data-fig="fig-candles"' in body and 'data-fig="fig-heatmap"' in body and 'data-fig="fig-depth"' in body
    assert client.get(reverse("market-detail", args=[999999])).status_code == 404


def test_arbitrage_page_lists_opportunities(trader):
    from apps.arbitrage.services import DetectedOpportunity, opportunity_record_batch

    opportunity_record_batch(
        detected=[
            DetectedOpportunity(
                ts=timezone.now(),
                symbol="BTC/USDT",
                buy_venue="sim:alpha",
                sell_venue="sim:beta",
                buy_price=Decimal("100"),
                sell_price=Decimal("100.5"),
                size=Decimal("0.1"),
            )
        ]
    )
    body = client_for(trader).get(reverse("arbitrage")).content.decode()
    assert "sim:alpha @ 100" in body and "sim:beta @ 100.5" in body


def test_settings_add_paper_account_and_secrets_are_never_shown(trader):
    client = client_for(trader)
    response = client.post(reverse("account-add"), {"label": "", "kind": "paper", "venue": "sim:alpha"})
    assert response.status_code == 400 and 'data-field="label"' in response.content.decode()
    response = client.post(
        reverse("account-add"),
        {"label": "live one", "kind": "live", "venue": "binance", "api_key": "KEY-123-abc", "api_secret": "SECRET-xyz"},
    )
    assert response.status_code == 302
    body = client.get(reverse("settings")).content.decode()
    assert "live one" in body
    assert "SECRET-xyz" not in body and "KEY-123-abc" not in body
    assert "Rotate keys" in body


def test_settings_verify_a_paper_account(trader):
    account = make_account(trader)
    response = client_for(trader).post(reverse("account-verify", args=[account.pk]), follow=True)
    assert "paper account on sim:alpha" in response.content.decode()


def test_settings_rotate_keys_of_another_users_account_is_404(trader, other_trader):
    account = make_account(other_trader)
    response = client_for(trader).post(
        reverse("account-rotate", args=[account.pk]), {"api_key": "a", "api_secret": "b"}
    )
    assert response.status_code == 404


def test_settings_channel_with_bad_url_shows_error_then_test_message_is_queued(
    trader, django_capture_on_commit_callbacks
):
    client = client_for(trader)
    response = client.post(reverse("channel-add"), {"kind": "webhook", "name": "hook", "target": "not a url"})
    assert response.status_code == 400 and "is not accepted" in response.content.decode()
    assert (
        client.post(
            reverse("channel-add"),
            {"kind": "webhook", "name": "hook", "target": "https://example.com/h", "secret": "s3cr3t"},
        ).status_code
        == 302
    )
    from apps.notifications.models import Delivery, NotificationChannel

    channel = NotificationChannel.objects.get(owner=trader)
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(reverse("channel-test", args=[channel.pk]), follow=True)
    assert "Test message queued" in response.content.decode()
    assert Delivery.objects.filter(channel=channel, event_kind="test").count() == 1


def test_operators_page_is_for_operators_only(trader, operator, bot):
    assert client_for(trader).get(reverse("operators")).status_code == 403
    body = client_for(operator).get(reverse("operators")).content.decode()
    assert "alice-mm" in body and "System health" in body and "Global kill switch" in body


def test_global_kill_switch_needs_confirmation_and_kills_running_bots(
    operator, trader, bot, django_capture_on_commit_callbacks
):
    from apps.bots.services import bot_start

    with django_capture_on_commit_callbacks(execute=False):
        bot_start(bot=bot, actor=trader)
    client = client_for(operator)
    client.post(reverse("global-kill"), {"confirm": "nope"})
    assert Bot.objects.get(pk=bot.pk).desired_state == DesiredState.RUNNING
    with django_capture_on_commit_callbacks(execute=False):
        client.post(reverse("global-kill"), {"confirm": "KILL", "reason": "test"})
    assert Bot.objects.get(pk=bot.pk).desired_state == DesiredState.STOPPED
    assert client_for(trader).post(reverse("global-kill"), {"confirm": "KILL"}).status_code == 403


def test_backtest_form_errors_and_queue(trader, django_capture_on_commit_callbacks):
    client = client_for(trader)
    response = client.post(
        reverse("backtests"),
        {
            "name": "bt",
            "strategy": "fixed_spread",
            "data_source": "recording",
            "data_params": '{"recording": "nope"}',
            "params.order_amount": "0.001",
        },
    )
    assert response.status_code == 400
    assert "is not a recording" in response.content.decode()
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(
            reverse("backtests"),
            {
                "name": "bt",
                "strategy": "fixed_spread",
                "data_source": "recording",
                "data_params": '{"recording": "binance-spot-btcusdt", "max_events": 1000}',
                "params.order_amount": "0.001",
            },
        )
    from apps.backtests.models import BacktestRun

    run = BacktestRun.objects.get(owner=trader)
    assert response.status_code == 302 and response["Location"] == reverse("backtest-detail", args=[run.pk])
    body = client.get(reverse("backtest-detail", args=[run.pk])).content.decode()
    assert 'id="run-progress"' in body and f"/ws/backtest/{run.pk}/" in body


def test_backtest_results_and_comparison_and_isolation(trader, other_trader):
    from apps.backtests.models import BacktestRun

    runs = [
        BacktestRun.objects.create(
            owner=trader,
            name=f"r{i}",
            strategy="fixed_spread",
            data_source="recording",
            status="succeeded",
            progress=100,
            metrics={"total_pnl": str(i), "fills": i},
            equity_curve=[[0, "0"], [1000, str(i)]],
            pnl_decomposition={"spread_capture": "1.5", "fees": "-0.2"},
        )
        for i in (1, 2)
    ]
    client = client_for(trader)
    body = client.get(reverse("backtest-detail", args=[runs[0].pk])).content.decode()
    assert 'data-fig="fig-equity"' in body and 'data-fig="fig-decomposition"' in body and "total_pnl" in body
    body = client.get(reverse("backtest-compare") + f"?run={runs[0].pk}&run={runs[1].pk}").content.decode()
    assert 'data-fig="fig-compare"' in body and f"#{runs[0].pk} r1" in body and f"#{runs[1].pk} r2" in body
    assert client_for(other_trader).get(reverse("backtest-detail", args=[runs[0].pk])).status_code == 404
    body = client_for(other_trader).get(reverse("backtest-compare") + f"?run={runs[0].pk}").content.decode()
    assert "r1" not in body
