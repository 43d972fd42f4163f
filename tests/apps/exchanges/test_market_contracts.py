"""Market contract fields (issue 18): kind, contract size, settle currency and maximum leverage from
ccxt's real market payloads (``tests/connectors/fixtures/ccxt/markets/binance.json``, ccxt's own
static test data, see ``tests/connectors/fixtures/ccxt/SOURCE.md``), bounded in the database and
refused by name when out of range; the hosted perpetual code reads them from the row."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from apps.derivatives.hosting import perp_market
from apps.exchanges.markets import market_contract
from apps.exchanges.models import Market
from apps.exchanges.services import market_sync
from tests.apps.exchanges.test_markets import _FakeCcxt
from tests.connectors.conftest import binance_markets
from trading.contracts import ContractKind

pytestmark = pytest.mark.django_db


def test_market_sync_fills_the_contract_fields_from_ccxt_metadata():
    market_sync(venue="binance", exchange=_FakeCcxt(binance_markets()))
    spot = Market.objects.get(venue="binance", symbol="BTC/USDT")
    linear = Market.objects.get(venue="binance", symbol="BTC/USDT:USDT")
    inverse = Market.objects.get(venue="binance", symbol="BTC/USD:BTC")
    assert (spot.kind, spot.settle, spot.is_perpetual) == ("spot", "", False)
    assert (linear.kind, linear.contract_size, linear.settle) == ("linear", Decimal(1), "USDT")
    # ccxt's inverse BTCUSD_PERP: one contract is 100 USD, settled in BTC; no leverage limit in the
    # payload (limits.leverage is {}), so the default cap of 125 applies.
    assert (inverse.kind, inverse.contract_size, inverse.settle, inverse.max_leverage) == (
        "inverse", Decimal(100), "BTC", Decimal(125)
    )  # fmt: skip
    assert (inverse.base, inverse.quote) == ("BTC", "USD")
    spec = market_contract(inverse)
    assert spec.kind is ContractKind.INVERSE and spec.contract_size == 100
    # The hosted code takes the contract from the row, not the symbol.
    assert perp_market("binance", "BTC/USD:BTC").contract == spec
    assert perp_market("binance", "BTC/USDT") is None


def test_a_leverage_limit_in_the_payload_is_the_markets_maximum_and_bad_metadata_skips_the_market():
    markets = binance_markets()
    markets["BTC/USDT:USDT"] = dict(markets["BTC/USDT:USDT"], limits={**markets["BTC/USDT:USDT"]["limits"],
                                                                      "leverage": {"min": 1, "max": 50}})  # fmt: skip
    markets["ETH/USDT:USDT"] = dict(markets["ETH/USDT:USDT"], contractSize=0)
    markets["LTC/USDT:USDT"] = dict(markets["LTC/USDT:USDT"], contractSize=1e30)
    markets["ADA/USDT:USDT"] = dict(markets["ADA/USDT:USDT"], limits={"leverage": {"max": 0}})
    market_sync(venue="binance", exchange=_FakeCcxt(markets))
    assert Market.objects.get(venue="binance", symbol="BTC/USDT:USDT").max_leverage == 50
    for symbol in ("ETH/USDT:USDT", "LTC/USDT:USDT", "ADA/USDT:USDT"):
        assert not Market.objects.filter(venue="binance", symbol=symbol).exists(), symbol


def _perp(**fields) -> Market:
    base = {"venue": "sim:alpha", "symbol": "BTC/USD:BTC", "base": "BTC", "quote": "USD", "tick_size": Decimal("0.1"),
            "lot_size": Decimal(1), "kind": "inverse", "contract_size": Decimal(100), "settle": "BTC",
            "max_leverage": Decimal(125)}  # fmt: skip
    return Market(**(base | fields))


@pytest.mark.parametrize(
    "fields, field, words",
    [
        ({"contract_size": Decimal(0)}, "contract_size", "accepted: above 0 up to 1e9"),
        ({"contract_size": Decimal(-1)}, "contract_size", "accepted: above 0 up to 1e9"),
        ({"contract_size": Decimal("1e30")}, "contract_size", "accepted: above 0 up to 1e9"),
        ({"max_leverage": Decimal(0)}, "max_leverage", "accepted: 1 to 1000"),
        ({"max_leverage": Decimal(1001)}, "max_leverage", "accepted: 1 to 1000"),
        ({"settle": ""}, "settle", "a perpetual names the currency it settles in"),
        ({"kind": "future"}, "kind", "accepted: spot, linear, inverse"),
    ],
)
def test_bad_contract_fields_are_refused_by_name_and_by_the_database(fields, field, words):
    market = _perp(**fields)
    with pytest.raises(ValidationError) as refused:
        market.clean()
    messages = refused.value.message_dict[field]
    assert any(words in m for m in messages), messages
    if fields.get("contract_size") == Decimal("1e30"):
        return  # beyond NUMERIC(38, 18): the database refuses it as an overflow, not a CHECK
    with pytest.raises(IntegrityError), transaction.atomic():
        market.save()


def test_a_bots_leverage_is_bounded_by_its_markets_maximum(trader):
    from apps.accounts.errors import FieldErrors
    from apps.bots.services import bot_create
    from apps.exchanges.services import exchange_account_create

    market = _perp(symbol="BTC/USDT:USDT", quote="USDT", kind="linear", contract_size=Decimal(1), settle="USDT",
                   lot_size=Decimal("0.001"), max_leverage=Decimal(20))  # fmt: skip
    market.save()
    market.refresh_from_db()
    account = exchange_account_create(owner=trader, label="usdm", venue="sim:alpha", paper_balances={"USDT": "10000"})
    params = {"order_amount": "0.001", "bid_spread": "0.001", "ask_spread": "0.001"}
    for leverage, accepted in ((0, False), (21, False), (20, True)):
        kwargs = {"owner": trader, "name": f"lev{leverage}", "exchange_account": account, "market": market,
                  "strategy": "fixed_spread", "params": params, "risk": {"perp": {"leverage": leverage}}}  # fmt: skip
        if accepted:
            assert bot_create(**kwargs).risk["perp"]["leverage"] == 20
            continue
        with pytest.raises(FieldErrors) as refused:
            bot_create(**kwargs)
        text = str(refused.value)
        assert "risk.perp.leverage" in text and "20" in text, text


def test_the_markets_api_shows_the_contract_and_filters_by_kind(trader):
    from tests.apps.bots.factories import api

    market_sync(venue="binance", exchange=_FakeCcxt(binance_markets()))
    rows = api(trader).get("/api/v1/markets/", {"venue": "binance", "kind": "inverse"}).json()["results"]
    assert [(r["symbol"], r["contract_size"], r["settle"], r["max_leverage"]) for r in rows] == [
        ("BTC/USD:BTC", "100.000000000000000000", "BTC", "125"),
        ("ETH/USD:ETH", "10.000000000000000000", "ETH", "125"),  # Binance COIN-M ETHUSD: 10 USD contracts
    ]
