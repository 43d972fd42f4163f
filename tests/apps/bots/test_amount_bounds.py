"""Sizes, prices and limits are bounded (issue 23 item 3): through the REST API, the portal's
form and the bot loop's config loader alike, a number is plain ASCII decimal digits, finite and
representable (numeric(38,18), int64 lots and ticks), and the error names field and value."""

from __future__ import annotations

import json

import pytest
from django.test import Client
from django.urls import reverse

from apps.bots.models import Bot
from tests.apps.bots.factories import FIXED_SPREAD, api, make_account, sim_market
from trading.config import ConfigError
from trading.risk import RiskLimits
from trading.strategies import build_strategy

pytestmark = pytest.mark.django_db

# Raw JSON text: numbers a client can send that Python's json module turns into 1e30, inf or a
# 401-digit integer, and strings Python's Decimal would happily accept.
BAD_ORDER_AMOUNTS = {
    "1e30 (number)": "1e30",
    "1e308 (number)": "1e308",
    "10^400 (number)": "1" + "0" * 400,
    "1e400 (number, inf)": "1e400",
    "'1e30'": '"1e30"',
    "'1_000'": '"1_000"',
    "arabic-indic three": '"\u0663"',
    "'NaN'": '"NaN"',
    "'Infinity'": '"Infinity"',
    "' 1,5'": '"1,5"',
    "too many decimals": '"0.0000000000000000001"',
}


def _post_raw(user, account, params_json: str, risk_json: str = "{}"):
    market = sim_market(account.venue).pk
    body = (
        f'{{"name": "bounded", "exchange_account": {account.pk}, "market": {market}, "strategy": "fixed_spread", '
        f'"params": {params_json}, "risk": {risk_json}}}'
    )
    return api(user).post("/api/v1/bots/", body, content_type="application/json")


@pytest.mark.parametrize("raw", list(BAD_ORDER_AMOUNTS.values()), ids=list(BAD_ORDER_AMOUNTS))
def test_the_api_refuses_absurd_or_non_plain_order_amounts_naming_field_and_value(trader, raw):
    account = make_account(trader)
    params = f'{{"order_amount": {raw}, "bid_spread": "0.001", "ask_spread": "0.001"}}'
    response = _post_raw(trader, account, params)
    assert response.status_code == 400, response.content
    message = response.json()["params"]["order_amount"][0]
    assert "accepted" in message
    assert not Bot.objects.exists()


@pytest.mark.parametrize("raw", ["1e999", '"1e999"', '"1' + "0" * 30 + '"', "1" + "0" * 25])
def test_the_api_refuses_risk_limits_beyond_the_representable_range(trader, raw):
    account = make_account(trader)
    response = _post_raw(trader, account, json.dumps(FIXED_SPREAD), f'{{"daily_loss_limit": {raw}}}')
    assert response.status_code == 400, response.content
    assert "accepted" in response.json()["risk"]["daily_loss_limit"][0]


def test_an_amount_beyond_int64_lots_names_the_largest_accepted(trader):
    # 1e16 BTC is representable in numeric(38,18) but is 1e20 lots of 0.0001: beyond int64.
    account = make_account(trader)
    params = json.dumps({**FIXED_SPREAD, "order_amount": "10000000000000000"})
    response = _post_raw(trader, account, params)
    assert response.status_code == 400
    message = response.json()["params"]["order_amount"][0]
    assert "lots" in message and "922337203685477.5807" in message


def test_plain_decimals_are_still_accepted(trader):
    account = make_account(trader)
    params = json.dumps({**FIXED_SPREAD, "order_amount": "0.0010"})
    response = _post_raw(trader, account, params, '{"daily_loss_limit": 250.5, "max_open_orders": 10}')
    assert response.status_code == 201, response.content


def test_the_form_refuses_the_same_values_with_the_field(trader):
    account = make_account(trader)
    client = Client()
    client.force_login(trader)
    response = client.post(
        reverse("bot-create"),
        {
            "name": "formbot",
            "exchange_account": account.pk,
            "market": sim_market(account.venue).pk,
            "strategy": "fixed_spread",
            "params.order_amount": "1_000",
            "params.bid_spread": "0.001",
            "params.ask_spread": "0.001",
            "risk.daily_loss_limit": "1e999",
        },
    )
    assert response.status_code == 400
    body = response.content.decode()
    assert "1_000" in body and "not a number written as a plain decimal" in body
    assert "1e999" in body
    assert not Bot.objects.exists()


def test_the_engine_config_loader_applies_the_same_rules():
    from apps.exchanges.markets import market_to_instrument

    inst = market_to_instrument(sim_market())
    with pytest.raises(ConfigError) as info:
        build_strategy("fixed_spread", {**FIXED_SPREAD, "order_amount": "\u0663"}, inst)
    assert "order_amount" in info.value.errors
    with pytest.raises(ConfigError) as info:
        RiskLimits.from_dict({"max_position_quote": "1e999"}, inst)
    assert "max_position_quote" in info.value.errors
    with pytest.raises(ConfigError) as info:  # parses, but not on this instrument: 1e19 ticks x lots
        RiskLimits.from_dict({"max_position_quote": "10000000000000"}, inst)
    assert "units of 0.000001 USDT" in info.value.errors["max_position_quote"]
    assert "at most 9223372036854.775807 USDT" in info.value.errors["max_position_quote"]


@pytest.mark.parametrize("raw", ["1e999", "1_000", "\u0663", "1" + "0" * 30])
def test_notification_thresholds_and_arbitrage_settings_follow_the_same_rule(trader, raw):
    from apps.arbitrage.services import ArbitrageInputError, arbitrage_settings_update
    from apps.notifications.services import NotificationInputError, rule_create

    with pytest.raises(NotificationInputError) as info:
        rule_create(owner=trader, event_kind="fill", channels=[], threshold=raw)
    assert "accepted" in info.value.errors["threshold"]
    with pytest.raises(ArbitrageInputError) as arb:
        arbitrage_settings_update(user=trader, min_profit=raw)
    assert "min_profit" in str(arb.value)
