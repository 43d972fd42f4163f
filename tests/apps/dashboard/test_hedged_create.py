"""The new-bot form offers hosted hedged bots (strategy ``hedged_maker``): the hedge leg picked from
lists (the user's own accounts, the markets of the chosen hedge account's venue), refusals by field
(the rules of apps/bots/hedged.py), a bot created with both legs; the bot page's configuration form
edits and saves a hedged bot's configuration."""

from __future__ import annotations

import html
import re

import pytest
from django.urls import reverse

from apps.bots.models import Bot
from apps.exchanges.models import Market
from tests.apps.bots.factories import api, make_account, make_bot, sim_market
from tests.apps.dashboard.conftest import client_for

pytestmark = pytest.mark.django_db


def test_new_bot_form_creates_a_hedged_bot_and_names_bad_fields(trader):
    maker_account = make_account(trader, label="maker paper", venue="sim:alpha")
    hedge_account = make_account(trader, label="hedge paper", venue="sim:beta")
    maker_market, hedge_market = sim_market("sim:alpha"), sim_market("sim:beta")
    client = client_for(trader)
    page = client.get(reverse("bot-create") + "?strategy=hedged_maker").content.decode()
    assert 'value="hedged_maker"' in page
    for name in ("hedge_account", "hedge_market", "min_profitability", "max_unhedged", "requote_ticks"):
        assert f'name="params.{name}"' in page, name
    # the hedge leg must be chosen; max_unhedged and max_position default to figures of other
    # fields (twice the order amount; risk max_position_base), so the browser must not demand them
    for name, required in (("hedge_account", True), ("hedge_market", True), ("max_unhedged", False),
                           ("max_position", False)):  # fmt: skip
        label = re.search(rf'<label for="id-params\.{name}">(.*?)</label>', page, re.S).group(1)
        assert ('class="req"' in label) is required, (name, label)
        if not required:  # a text input the browser would refuse to submit empty
            tag = re.search(rf'<input[^>]*name="params\.{name}"[^>]*>', page).group(0)
            assert " required" not in tag, (name, tag)
    assert _options(page, "hedge_account") == {
        str(maker_account.pk): "maker paper · sim:alpha (paper)",
        str(hedge_account.pk): "hedge paper · sim:beta (paper)",
    }
    form = {
        "name": "hedged one",
        "exchange_account": maker_account.pk,
        "market": maker_market.pk,
        "strategy": "hedged_maker",
        "params.hedge_account": hedge_account.pk,
        "params.hedge_market": hedge_market.pk,
        "params.order_amount": "0.002",
        "params.min_profitability": "0.001",
    }
    # refused by field: the hedge market is the maker's own, the edge below the two legs' fees,
    # the hedge account on another venue than the hedge market
    bad = {**form, "params.hedge_market": maker_market.pk, "params.min_profitability": "0.0001"}
    response = client.post(reverse("bot-create"), bad)
    body = html.unescape(response.content.decode())
    assert response.status_code == 400
    assert f"{maker_market.pk!r} is the maker market itself" in body
    assert not Bot.objects.filter(owner=trader, name="hedged one").exists()
    response = client.post(reverse("bot-create"), {**form, "params.min_profitability": "0.0001"})
    body = html.unescape(response.content.decode())
    assert response.status_code == 400 and "'0.0001' is below the two venues' fees" in body, body[-3000:]
    response = client.post(reverse("bot-create"), {**form, "params.hedge_account": maker_account.pk})
    body = html.unescape(response.content.decode())
    assert response.status_code == 400 and "(the hedge market's venue)" in body
    assert not Bot.objects.filter(owner=trader, name="hedged one").exists()
    # accepted: both legs stored in the params, as the API would
    response = client.post(reverse("bot-create"), form)
    bot = Bot.objects.get(owner=trader, name="hedged one")
    assert response.status_code == 302 and response["Location"] == reverse("bot-detail", args=[bot.pk])
    assert bot.strategy == "hedged_maker" and bot.market == maker_market
    assert bot.params["hedge_account"] == hedge_account.pk and bot.params["hedge_market"] == hedge_market.pk
    assert bot.params["min_profitability"] == "0.001" and bot.params["order_amount"] == "0.002"


def _options(page: str, name: str) -> dict[str, str]:
    """The options (value -> label) of the select ``params.<name>`` of a rendered page."""
    select = re.search(rf'<select id="id-params\.{name}" name="params\.{name}">(.*?)</select>', page, re.S)
    assert select is not None, f"no select for params.{name}"
    return {
        v: html.unescape(label)
        for v, label in re.findall(r'<option value="([^"]*)"[^>]*>([^<]*)</option>', select.group(1))
    }


def _selected(page: str, name: str) -> str | None:
    select = re.search(rf'<select id="id-params\.{name}" name="params\.{name}">(.*?)</select>', page, re.S)
    found = re.search(r'<option value="([^"]*)" selected', select.group(1))
    return found.group(1) if found else None


