"""Hedged bots' configuration (strategy ``hedged_maker``) through the API: the hedge leg and the
hedger's settings refused field by field with the value and what is accepted."""

from __future__ import annotations

import pytest

from apps.exchanges.models import Market
from tests.apps.bots.factories import api, make_account, sim_market

pytestmark = pytest.mark.django_db


def _payload(maker, hedge, **params):
    settings = {
        "hedge_account": hedge.pk,
        "hedge_market": sim_market(hedge.venue).pk,
        "order_amount": "0.001",
        "min_profitability": "0.001",
        **params,
    }
    return {
        "name": "hedged",
        "exchange_account": maker.pk,
        "market": sim_market(maker.venue).pk,
        "strategy": "hedged_maker",
        "params": {k: v for k, v in settings.items() if v is not None},
        "risk": {"max_position_base": "0.5"},
    }


def test_a_hedged_bot_is_created_with_its_hedge_leg(trader):
    maker, hedge = make_account(trader, "maker"), make_account(trader, "hedge", venue="sim:beta")
    response = api(trader).post("/api/v1/bots/", _payload(maker, hedge), format="json")
    assert response.status_code == 201, response.content
    assert response.json()["params"]["hedge_account"] == hedge.pk


def test_min_profitability_below_both_fees_is_refused_with_the_minimum(trader):
    maker, hedge = make_account(trader, "maker"), make_account(trader, "hedge", venue="sim:beta")
    response = api(trader).post("/api/v1/bots/", _payload(maker, hedge, min_profitability="0.0005"), format="json")
    assert response.status_code == 400
    message = response.json()["params"]["min_profitability"][0]
    # sim alpha maker 0.0001 + sim beta taker 0.0005
    assert "'0.0005'" in message and "accepted: at least 0.0006" in message


def test_a_hedge_market_of_another_asset_and_someone_elses_account_are_refused(trader, other_trader):
    maker, hedge = make_account(trader, "maker"), make_account(trader, "hedge", venue="sim:beta")
    eth = Market.objects.create(
        venue="sim:beta", symbol="ETH/USDT", base="ETH", quote="USDT", tick_size="0.01", lot_size="0.001"
    )
    response = api(trader).post("/api/v1/bots/", _payload(maker, hedge, hedge_market=eth.pk), format="json")
    assert response.status_code == 400
    message = response.json()["params"]["hedge_market"][0]
    # the field, the value, what would be accepted (the venue's markets listed with their ids)
    assert f"{eth.pk} is not accepted" in message and "does not list BTC/USDT" in message
    assert "accepted: a market of BTC/USDT on sim:beta" in message and f"ETH/USDT (id {eth.pk})" in message
    theirs = make_account(other_trader, "theirs", venue="sim:beta")
    response = api(trader).post("/api/v1/bots/", _payload(maker, theirs), format="json")
    assert response.status_code == 400
    assert f"{theirs.pk} is not accepted" in response.json()["params"]["hedge_account"][0]


def test_missing_hedge_leg_and_unknown_fields_are_named(trader):
    maker, hedge = make_account(trader, "maker"), make_account(trader, "hedge", venue="sim:beta")
    payload = _payload(maker, hedge, hedge_market=None, hedge_account="x", spread="0.1", requote_ticks=-1)
    response = api(trader).post("/api/v1/bots/", payload, format="json")
    assert response.status_code == 400
    errors = response.json()["params"]
    assert "the id of a market" in errors["hedge_market"][0]
    assert "'x' is not accepted" in errors["hedge_account"][0]
    assert "requote_ticks" in errors


def test_the_hedge_account_must_be_on_the_hedge_markets_venue(trader):
    maker, other = make_account(trader, "maker"), make_account(trader, "other", venue="sim:alpha")
    payload = _payload(maker, other, hedge_market=sim_market("sim:beta").pk)
    response = api(trader).post("/api/v1/bots/", payload, format="json")
    assert response.status_code == 400
    assert "accepted: an account on sim:beta" in response.json()["params"]["hedge_account"][0]


def test_ids_beyond_the_database_range_are_refused_not_a_server_error(trader):
    maker, hedge = make_account(trader, "maker"), make_account(trader, "hedge", venue="sim:beta")
    payload = _payload(maker, hedge, hedge_market=10**30, hedge_account=-1)
    response = api(trader).post("/api/v1/bots/", payload, format="json")
    assert response.status_code == 400
    errors = response.json()["params"]
    assert str(10**30) in errors["hedge_market"][0] and "-1 is not accepted" in errors["hedge_account"][0]
