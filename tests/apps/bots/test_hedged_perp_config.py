"""Hedged bots with a perpetual leg (``replay:binance-usdm`` ``BTC/USDT:USDT``, contracts of 1 BTC
in lots of 0.001) through the API: accepted spot-to-perp, and the refusals that name the field,
the value and what is accepted (issue 19: mismatched contract sizes, a hedge venue that does not
list the asset, perpetual settings on a spot leg or out of range)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from apps.exchanges.models import Market
from apps.exchanges.services import exchange_account_create
from tests.apps.bots.factories import api

pytestmark = pytest.mark.django_db

SPOT, USDM = "replay:binance-spot", "replay:binance-usdm"


def _market(venue: str, symbol: str, lot: str, tick: str, base: str = "BTC") -> Market:
    from tests.workers.helpers import contract_fields

    market, _ = Market.objects.update_or_create(
        venue=venue,
        symbol=symbol,
        defaults={"base": base, "quote": "USDT", "tick_size": Decimal(tick), "lot_size": Decimal(lot),
                  "maker_fee": Decimal("0"), "taker_fee": Decimal("0.0005"), **contract_fields(venue, symbol)},
    )  # fmt: skip
    return market


def _accounts(user):
    maker = exchange_account_create(owner=user, label="spot", venue=SPOT, kind="paper",
                                    paper_balances={"BTC": "1", "USDT": "100000"})  # fmt: skip
    hedge = exchange_account_create(owner=user, label="usdm", venue=USDM, kind="paper",
                                    paper_balances={"USDT": "100000"})  # fmt: skip
    return maker, hedge


def _payload(maker, hedge, hedge_market, **params):
    settings = {"hedge_account": hedge.pk, "hedge_market": hedge_market.pk, "order_amount": "0.002",
                "min_profitability": "0.001", "max_unhedged": "0.004", **params}  # fmt: skip
    return {
        "name": "spot-perp",
        "exchange_account": maker.pk,
        "market": _market(SPOT, "BTC/USDT", "0.00001", "0.01").pk,
        "strategy": "hedged_maker",
        "params": {k: v for k, v in settings.items() if v is not None},
        "risk": {"max_position_base": "0.5"},
    }


def test_a_spot_maker_hedged_on_the_usdm_perpetual_is_accepted(trader):
    maker, hedge = _accounts(trader)
    perp = _market(USDM, "BTC/USDT:USDT", "0.001", "0.1")
    payload = _payload(maker, hedge, perp, hedge_perp={"leverage": 5, "margin_mode": "cross"})
    response = api(trader).post("/api/v1/bots/", payload, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["params"]["hedge_perp"] == {"leverage": 5, "margin_mode": "cross"}


def test_an_order_amount_that_is_not_whole_contracts_is_refused_with_the_contract_size(trader):
    maker, hedge = _accounts(trader)
    perp = _market(USDM, "BTC/USDT:USDT", "0.001", "0.1")
    response = api(trader).post("/api/v1/bots/", _payload(maker, hedge, perp, order_amount="0.0015"), format="json")
    assert response.status_code == 400
    message = response.json()["params"]["order_amount"][0]
    assert "'0.0015' is not a whole number of BTC/USDT:USDT contracts (0.001 BTC each)" in message
    assert "accepted: a multiple of 0.001" in message


def test_a_hedge_venue_that_does_not_list_the_asset_is_refused_at_hedge_market(trader):
    maker, hedge = _accounts(trader)
    eth = _market(USDM, "ETH/USDT:USDT", "0.001", "0.01", base="ETH")
    response = api(trader).post("/api/v1/bots/", _payload(maker, hedge, eth), format="json")
    assert response.status_code == 400
    message = response.json()["params"]["hedge_market"][0]
    assert f"{eth.pk} is not accepted" in message and "does not list BTC/USDT" in message
    assert "accepted: a market of BTC/USDT on replay:binance-usdm" in message


def test_perp_settings_on_a_spot_leg_or_out_of_range_are_refused(trader):
    maker, hedge = _accounts(trader)
    perp = _market(USDM, "BTC/USDT:USDT", "0.001", "0.1")
    payload = _payload(maker, hedge, perp, maker_perp={"leverage": 5}, hedge_perp={"leverage": 500, "wallet": "0"})
    response = api(trader).post("/api/v1/bots/", payload, format="json")
    assert response.status_code == 400, response.content
    errors = response.json()["params"]
    assert "BTC/USDT on replay:binance-spot is a spot market" in errors["maker_perp"][0]
    assert "accepted: no perpetual settings on a spot leg" in errors["maker_perp"][0]
    assert errors["hedge_perp.wallet"] == ["'0' is not accepted; give a decimal string above 0 up to 1000000000 (USDT)"]
    payload = _payload(maker, hedge, perp, hedge_perp={"leverage": 500})
    errors = api(trader).post("/api/v1/bots/", payload, format="json").json()["params"]
    assert "500" in errors["hedge_perp.leverage"][0] and "125" in errors["hedge_perp.leverage"][0]
    # a hedged bot's perpetual leg is one-way: its hedge orders name no leg
    payload = _payload(maker, hedge, perp, hedge_perp={"position_mode": "hedge"})
    errors = api(trader).post("/api/v1/bots/", payload, format="json").json()["params"]
    assert errors["hedge_perp.position_mode"] == ["'hedge' is not accepted; accepted: one_way"]