def test_the_hedge_leg_is_picked_from_the_users_accounts_and_that_venues_markets(trader, other_trader):
    maker_account = make_account(trader, label="maker paper", venue="sim:alpha")
    hedge_account = make_account(trader, label="hedge paper", venue="sim:beta")
    theirs = make_account(other_trader, label="their paper", venue="sim:beta")
    maker_market, beta_btc = sim_market("sim:alpha"), sim_market("sim:beta")
    beta_eth = Market.objects.create(venue="sim:beta", symbol="ETH/USDT", base="ETH", quote="USDT", tick_size="0.01",
                                     lot_size="0.001")  # fmt: skip
    Market.objects.create(venue="sim:beta", symbol="SOL/USDT", base="SOL", quote="USDT", tick_size="0.01",
                          lot_size="0.01", active=False)  # fmt: skip
    client = client_for(trader)
    url = reverse("bot-create")
    # nothing chosen yet: the first of the user's accounts, so the markets of its venue (sim:alpha)
    page = client.get(url + "?strategy=hedged_maker").content.decode()
    assert set(_options(page, "hedge_account")) == {str(maker_account.pk), str(hedge_account.pk)}
    assert str(theirs.pk) not in _options(page, "hedge_account")  # another user's account is not listed
    assert _options(page, "hedge_market") == {str(maker_market.pk): "BTC/USDT · sim:alpha"}
    # the hedge account changed (the page reloads the parameters): that venue's active markets
    form = {"name": "h", "exchange_account": maker_account.pk, "market": maker_market.pk, "strategy": "hedged_maker",
            "params.hedge_account": hedge_account.pk, "refresh": "1"}  # fmt: skip
    page = client.post(url, form).content.decode()
    assert _selected(page, "hedge_account") == str(hedge_account.pk)
    assert _options(page, "hedge_market") == {
        str(beta_btc.pk): "BTC/USDT · sim:beta",
        str(beta_eth.pk): "ETH/USDT · sim:beta",
    }
    assert not Bot.objects.filter(owner=trader).exists()  # a reload creates nothing
    # another user's account id, posted by hand: refused at its field with the value and what is accepted
    form = {**form, "refresh": "", "params.hedge_account": theirs.pk, "params.hedge_market": beta_btc.pk,
            "params.order_amount": "0.002", "params.min_profitability": "0.001"}  # fmt: skip
    response = client.post(url, form)
    page = html.unescape(response.content.decode())
    assert response.status_code == 400
    error = re.search(r'data-field="params.hedge_account">([^<]*)<', page).group(1)
    assert error == f"{theirs.pk!r} is not accepted; accepted: the id of one of your accounts"
    assert not Bot.objects.filter(owner=trader).exists()
    # an id that is not a number (a forged select) is named too
    response = client.post(url, {**form, "params.hedge_account": "abc"})
    page = html.unescape(response.content.decode())
    assert response.status_code == 400 and "'abc' is not accepted; accepted: the id of one of your accounts" in page
    # a market of another asset on the hedge venue: refused (does not list the maker's pair)
    response = client.post(url, {**form, "params.hedge_account": hedge_account.pk, "params.hedge_market": beta_eth.pk})
    assert response.status_code == 400 and "does not list BTC/USDT" in html.unescape(response.content.decode())
    response = client.post(url, {**form, "params.hedge_account": hedge_account.pk})
    bot = Bot.objects.get(owner=trader, name="h")
    assert response.status_code == 302
    assert (bot.params["hedge_account"], bot.params["hedge_market"]) == (hedge_account.pk, beta_btc.pk)


def _hedged_bot(trader):
    maker_account = make_account(trader, label="maker paper", venue="sim:alpha")
    hedge_account = make_account(trader, label="hedge paper", venue="sim:beta")
    params = {"hedge_account": hedge_account.pk, "hedge_market": sim_market("sim:beta").pk,
              "order_amount": "0.002", "min_profitability": "0.001"}  # fmt: skip
    bot = make_bot(trader, name="hedged", account=maker_account, strategy="hedged_maker", params=params)
    return bot, hedge_account


