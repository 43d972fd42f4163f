"""Fat-finger guards on the new-bot form and the API (issue 21 item 2): an order larger than the
account is refused with its value and the balance; a large one is created only once the trader
confirms its value; a new bot gets a maximum order size and position from the account's value;
an Avellaneda-Stoikov spread that would be capped is warned about."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from apps.bots.models import Bot
from apps.exchanges.services import exchange_account_create
from apps.marketdata.models import Trade
from tests.apps.bots.factories import api, sim_market
from tests.apps.dashboard.conftest import client_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def priced(trader):
    """A paper account holding 1 BTC and 10,000 USDT on a market whose last trade was 60,000."""
    market = sim_market()
    now = timezone.now()
    for i in range(30):  # realised volatility about 7 USDT/sqrt(s)
        Trade.objects.create(market=market, ts=now - timedelta(seconds=30 - i), price=Decimal(60_000 + ((29 - i) % 3) * 5),
                             qty=Decimal("0.01"), aggressor="buy", trade_id=f"t{i}")  # fmt: skip
    account = exchange_account_create(
        owner=trader, label="guarded", venue=market.venue, kind="paper", paper_balances={"BTC": "1", "USDT": "10000"}
    )
    return account, market


def _post(client, account, market, order_amount: str, **extra):
    data = {
        "name": "guarded-bot",
        "exchange_account": account.pk,
        "market": market.pk,
        "strategy": "fixed_spread",
        "params.order_amount": order_amount,
        "params.bid_spread": "0.001",
        "params.ask_spread": "0.001",
        **extra,
    }
    return client.post(reverse("bot-create"), data)


def test_the_form_refuses_a_million_btc_order_with_its_value_and_the_balance(trader, priced):
    account, market = priced
    response = _post(client_for(trader), account, market, "1000000")
    assert response.status_code == 400
    body = response.content.decode()
    assert "1000000 BTC is an order of 60,000,000,000.00 USDT" in body
    assert "the account holds 1 BTC + 10000 USDT = 70,000.00 USDT at 60000" in body
    assert "accepted: at most 1.1666 BTC" in body
    assert not Bot.objects.exists()


def test_the_api_refuses_it_too_and_names_the_field(trader, priced):
    account, market = priced
    payload = {"name": "api-bot", "exchange_account": account.pk, "market": market.pk, "strategy": "fixed_spread",
               "params": {"order_amount": "1000000", "bid_spread": "0.001", "ask_spread": "0.001"}}  # fmt: skip
    response = api(trader).post("/api/v1/bots/", payload, format="json")
    assert response.status_code == 400
    assert "60,000,000,000.00 USDT" in response.json()["params"]["order_amount"][0]


def test_a_large_order_needs_a_confirmation_naming_its_value(trader, priced):
    account, market = priced
    client = client_for(trader)
    response = _post(client, account, market, "0.5")  # 30,000 USDT: 43% of 70,000
    assert response.status_code == 400
    body = response.content.decode()
    assert 'id="confirm-large"' in body and "each order is worth 30,000.00 USDT, 43% of the account" in body
    assert "I confirm orders of 30000.00 USDT each" in body
    assert not Bot.objects.exists()
    response = _post(client, account, market, "0.5", confirm_large="1")
    assert response.status_code == 302
    assert Bot.objects.get().params["order_amount"] == "0.5"


@override_settings(DEFAULT_MAX_ORDER_FRACTION=Decimal("0.25"), DEFAULT_MAX_POSITION_FRACTION=Decimal("0.5"))
def test_a_new_bot_gets_a_maximum_order_size_and_position_from_the_account(trader, priced):
    account, market = priced
    assert _post(client_for(trader), account, market, "0.01").status_code == 302
    risk = Bot.objects.get().risk
    # 70,000 USDT of value at 60,000 (the last trade): 1.16666 BTC; a quarter and a half of it
    assert (Decimal(risk["max_order_size"]), Decimal(risk["max_position_base"])) == (
        Decimal("0.2916"),
        Decimal("0.5833"),
    )


def test_limits_the_trader_gave_are_kept(trader, priced):
    account, market = priced
    assert _post(client_for(trader), account, market, "0.01", **{"risk.max_order_size": "0.05"}).status_code == 302
    risk = Bot.objects.get().risk
    assert Decimal(risk["max_order_size"]) == Decimal("0.05") and "max_position_base" in risk


def test_an_avellaneda_stoikov_spread_that_would_be_capped_is_warned_about(trader, priced):
    account, market = priced
    client = client_for(trader)
    data = {"name": "as-bot", "exchange_account": account.pk, "market": market.pk, "strategy": "avellaneda_stoikov",
            "params.order_amount": "0.001", "params.gamma": "0.1", "confirm_large": "1"}  # fmt: skip
    response = client.post(reverse("bot-create"), data, follow=True)
    body = response.content.decode()
    assert "seldom fill" in body and "above max_spread 5.00%" in body
    Bot.objects.all().delete()
    data["params.gamma"] = ""  # the default: risk_aversion 1, scaled to the price
    body = client.post(reverse("bot-create"), data, follow=True).content.decode()
    assert "seldom fill" not in body and Bot.objects.filter(name="as-bot").exists()


def test_saving_a_capped_avellaneda_stoikov_config_on_the_bot_page_warns_too(trader, priced):
    from apps.bots.services import bot_create

    account, market = priced
    bot = bot_create(owner=trader, name="as-edit", exchange_account=account, market=market,
                     strategy="avellaneda_stoikov", params={"order_amount": "0.001"})  # fmt: skip
    data = {"name": "as-edit", "strategy": "avellaneda_stoikov", "params.order_amount": "0.001",
            "params.gamma": "0.1"}  # fmt: skip
    response = client_for(trader).post(reverse("bot-config", args=[bot.pk]), data, follow=True)
    body = response.content.decode()
    assert "Configuration saved." in body and "seldom fill" in body


def test_an_order_below_the_markets_minimum_value_is_refused_with_the_least_accepted(trader, priced):
    account, market = priced
    market.min_notional = Decimal("5")
    market.save()
    response = _post(client_for(trader), account, market, "0.0001")  # 6 USDT: fine
    assert response.status_code == 302
    Bot.objects.all().delete()
    response = _post(client_for(trader), account, market, "0.00001")  # below one lot of 0.0001
    assert response.status_code == 400 and "lot size" in response.content.decode()
    market.lot_size = Decimal("0.00001")
    market.save()
    body = _post(client_for(trader), account, market, "0.00005").content.decode()  # 3 USDT
    assert "below the market&#x27;s minimum order value 5 USDT; accepted: at least 0.00009 BTC" in body


def test_a_perpetual_bot_is_judged_on_its_margin_times_leverage(trader):
    """On ``replay:binance-usdm`` BTC/USDT:USDT the account's value is its USDT margin times the
    bot's leverage: 1,000 USDT at 10x carries 10,000 USDT of orders, at 2x only 2,000."""
    from apps.exchanges.models import Market

    market, _ = Market.objects.get_or_create(
        venue="replay:binance-usdm",
        symbol="BTC/USDT:USDT",
        defaults={"base": "BTC", "quote": "USDT", "tick_size": "0.1", "lot_size": "0.001", "min_notional": "100",
                  "maker_fee": "0.0002", "taker_fee": "0.0005", "kind": "linear", "contract_size": "1", "settle": "USDT",
                  "max_leverage": 125},
    )  # fmt: skip
    now = timezone.now()
    Trade.objects.create(
        market=market, ts=now, price=Decimal(50_000), qty=Decimal("0.01"), aggressor="buy", trade_id="p1"
    )
    account = exchange_account_create(
        owner=trader, label="usdm", venue=market.venue, kind="paper", paper_balances={"USDT": "1000"}
    )
    payload = {"name": "perp-bot", "exchange_account": account.pk, "market": market.pk, "strategy": "fixed_spread",
               "params": {"order_amount": "0.1", "bid_spread": "0.001", "ask_spread": "0.001"}, "confirm_large": True}  # fmt: skip
    # 0.1 BTC is 5,000 USDT: within 1,000 x 10 (a spot account of 1,000 USDT would refuse it)
    created = api(trader).post("/api/v1/bots/", payload, format="json")
    assert created.status_code == 201, created.content
    risk = Bot.objects.get(name="perp-bot").risk
    assert Decimal(risk["max_order_size"]) > 0  # the default limits come from the margin too
    at_2x = api(trader).post(
        "/api/v1/bots/", payload | {"name": "perp-2x", "risk": {"perp": {"leverage": 2}}}, format="json"
    )
    assert at_2x.status_code == 400
    message = at_2x.json()["params"]["order_amount"][0]
    assert "0.1 BTC is an order of 5,000.00 USDT" in message
    assert "the account's margin is 1000 USDT, 2,000.00 USDT of orders at 2x leverage" in message
    assert "accepted: at most 0.04 BTC" in message


