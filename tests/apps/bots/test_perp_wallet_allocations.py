"""Paper perpetual wallet allocations checked when a bot is created or changed
(``apps/derivatives/paper_wallets.py`` ``check_bot``, from the bot services): through the REST API,
the portal's new-bot and configuration forms, and a hedged bot's perpetual legs (``maker_perp`` /
``hedge_perp.wallet``, counted with the other bots of the account). A refusal names the field,
the value and what is accepted (what is left unallocated), and saves nothing."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from apps.bots.models import Bot, BotConfigVersion
from apps.exchanges.services import exchange_account_create
from tests.apps.bots.factories import api
from tests.apps.dashboard.conftest import client_for
from tests.apps.dashboard.test_perp_forms import USDM, _bot_post, _field_errors, spot_market, usdm_market

pytestmark = pytest.mark.django_db

PARAMS = {"order_amount": "0.002", "bid_spread": "0.0005", "ask_spread": "0.0005"}


@pytest.fixture
def usdm_1000(trader):
    usdm_market()
    return exchange_account_create(owner=trader, label="usdm 1000", venue=USDM, paper_balances={"USDT": "1000"})


def _create(user, account, name: str, wallet: str | None):
    perp = {"leverage": 5} if wallet is None else {"leverage": 5, "wallet": wallet}
    payload = {"name": name, "exchange_account": account.pk, "market": usdm_market().pk, "strategy": "fixed_spread",
               "params": PARAMS, "risk": {"max_position_base": "0.01", "perp": perp}}  # fmt: skip
    return api(user).post("/api/v1/bots/", payload, format="json")


def test_the_api_refuses_an_allocation_beyond_what_is_left_and_saves_nothing(trader, usdm_1000):
    over = _create(trader, usdm_1000, "alone", "1000.5")
    assert over.status_code == 400
    assert over.json()["risk"]["perp.wallet"] == [
        "1000.5 USDT is more than this paper account has for it; accepted: at most 1000"
    ]
    assert not Bot.objects.filter(name="alone").exists()

    assert _create(trader, usdm_1000, "first", "700").status_code == 201
    refused = _create(trader, usdm_1000, "second", "301")
    assert refused.status_code == 400
    assert refused.json()["risk"]["perp.wallet"] == [
        "301 USDT is more than this paper account has for it (the balance 1000 less first 700); accepted: at most 300"
    ]
    assert not Bot.objects.filter(name="second").exists()
    missing = _create(trader, usdm_1000, "second", None)
    assert missing.status_code == 400
    assert missing.json()["risk"]["perp.wallet"][0].startswith(
        "absent: 2 perpetual bots settle in USDT on this paper account and this bot has no allocation; "
        "accepted: a perp.wallet allocation"
    )
    created = _create(trader, usdm_1000, "second", "300")
    assert created.status_code == 201, created.content

    # an edit: over what is left refused, nothing saved (no new configuration version)
    second = Bot.objects.get(name="second")
    patch = api(trader).patch(
        f"/api/v1/bots/{second.pk}/",
        {"risk": {"max_position_base": "0.01", "perp": {"wallet": "300.01"}}},
        format="json",
    )
    assert patch.status_code == 400
    assert "accepted: at most 300" in patch.json()["risk"]["perp.wallet"][0]
    second.refresh_from_db()
    assert second.risk["perp"]["wallet"] == "300" and second.config_version == 1
    assert BotConfigVersion.objects.filter(bot=second).count() == 1
    # lowering the other bot's share makes room
    first = Bot.objects.get(name="first")
    ok = api(trader).patch(
        f"/api/v1/bots/{first.pk}/", {"risk": {"max_position_base": "0.01", "perp": {"wallet": "600"}}}, format="json"
    )
    assert ok.status_code == 200, ok.content
    ok = api(trader).patch(
        f"/api/v1/bots/{second.pk}/", {"risk": {"max_position_base": "0.01", "perp": {"wallet": "400"}}}, format="json"
    )
    assert ok.status_code == 200, ok.content


def test_the_portal_forms_refuse_an_allocation_next_to_its_input(trader, usdm_1000):
    client = client_for(trader)
    market = usdm_market()
    assert _create(trader, usdm_1000, "first", "700").status_code == 201
    response = _bot_post(client, usdm_1000, market, **{"perp.wallet": "350"})
    assert response.status_code == 400
    assert _field_errors(response.content.decode(), "perp.wallet") == [
        "350 USDT is more than this paper account has for it (the balance 1000 less first 700); accepted: at most 300"
    ]
    assert not Bot.objects.filter(name="perp form bot").exists()
    assert _bot_post(client, usdm_1000, market, **{"perp.wallet": "250"}).status_code == 302
    bot = Bot.objects.get(name="perp form bot")
    config = {"name": bot.name, "strategy": "fixed_spread", "params_for": "fixed_spread",
              "params.order_amount": "0.002", "params.bid_spread": "0.0005", "params.ask_spread": "0.0005",
              "perp.leverage": "10", "perp.margin_mode": "isolated"}  # fmt: skip
    refused = client.post(reverse("bot-config", args=[bot.pk]), config | {"perp.wallet": "300.5"})
    assert refused.status_code == 400
    assert _field_errors(refused.content.decode(), "perp.wallet") == [
        "300.5 USDT is more than this paper account has for it (the balance 1000 less first 700); accepted: at most 300"
    ]
    bot.refresh_from_db()
    assert bot.risk["perp"]["wallet"] == "250" and bot.config_version == 1
    assert client.post(reverse("bot-config", args=[bot.pk]), config | {"perp.wallet": "300"}).status_code == 302


def _hedged(user, maker, hedge, name: str, hedge_perp: dict | None):
    params = {"hedge_account": hedge.pk, "hedge_market": usdm_market().pk, "order_amount": "0.002",
              "min_profitability": "0.002", "max_unhedged": "0.004"}  # fmt: skip
    if hedge_perp is not None:
        params["hedge_perp"] = hedge_perp
    payload = {"name": name, "exchange_account": maker.pk, "market": spot_market().pk, "strategy": "hedged_maker",
               "params": params, "risk": {"max_position_base": "0.5"}}  # fmt: skip
    return api(user).post("/api/v1/bots/", payload, format="json")


def test_a_hedged_bots_perp_hedge_leg_takes_an_allocation_counted_with_the_accounts_bots(trader, usdm_1000):
    maker = exchange_account_create(owner=trader, label="spot", venue="replay:binance-spot",
                                    paper_balances={"BTC": "1", "USDT": "100000"})  # fmt: skip
    assert _create(trader, usdm_1000, "first", "700").status_code == 201
    missing = _hedged(trader, maker, usdm_1000, "hedged", {"leverage": 5})
    assert missing.status_code == 400
    assert missing.json()["params"]["hedge_perp.wallet"][0].startswith(
        "absent: 2 perpetual bots settle in USDT on this paper account and this bot's hedge leg has no allocation"
    )
    over = _hedged(trader, maker, usdm_1000, "hedged", {"leverage": 5, "wallet": "400"})
    assert over.status_code == 400
    assert over.json()["params"]["hedge_perp.wallet"] == [
        "400 USDT is more than this paper account has for it (the balance 1000 less first 700); accepted: at most 300"
    ]
    assert not Bot.objects.filter(name="hedged").exists()
    assert _hedged(trader, maker, usdm_1000, "hedged", {"leverage": 5, "wallet": "300"}).status_code == 201
    # the hedge leg's share counts against the account's other bots
    third = _create(trader, usdm_1000, "third", "1")
    assert third.status_code == 400
    assert third.json()["risk"]["perp.wallet"] == [
        "1 USDT is more than this paper account has for it (the balance 1000 less first 700, hedged (hedge leg) "
        "300); accepted: at most 0"
    ]


def test_the_hedge_legs_allocation_is_its_wallet_at_start_and_counted_by_the_other_bots_start(trader, usdm_1000):
    """At start (``workers.hedged_records.hedged_setup`` -> ``workers.hedged_legs.perp_risk_of``) the
    perp hedge leg's wallet is its allocation, not the account's whole balance; and a bot of the
    account starting counts the leg's share."""
    from trading.config import ConfigError
    from workers import perp_hosting, records
    from workers.hedged_legs import perp_risk_of
    from workers.hedged_records import hedged_setup

    maker = exchange_account_create(owner=trader, label="spot", venue="replay:binance-spot",
                                    paper_balances={"BTC": "1", "USDT": "100000"})  # fmt: skip
    assert _create(trader, usdm_1000, "first", "700").status_code == 201
    assert _hedged(trader, maker, usdm_1000, "hedged", {"leverage": 5, "wallet": "300"}).status_code == 201
    hedged = Bot.objects.get(name="hedged")
    _maker_leg, hedge_leg, _settings = hedged_setup(hedged.pk)
    assert perp_risk_of(hedge_leg).wallet == 300  # its share, where it used to take all 1000

    first = Bot.objects.get(name="first")
    Bot.objects.filter(pk=first.pk).update(risk={"max_position_base": "0.01", "perp": {"wallet": "800"}})
    setup = records.bot_setup(first.pk)
    perp_hosting.load(setup)
    with pytest.raises(ConfigError) as err:
        perp_hosting.perp_risk(setup)
    assert err.value.errors["perp.wallet"] == (
        "800 USDT is more than this paper account has for it (the balance 1000 less hedged (hedge leg) 300); "
        "accepted: at most 700"
    )
    params = dict(hedged.params, hedge_perp={"leverage": 5, "wallet": "350"})
    Bot.objects.filter(pk=first.pk).update(risk={"max_position_base": "0.01", "perp": {"wallet": "700"}})
    Bot.objects.filter(pk=hedged.pk).update(params=params)
    _maker_leg, hedge_leg, _settings = hedged_setup(hedged.pk)
    with pytest.raises(ConfigError) as err:
        perp_risk_of(hedge_leg)
    assert err.value.errors["hedge_perp.wallet"] == (
        "350 USDT is more than this paper account has for it (the balance 1000 less first 700); accepted: at most 300"
    )