def test_the_bot_page_edits_and_saves_a_hedged_bots_configuration(trader, other_trader):
    bot, hedge_account = _hedged_bot(trader)
    theirs = make_account(other_trader, label="their paper", venue="sim:beta")
    client = client_for(trader)
    page = client.get(reverse("bot-detail", args=[bot.pk])).content.decode()
    assert '<option value="hedged_maker" selected>' in page  # the strategy list offers it, chosen
    assert _selected(page, "hedge_account") == str(hedge_account.pk)
    assert _selected(page, "hedge_market") == str(bot.params["hedge_market"])
    assert 'name="params_for" value="hedged_maker"' in page
    form = {"name": "hedged", "strategy": "hedged_maker", "params_for": "hedged_maker",
            "params.hedge_account": hedge_account.pk, "params.hedge_market": bot.params["hedge_market"],
            "params.order_amount": "0.004", "params.min_profitability": "0.0012", "params.hedge_mode": "limit",
            "params.max_unhedged": "0.008", "params.requote_ticks": "5", "risk.max_position_base": "1"}  # fmt: skip
    # refused by field: below the two venues' fees, and another user's hedge account
    response = client.post(reverse("bot-config", args=[bot.pk]), {**form, "params.min_profitability": "0.0001"})
    body = html.unescape(response.content.decode())
    assert response.status_code == 400 and "'0.0001' is below the two venues' fees" in body
    response = client.post(reverse("bot-config", args=[bot.pk]), {**form, "params.hedge_account": theirs.pk})
    body = html.unescape(response.content.decode())
    assert response.status_code == 400
    assert f"{theirs.pk!r} is not accepted; accepted: the id of one of your accounts" in body
    bot.refresh_from_db()
    assert bot.config_version == 1 and bot.params["min_profitability"] == "0.001"
    # saved: a new configuration version with the hedge leg kept as ids
    response = client.post(reverse("bot-config", args=[bot.pk]), form)
    assert response.status_code == 302, html.unescape(response.content.decode())[-2000:]
    bot.refresh_from_db()
    assert bot.config_version == 2 and bot.strategy == "hedged_maker"
    assert bot.params == {
        "hedge_account": hedge_account.pk,
        "hedge_market": sim_market("sim:beta").pk,
        "order_amount": "0.004",
        "min_profitability": "0.0012",
        "hedge_mode": "limit",
        "max_unhedged": "0.008",
        "requote_ticks": 5,
    }  # fmt: skip (empty inputs: defaults)
    page = client.get(reverse("bot-detail", args=[bot.pk])).content.decode()
    assert _selected(page, "hedge_mode") == "limit" and 'value="0.0012"' in page


def test_the_api_refuses_another_users_hedge_account_on_a_config_change(trader, other_trader):
    bot, _hedge_account = _hedged_bot(trader)
    theirs = make_account(other_trader, label="their paper", venue="sim:beta")
    response = api(trader).patch(
        f"/api/v1/bots/{bot.pk}/", {"params": {**bot.params, "hedge_account": theirs.pk}}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["params"]["hedge_account"] == [
        f"{theirs.pk!r} is not accepted; accepted: the id of one of your accounts"
    ]


def test_hedged_figures_are_shown_as_plain_decimals(trader):
    """Stored figures carry 18 decimals and a quantized zero prints as ``0E-12``: the overview and the
    bot page show plain decimals (``0``, ``0.24``, ``0.023964822``)."""
    import json
    from datetime import UTC, datetime
    from decimal import Decimal

    from apps.bots.models import HedgeFillAttribution
    from apps.core.health import redis_client
    from apps.dashboard.live import bot_status_key

    maker_account = make_account(trader, label="maker paper", venue="sim:alpha")
    hedge_account = make_account(trader, label="hedge paper", venue="sim:beta")
    hedge_market = sim_market("sim:beta")
    bot = make_bot(
        trader,
        account=maker_account,
        strategy="hedged_maker",
        params={"hedge_account": hedge_account.pk, "hedge_market": hedge_market.pk, "order_amount": "0.002"},
    )
    status = {
        "state": "running",
        "hedged": {
            "maker": {"venue": "sim:alpha", "symbol": "BTC/USDT", "position": "0.2400"},
            "hedge": {"venue": "sim:beta", "symbol": "BTC/USDT", "position": "-0.2400", "in_flight": 0},
            "exposure": "0E-12",
            "halted": "",
        },
    }
    redis_client().set(bot_status_key(bot.pk), json.dumps(status))
    HedgeFillAttribution.objects.create(
        bot=bot, maker_trade_id="t1", ts=datetime(2026, 12, 7, tzinfo=UTC), side="buy", price=Decimal("59829.34"),
        quantity=Decimal("0.002"), expected_hedge_price=Decimal("59877.25"), hedge_vwap=Decimal("59877.25"),
        hedged_quantity=Decimal("0.002"), netted_quantity=Decimal(0), open_quantity=Decimal(0),
        expected_edge=Decimal("0.023964822"), realized_edge=Decimal("0.023964822"), slippage_bps=Decimal(0),
        hedge_latency_ms=Decimal("7.6"),
    )  # fmt: skip
    try:
        client = client_for(trader)
        overview = html.unescape(client.get(reverse("overview")).content.decode())
        # the figures sit in spans the bot socket's hedge_leg message updates (static/js/hedge_leg.js)
        assert "maker 0.24 · hedge on sim:beta BTC/USDT -0.24 · net 0" in re.sub(r"<[^>]+>", "", overview)
        page = html.unescape(client.get(reverse("bot-detail", args=[bot.pk])).content.decode())
        assert re.search(r'<b id="hedged-exposure">0</b>', page)
        row = re.search(r"<tr><td>expected_edge</td>(.*?)</tr>", page).group(1)
        assert re.findall(r'<td class="r">([^<]*)</td>', row) == [
            "1",
            "0.023964822",
            "0.023964822",
            "0.023964822",
            "0.023964822",
        ]
        assert "E-" not in overview + page
    finally:
        redis_client().delete(bot_status_key(bot.pk))