def test_an_inverse_perpetual_order_is_judged_in_the_settle_coin(trader):
    """COIN-M ``BTC/USD:BTC``: contracts of 100 USD, last traded at 50,000, a paper account of
    0.1 BTC at 10x carries 1 BTC of orders. An order's notional in BTC is contracts x 100 / 50,000:
    600 contracts are 1.2 BTC, refused with at most 500 contracts (1 BTC) accepted; 100 contracts
    (0.2 BTC) are created, the default limits 125 contracts (0.25 BTC) per order and 250 (0.5 BTC)
    of position; and 0.2 BTC is 20 % of the account: the form asks to confirm 0.2 BTC."""
    from apps.bots.guards import LargeOrderConfirmation
    from apps.bots.services import bot_create
    from apps.exchanges.models import Market

    market, _ = Market.objects.get_or_create(
        venue="replay:binance-coinm",
        symbol="BTC/USD:BTC",
        defaults={"base": "BTC", "quote": "USD", "tick_size": "0.1", "lot_size": "1", "min_notional": "0",
                  "maker_fee": "0.0002", "taker_fee": "0.0005", "kind": "inverse", "contract_size": "100",
                  "settle": "BTC", "max_leverage": 125},
    )  # fmt: skip
    market.refresh_from_db()
    Trade.objects.create(
        market=market, ts=timezone.now(), price=Decimal(50_000), qty=Decimal(1), aggressor="buy", trade_id="c1"
    )
    account = exchange_account_create(
        owner=trader, label="coinm", venue=market.venue, kind="paper", paper_balances={"BTC": "0.1"}
    )
    payload = {"name": "inverse", "exchange_account": account.pk, "market": market.pk, "strategy": "fixed_spread",
               "params": {"order_amount": "600", "bid_spread": "0.001", "ask_spread": "0.001"},
               "risk": {"perp": {"leverage": 10}}}  # fmt: skip
    refused = api(trader).post("/api/v1/bots/", payload, format="json")
    assert refused.status_code == 400
    assert refused.json()["params"]["order_amount"] == [
        "600 contracts is an order of 1.2 BTC (600 x 100 USD / 50000); the account's margin is 0.1 BTC, 1 BTC of "
        "orders at 10x leverage (at 50000 (last trade)); accepted: at most 500 contracts"
    ]
    payload["params"]["order_amount"] = "100"
    created = api(trader).post("/api/v1/bots/", payload, format="json")
    assert created.status_code == 201, created.content
    risk = Bot.objects.get(name="inverse").risk
    assert (risk["max_order_size"], risk["max_position_base"]) == ("125", "250")
    with pytest.raises(LargeOrderConfirmation) as asked:
        bot_create(owner=trader, name="inverse-2", exchange_account=account, market=market, strategy="fixed_spread",
                   params=payload["params"], risk=payload["risk"], confirm_large=False)  # fmt: skip
    assert (asked.value.notional, asked.value.value, asked.value.quote) == (Decimal("0.2"), Decimal("1.0"), "BTC")
    assert asked.value.errors["params"]["order_amount"] == [
        "each order is worth 0.2 BTC, 20% of the account's 1 BTC: confirm orders of 0.2 BTC to go on"
    ]
