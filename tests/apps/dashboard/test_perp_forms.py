"""Perpetuals in the portal's forms (issue 18 point 8), over HTTP against the real views and
services: exchange accounts are spot or derivatives (ccxt defaultType) in the account form and the
API, checked against what the venue offers; the new-bot form offers a derivatives account's
perpetual markets with their settings (leverage, margin mode, funding rate, the
liquidation-distance pause and limits, the strategy's funding skew), each bad value refused next
to its input with the field, the value and what is accepted; the configuration form keeps them."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from django.urls import reverse

from apps.bots.models import Bot
from apps.exchanges.models import ExchangeAccount, Market
from apps.exchanges.services import exchange_account_create
from tests.apps.bots.factories import api
from tests.apps.dashboard.conftest import client_for

pytestmark = pytest.mark.django_db

USDM = "replay:binance-usdm"


def usdm_market() -> Market:
    market, _ = Market.objects.get_or_create(
        venue=USDM,
        symbol="BTC/USDT:USDT",
        defaults={"base": "BTC", "quote": "USDT", "tick_size": "0.1", "lot_size": "0.001", "min_notional": "100",
                  "maker_fee": "0.0002", "taker_fee": "0.0005", "kind": "linear", "contract_size": "1", "settle": "USDT",
                  "max_leverage": 125},
    )  # fmt: skip
    return market


def spot_market() -> Market:
    market, _ = Market.objects.get_or_create(
        venue="replay:binance-spot",
        symbol="BTC/USDT",
        defaults={"base": "BTC", "quote": "USDT", "tick_size": "0.01", "lot_size": "0.00001", "min_notional": "5"},
    )
    return market


@pytest.fixture
def usdm_account(trader):
    usdm_market()
    return exchange_account_create(owner=trader, label="usdm paper", venue=USDM, paper_balances={"USDT": "100000"})


def _bot_post(client, account, market, **extra):
    data = {
        "name": "perp form bot",
        "exchange_account": account.pk,
        "market": market.pk,
        "strategy": "fixed_spread",
        "params.order_amount": "0.002",
        "params.bid_spread": "0.0005",
        "params.ask_spread": "0.0005",
        "perp.leverage": "10",
        "perp.margin_mode": "isolated",
        "perp.limits.on_liquidation_distance": "pause",
        **extra,
    }
    return client.post(reverse("bot-create"), data)


def _field_errors(body: str, field: str) -> list[str]:
    return re.findall(rf'<div class="field-error" data-field="{re.escape(field)}">([^<]*)</div>', body)


# --- accounts: spot or derivatives ---------------------------------------------------------------


def test_the_account_form_takes_the_type_and_refuses_one_the_venue_does_not_offer(trader):
    usdm_market()
    spot_market()
    client = client_for(trader)
    add = reverse("account-add")
    refused = client.post(add, {"label": "bad", "kind": "paper", "venue": USDM, "default_type": "spot",
                                "paper_balances": '{"USDT": "1000"}'})  # fmt: skip
    assert refused.status_code == 400
    body = refused.content.decode()
    assert (
        "&#x27;spot&#x27; is not accepted on replay:binance-usdm: it has no spot markets; accepted: &#x27;swap&#x27;"
        in body
    )
    assert not ExchangeAccount.objects.filter(label="bad").exists()
    unknown = client.post(add, {"label": "bad", "kind": "paper", "venue": USDM, "default_type": "futures"})
    assert unknown.status_code == 400
    assert (
        "&#x27;futures&#x27; is not an account type; accepted: &#x27;spot&#x27; (spot markets) or &#x27;swap&#x27;"
        in (unknown.content.decode())
    )
    ok = client.post(add, {"label": "usdm", "kind": "paper", "venue": USDM, "default_type": "swap",
                           "paper_balances": '{"USDT": "1000"}'})  # fmt: skip
    assert ok.status_code == 302
    assert ExchangeAccount.objects.get(label="usdm").default_type == "swap"
    # left to the venue: replay:binance-usdm only has perpetual swaps, replay:binance-spot only spot
    client.post(add, {"label": "inferred", "kind": "paper", "venue": USDM, "default_type": ""})
    client.post(add, {"label": "spot", "kind": "paper", "venue": "replay:binance-spot"})
    assert ExchangeAccount.objects.get(label="inferred").default_type == "swap"
    assert ExchangeAccount.objects.get(label="spot").default_type == "spot"
    page = client.get(reverse("settings")).content.decode()
    assert '<td data-default-type="swap">Derivatives (perpetual swaps)</td>' in page


def test_the_api_takes_the_account_type_and_names_what_a_ccxt_venue_accepts(trader):
    client = api(trader)
    made = client.post("/api/v1/exchange-accounts/", {"label": "bn swap", "venue": "binance", "kind": "paper",
                                                      "default_type": "swap"}, format="json")  # fmt: skip
    assert made.status_code == 201, made.content
    assert made.json()["default_type"] == "swap"
    assert ExchangeAccount.objects.get(pk=made.json()["id"]).ccxt_options == {"defaultType": "swap"}
    # ccxt's kraken has no perpetual swaps; ccxt's binanceusdm no spot
    kraken = client.post("/api/v1/exchange-accounts/", {"label": "kr", "venue": "kraken", "kind": "paper",
                                                        "default_type": "swap"}, format="json")  # fmt: skip
    assert kraken.status_code == 400
    assert kraken.json()["default_type"] == [
        "'swap' is not accepted on kraken: it has no perpetual swaps; accepted: 'spot'"
    ]
    usdm = client.post("/api/v1/exchange-accounts/", {"label": "um", "venue": "binanceusdm", "kind": "paper"},
                       format="json")  # fmt: skip
    assert usdm.status_code == 201 and usdm.json()["default_type"] == "swap"
    listed = client.get("/api/v1/exchange-accounts/").json()
    rows = listed["results"] if isinstance(listed, dict) else listed
    assert {r["label"]: r["default_type"] for r in rows} == {"bn swap": "swap", "um": "swap"}


def test_the_account_type_changes_after_creation_but_not_while_a_bot_runs(trader):
    """The API (PATCH ``default_type``) and the settings page's "Change type" form change an
    account's type, checked against the venue as at creation, audited; while any of its bots
    runs the change is refused with the field, the value and why; once they stop it goes."""
    from apps.accounts.models import AuditLog
    from apps.bots.services import bot_create

    client = api(trader)
    made = client.post("/api/v1/exchange-accounts/", {"label": "bn", "venue": "binance", "kind": "paper",
                                                      "paper_balances": {"USDT": "1000"}}, format="json")  # fmt: skip
    assert made.status_code == 201 and made.json()["default_type"] == "spot"
    url = f"/api/v1/exchange-accounts/{made.json()['id']}/"
    changed = client.patch(url, {"default_type": "swap"}, format="json")
    assert changed.status_code == 200, changed.content
    account = ExchangeAccount.objects.get(pk=made.json()["id"])
    assert changed.json()["default_type"] == "swap" and account.ccxt_options == {"defaultType": "swap"}
    audit = AuditLog.objects.filter(object_id=str(account.pk), action="config_changed").latest("id")
    assert (audit.before, audit.after) == ({"default_type": "spot"}, {"default_type": "swap"})
    bad = client.patch(url, {"default_type": "futures"}, format="json")
    assert bad.status_code == 400 and "'futures' is not an account type" in bad.json()["default_type"][0]
    # A running bot on the account: refused, nothing changed.
    back = client.patch(url, {"default_type": "spot"}, format="json")
    assert back.status_code == 200 and back.json()["default_type"] == "spot"
    account.refresh_from_db()
    market, _ = Market.objects.get_or_create(venue="binance", symbol="BTC/USDT", defaults={
        "base": "BTC", "quote": "USDT", "tick_size": "0.01", "lot_size": "0.00001", "min_notional": "5"})  # fmt: skip
    market.refresh_from_db()
    bot = bot_create(owner=trader, name="runs", exchange_account=account, market=market,
                     strategy="fixed_spread", params={"order_amount": "0.001", "bid_spread": "0.001",
                                                      "ask_spread": "0.001"})  # fmt: skip
    Bot.objects.filter(pk=bot.pk).update(desired_state="running", actual_state="running")
    refused = client.patch(url, {"default_type": "swap", "label": "bn renamed"}, format="json")
    assert refused.status_code == 400
    assert refused.json()["default_type"] == [
        "'swap' is not accepted now: the type of account 'bn' ('spot') cannot change while its bots run ('runs'): "
        "their exchange connection, wallet and markets would change under them; stop them first, then change the type"
    ]
    account.refresh_from_db()
    assert (account.default_type, account.label) == ("spot", "bn")  # nothing half-applied
    # The settings page's form, as a user tries it: refused while the bot runs, then changed.
    page = client_for(trader)
    form_url = reverse("account-type", args=[account.pk])
    assert f'action="{form_url}"' in page.get(reverse("settings")).content.decode()
    body = page.post(form_url, {"default_type": "swap"}, follow=True).content.decode()
    assert "bn: not changed: default_type: &#x27;swap&#x27; is not accepted now" in body
    assert ExchangeAccount.objects.get(pk=account.pk).default_type == "spot"
    Bot.objects.filter(pk=bot.pk).update(desired_state="stopped", actual_state="stopped")
    body = page.post(form_url, {"default_type": "swap"}, follow=True).content.decode()
    assert "bn: markets are now Derivatives (perpetual swaps)." in body
    assert '<td data-default-type="swap">Derivatives (perpetual swaps)</td>' in body
    assert ExchangeAccount.objects.get(pk=account.pk).default_type == "swap"


# --- the new-bot form ---------------------------------------------------------------------------


def test_the_new_bot_form_offers_the_perpetual_market_with_its_settings(trader, usdm_account):
    page = client_for(trader).get(reverse("bot-create")).content.decode()
    assert "BTC/USDT:USDT · replay:binance-usdm · perpetual" in page
    assert 'id="perp-settings"' in page
    for name in ("perp.leverage", "perp.margin_mode", "perp.funding_rate", "perp.limits.min_liquidation_distance",
                 "perp.limits.on_liquidation_distance", "perp.limits.max_position_contracts",
                 "perp.limits.max_margin_usage", "perp.limits.max_funding_cost"):  # fmt: skip
        assert f'name="{name}"' in page, name
    assert "a whole number from 1 up to 125" in page  # the recording's contract's maximum
    assert '"type": "swap"' in page  # the account's type for the market filter


def test_reloading_the_parameters_for_another_strategy_keeps_the_choices_and_shows_no_errors(trader, usdm_account):
    """Picking another strategy reloads the form with that strategy's parameters; nothing was
    submitted yet, so no field is marked missing, and the account and market stay chosen."""
    market = usdm_market()
    response = client_for(trader).post(
        reverse("bot-create"),
        {"refresh": "1", "exchange_account": usdm_account.pk, "market": market.pk, "strategy": "avellaneda_stoikov"},
    )
    body = response.content.decode()
    assert response.status_code == 200
    assert "This field is required" not in body and 'class="field-error"' not in body
    assert 'name="params.risk_aversion"' in body and 'name="params.funding_skew"' in body
    assert re.search(rf'<option value="{usdm_account.pk}" selected>', body)
    assert re.search(rf'<option value="{market.pk}"[^>]* selected', body)
    assert not Bot.objects.filter(owner=trader).exists()


def test_bad_perpetual_settings_are_refused_next_to_their_inputs(trader, usdm_account):
    client = client_for(trader)
    market = usdm_market()
    response = _bot_post(
        client,
        usdm_account,
        market,
        **{"perp.leverage": "200", "perp.margin_mode": "portfolio", "perp.funding_rate": "0.5",
           "perp.limits.min_liquidation_distance": "2", "perp.limits.on_liquidation_distance": "panic",
           "perp.limits.max_margin_usage": "1.5", "perp.limits.max_funding_cost": "-3"},
    )  # fmt: skip
    assert response.status_code == 400
    body = response.content.decode()
    assert _field_errors(body, "perp.leverage") == ["200 is not accepted; give a whole number from 1 to 125"]
    assert _field_errors(body, "perp.margin_mode") == [
        "&#x27;portfolio&#x27; is not accepted; accepted: isolated, cross"
    ]
    assert _field_errors(body, "perp.funding_rate") == [
        "&#x27;0.5&#x27; is not accepted; give a decimal string from -0.03 up to 0.03 (USDT)"
    ]
    [distance] = _field_errors(body, "perp.limits.min_liquidation_distance")
    assert "2" in distance and "0.9" in distance
    [action] = _field_errors(body, "perp.limits.on_liquidation_distance")
    assert "panic" in action and "pause" in action and "reduce_only" in action and "flatten" in action
    [usage] = _field_errors(body, "perp.limits.max_margin_usage")
    assert "1.5" in usage and "1" in usage
    [cost] = _field_errors(body, "perp.limits.max_funding_cost")
    assert "-3" in cost and "0" in cost
    assert 'id="perp-settings" open' in body
    assert not Bot.objects.filter(name="perp form bot").exists()


def test_the_funding_skew_is_refused_by_name_on_a_perpetual_bot(trader, usdm_account):
    response = _bot_post(
        client_for(trader),
        usdm_account,
        usdm_market(),
        strategy="inventory_based",
        **{"params.position_range": "0.01", "params.funding_skew": "500", "params.funding_skew_minutes": "0"},
    )
    assert response.status_code == 400
    body = response.content.decode()
    [skew] = _field_errors(body, "params.funding_skew")
    assert "500" in skew and "100" in skew
    assert _field_errors(body, "params.funding_skew_minutes") == ["0.0 is too small; accepted: greater than 0.0"]


def test_a_perpetual_bot_is_created_with_its_settings_and_the_configuration_keeps_them(trader, usdm_account):
    client = client_for(trader)
    response = _bot_post(
        client,
        usdm_account,
        usdm_market(),
        **{"perp.leverage": "5", "perp.margin_mode": "cross", "perp.funding_rate": "0.0002",
           "perp.limits.min_liquidation_distance": "0.05", "perp.limits.max_position_contracts": "0.01"},
    )  # fmt: skip
    assert response.status_code == 302, re.findall(r"field-error[^>]*>[^<]*", response.content.decode())
    bot = Bot.objects.get(name="perp form bot")
    assert bot.risk["perp"] == {
        "leverage": 5,
        "margin_mode": "cross",
        "funding_rate": "0.0002",
        "limits": {"min_liquidation_distance": "0.05", "max_position_contracts": "0.01",
                   "on_liquidation_distance": "pause"},
    }  # fmt: skip
    page = client.get(reverse("bot-detail", args=[bot.pk])).content.decode()
    assert 'id="perp-position"' in page and 'id="perp-idle"' in page  # the card, waiting for a running bot
    assert 'name="perp.leverage"' in page
    config = {"name": bot.name, "strategy": "fixed_spread", "params_for": "fixed_spread",
              "params.order_amount": "0.002", "params.bid_spread": "0.0005", "params.ask_spread": "0.0005"}  # fmt: skip
    # saved without perpetual inputs (an older page, the API's shape): the settings stay
    assert client.post(reverse("bot-config", args=[bot.pk]), config).status_code == 302
    bot.refresh_from_db()
    assert bot.risk["perp"]["leverage"] == 5
    changed = client.post(
        reverse("bot-config", args=[bot.pk]), config | {"perp.leverage": "3", "perp.margin_mode": "isolated"}
    )
    assert changed.status_code == 302
    bot.refresh_from_db()
    assert bot.risk["perp"] == {"leverage": 3, "margin_mode": "isolated"}
    refused = client.post(reverse("bot-config", args=[bot.pk]), config | {"perp.leverage": "0"})
    assert refused.status_code == 400
    assert _field_errors(refused.content.decode(), "perp.leverage") == [
        "0 is not accepted; give a whole number from 1 to 125"
    ]


def test_an_account_trades_only_markets_of_its_type(trader, usdm_account):
    """A derivatives account trades perpetual swaps only; a live spot account no perpetual swap
    (a paper spot account may: its paper balances are the wallet either way)."""
    spot_acct = exchange_account_create(
        owner=trader, label="bn spot", venue="binance", kind="live", api_key="k" * 16, api_secret="s" * 16
    )
    swap_acct = exchange_account_create(
        owner=trader, label="bn swap", venue="binance", default_type="swap", paper_balances={"USDT": "1000"}
    )
    perp = Market.objects.create(venue="binance", symbol="BTC/USDT:USDT", base="BTC", quote="USDT",
                                 tick_size="0.1", lot_size="0.001")  # fmt: skip
    spot = Market.objects.create(venue="binance", symbol="BTC/USDT", base="BTC", quote="USDT",
                                 tick_size="0.01", lot_size="0.00001")  # fmt: skip
    client = client_for(trader)
    wrong = _bot_post(client, spot_acct, perp)
    assert wrong.status_code == 400
    assert ("BTC/USDT:USDT on binance is a perpetual swap and live account &#x27;bn spot&#x27; is a spot account"
            in wrong.content.decode())  # fmt: skip
    other = api(trader).post(
        "/api/v1/bots/",
        {"name": "x", "exchange_account": swap_acct.pk, "market": spot.pk, "strategy": "fixed_spread",
         "params": {"order_amount": "0.0001", "bid_spread": "0.001", "ask_spread": "0.001"}},
        format="json",
    )  # fmt: skip
    assert other.status_code == 400
    assert other.json()["market"] == [
        "BTC/USDT on binance is a spot market and account 'bn swap' is a derivatives account; accepted: a "
        "perpetual swap (BASE/QUOTE:SETTLE) for this account"
    ]


# --- the overview's positions -------------------------------------------------------------------


def test_the_overview_and_the_api_show_positions_across_accounts(trader, usdm_account):
    from apps.orders.models import Fill

    spot_acct = exchange_account_create(
        owner=trader, label="spot paper", venue="replay:binance-spot", paper_balances={"BTC": "0.5", "USDT": "2000"}
    )
    bot = Bot.objects.create(owner=trader, name="perp held", exchange_account=usdm_account, market=usdm_market(),
                             strategy="fixed_spread", params={}, risk={})  # fmt: skip
    from django.utils import timezone

    for i, (side, qty) in enumerate((("buy", "0.005"), ("sell", "0.002"))):
        Fill.objects.create(bot=bot, account=usdm_account, ts=timezone.now(), side=side, price=Decimal("60000"),
                            quantity=Decimal(qty), fee=Decimal("0"), venue_trade_id=f"p{i}")  # fmt: skip
    rows = api(trader).get("/api/v1/portfolio/positions/").json()
    by_label = {r["label"]: r for r in rows}
    assert by_label["usdm paper"]["default_type"] == "swap"
    [perp] = by_label["usdm paper"]["perp"]
    assert (perp["bot_name"], perp["symbol"], perp["position_contracts"], perp["live"]) == (
        "perp held",
        "BTC/USDT:USDT",
        "0.003",
        False,
    )
    assert by_label["usdm paper"]["spot"] == [{"asset": "USDT", "amount": "100000"}]
    assert by_label["spot paper"]["spot"] == [{"asset": "BTC", "amount": "0.5"}, {"asset": "USDT", "amount": "2000"}]
    assert spot_acct.default_type == "spot"
    page = client_for(trader).get(reverse("overview")).content.decode()
    assert 'id="positions"' in page
    assert f'<tr data-bot="{bot.pk}">' in page and '<td class="r contracts">0.003</td>' in page


def test_a_derivatives_accounts_exchange_objects_are_built_with_its_default_type(trader):
    """Verification and a live bot's gateway build the account's ccxt exchange with
    ``options={"defaultType": "swap"}`` for a derivatives account (real ccxt objects, no network)."""
    from apps.exchanges.services import _default_exchange, exchange_account_credentials
    from workers.live_venue import account_options, build_gateway

    swap = exchange_account_create(owner=trader, label="bn live swap", venue="binance", kind="live",
                                   api_key="k" * 16, api_secret="s" * 16, default_type="swap")  # fmt: skip
    spot = exchange_account_create(owner=trader, label="bn live spot", venue="binance", kind="live",
                                   api_key="k" * 16, api_secret="s" * 16)  # fmt: skip
    exchange = _default_exchange(swap, exchange_account_credentials(account=swap))
    assert exchange.options["defaultType"] == "swap"
    assert _default_exchange(spot, exchange_account_credentials(account=spot)).options["defaultType"] == "spot"
    assert account_options(swap.pk) == {"defaultType": "swap"} and account_options(spot.pk) is None
    gateway = build_gateway("binance", ("k", "s", ""), account_id=swap.pk, options=account_options(swap.pk))
    assert gateway.exchange.options["defaultType"] == "swap"


def test_a_hedged_bot_is_not_offered_the_perpetual_fieldset_it_would_not_use(trader, usdm_account):
    """A hedged maker's perpetual legs take their settings from ``maker_perp`` / ``hedge_perp``:
    the form offers ``risk.perp`` to the other strategies only."""
    client = client_for(trader)
    assert 'id="perp-settings"' in client.get(reverse("bot-create") + "?strategy=fixed_spread").content.decode()
    page = client.get(reverse("bot-create") + "?strategy=hedged_maker").content.decode()
    assert 'id="perp-settings"' not in page
