from django.urls import path

from apps.dashboard.views import backtests, bots, markets, operators, settings

urlpatterns = [
    path("", bots.overview, name="overview"),
    path("bots/new/", bots.bot_create, name="bot-create"),
    path("bots/<int:bot_id>/", bots.bot_detail, name="bot-detail"),
    path("bots/<int:bot_id>/config/", bots.bot_config, name="bot-config"),
    path("bots/<int:bot_id>/quality/", bots.bot_quality, name="bot-quality"),
    path("incidents/<int:incident_id>/resolve/", bots.incident_resolve, name="incident-resolve"),
    path("bots/<int:bot_id>/<str:action>/", bots.bot_action, name="bot-action"),
    path("accounts/<int:account_id>/kill/", bots.account_kill, name="account-kill"),
    path("accounts/<int:account_id>/close-all/", bots.account_close_all_view, name="account-close-all"),
    path("markets/", markets.market_index, name="markets"),
    path("markets/<int:market_id>/", markets.market_detail, name="market-detail"),
    path("markets/<int:market_id>/live/", markets.market_live, name="market-live"),
    path("arbitrage/", markets.arbitrage, name="arbitrage"),
    path("backtests/", backtests.backtest_index, name="backtests"),
    path("backtests/compare/", backtests.backtest_compare, name="backtest-compare"),
    path("backtests/<int:run_id>/", backtests.backtest_detail, name="backtest-detail"),
    path("backtests/<int:run_id>/cancel/", backtests.backtest_cancel, name="backtest-cancel"),
    path("settings/", settings.settings_page, name="settings"),
    path("settings/accounts/add/", settings.account_add, name="account-add"),
    path("settings/accounts/<int:account_id>/verify/", settings.account_verify, name="account-verify"),
    path("settings/accounts/<int:account_id>/rotate/", settings.account_rotate, name="account-rotate"),
    path("settings/risk/", settings.risk_defaults, name="risk-defaults"),
    path("settings/channels/add/", settings.channel_add, name="channel-add"),
    path("settings/channels/<int:channel_id>/test/", settings.channel_test, name="channel-test"),
    path("settings/rules/add/", settings.rule_add, name="rule-add"),
    path("operators/", operators.operators, name="operators"),
    path("operators/kill/", operators.global_kill, name="global-kill"),
    path("operators/kill/lift/", operators.global_kill_lift_view, name="global-kill-lift"),
]