def test_the_portal_forms_take_the_hedge_legs_allocation_and_refuse_it_at_its_input(trader, usdm_1000):
    """The hedged bot's form offers each leg's perpetual settings (``params.maker_perp`` /
    ``params.hedge_perp``, JSON); the hedge leg's allocation is checked on create and on a
    configuration change, its error shown at that input, and a save keeps the settings."""
    import html
    import json

    maker = exchange_account_create(owner=trader, label="spot", venue="replay:binance-spot",
                                    paper_balances={"BTC": "1", "USDT": "100000"})  # fmt: skip
    assert _create(trader, usdm_1000, "first", "700").status_code == 201
    client = client_for(trader)
    page = client.get(reverse("bot-create") + "?strategy=hedged_maker").content.decode()
    assert 'name="params.hedge_perp"' in page and 'name="params.maker_perp"' in page
    form = {"name": "hedged form", "exchange_account": maker.pk, "market": spot_market().pk,
            "strategy": "hedged_maker", "params.hedge_account": usdm_1000.pk, "params.hedge_market": usdm_market().pk,
            "params.order_amount": "0.002", "params.min_profitability": "0.002", "params.max_unhedged": "0.004",
            "params.maker_perp": "{}", "risk.max_position_base": "0.5"}  # fmt: skip
    over = client.post(reverse("bot-create"), {**form, "params.hedge_perp": '{"leverage": 5, "wallet": "400"}'})
    assert over.status_code == 400
    assert _field_errors(html.unescape(over.content.decode()), "params.hedge_perp") == [
        "wallet: 400 USDT is more than this paper account has for it (the balance 1000 less first 700); "
        "accepted: at most 300"
    ]
    assert not Bot.objects.filter(name="hedged form").exists()
    made = client.post(reverse("bot-create"), {**form, "params.hedge_perp": '{"leverage": 5, "wallet": "300"}'})
    assert made.status_code == 302, _field_errors(made.content.decode(), "params.hedge_perp")
    bot = Bot.objects.get(name="hedged form")
    assert bot.params["hedge_perp"] == {"leverage": 5, "wallet": "300"} and "maker_perp" not in bot.params

    page = html.unescape(client.get(reverse("bot-detail", args=[bot.pk])).content.decode())
    shown = re.search(r'<textarea id="id-params.hedge_perp" name="params.hedge_perp"[^>]*>(.*?)</textarea>', page, re.S)
    assert json.loads(shown.group(1)) == {"leverage": 5, "wallet": "300"}
    config = {k: v for k, v in form.items() if k.startswith("params.")} | {
        "name": bot.name,
        "strategy": "hedged_maker",
        "params_for": "hedged_maker",
        "risk.max_position_base": "0.5",
    }
    refused = client.post(reverse("bot-config", args=[bot.pk]), {**config, "params.hedge_perp": '{"wallet": "301"}'})
    assert refused.status_code == 400
    assert (
        "wallet: 301 USDT is more than this paper account has for it"
        in _field_errors(html.unescape(refused.content.decode()), "params.hedge_perp")[0]
    )
    bot.refresh_from_db()
    assert bot.config_version == 1
    kept = client.post(reverse("bot-config", args=[bot.pk]), {**config, "params.hedge_perp": shown.group(1)})
    assert kept.status_code == 302
    bot.refresh_from_db()
    assert bot.params["hedge_perp"] == {"leverage": 5, "wallet": "300"}
