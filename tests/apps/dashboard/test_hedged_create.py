"""The new-bot form offers hosted hedged bots (strategy ``hedged_maker``): the hedge leg's fields,
refusals by field (the rules of apps/bots/hedged.py), and a bot created with both legs."""

from __future__ import annotations

import html

import pytest
from django.urls import reverse

from apps.bots.models import Bot
from tests.apps.bots.factories import make_account, sim_market
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
    assert f"{hedge_account.pk} = hedge paper · sim:beta" in html.unescape(page)  # the ids the fields take
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
