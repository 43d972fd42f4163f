"""Hedge position mode in the portal: the new-bot form offers ``perp.position_mode`` (refused next
to its input when bad), and the perp card and the ``/perp/`` API figures show the long and the
short leg of a hedge-mode bot from its live status (the figures of a real PerpRisk)."""

from __future__ import annotations

import re

import pytest
from django.template.loader import render_to_string
from django.urls import reverse

from apps.bots.models import Bot
from tests.apps.bots.factories import api
from tests.apps.dashboard.conftest import client_for
from tests.apps.dashboard.test_perp_forms import _bot_post, _field_errors, usdm_account, usdm_market  # noqa: F401

pytestmark = pytest.mark.django_db


def test_the_new_bot_form_offers_the_position_mode_and_keeps_hedge(trader, usdm_account):  # noqa: F811
    client = client_for(trader)
    page = client.get(reverse("bot-create")).content.decode()
    assert 'name="perp.position_mode"' in page
    assert re.search(r'<option value="one_way"[^>]*>', page) and re.search(r'<option value="hedge"[^>]*>', page)
    refused = _bot_post(client, usdm_account, usdm_market(), **{"perp.position_mode": "dual"})
    assert refused.status_code == 400
    assert _field_errors(refused.content.decode(), "perp.position_mode") == [
        "&#x27;dual&#x27; is not accepted; accepted: one_way, hedge"
    ]
    created = _bot_post(client, usdm_account, usdm_market(), **{"perp.position_mode": "hedge"})
    assert created.status_code == 302
    assert Bot.objects.get(name="perp form bot").risk["perp"]["position_mode"] == "hedge"


def hedge_status() -> dict:
    from trading.contracts import ContractSpec, MarginMode, PositionMode
    from trading.events import Liquidity, OrderFilled
    from trading.instruments import Instrument, Side
    from trading.margin import BINANCE_USDM_BTCUSDT
    from trading.perp_risk import PerpRisk, PerpRiskLimits
    from trading.risk import NORMAL

    inst = Instrument.create(symbol="BTC/USDT:USDT", tick_size="0.1", lot_size="0.001", min_notional="5")
    spec = ContractSpec.create(kind="linear", contract_size=1, settle="USDT", max_leverage=125)
    risk = PerpRisk(
        PerpRiskLimits(), inst, spec, BINANCE_USDM_BTCUSDT, wallet="1000", leverage=10,
        margin_mode=MarginMode.ISOLATED, position_mode=PositionMode.HEDGE,
    )  # fmt: skip
    risk.hedge.remember("b", "long")
    risk.hedge.remember("a", "short")
    risk.on_fill(OrderFilled(1, "b", Side.BUY, 600_000, 4, 0, 0, Liquidity.MAKER, "t1"))
    risk.on_fill(OrderFilled(1, "a", Side.SELL, 610_000, 2, 0, 0, Liquidity.MAKER, "t2"))
    risk.evaluate(2, NORMAL, 2 * 605_000)
    return {"ts": 2, "perp": risk.snapshot() | {"margin_mode": "isolated"}}


def test_the_perp_card_and_api_figures_show_both_legs():
    from apps.dashboard.perp import perp_figures

    figures = perp_figures(hedge_status())
    assert figures["position_mode"] == "hedge" and figures["position_contracts"] == "0.002"
    long, short = figures["legs"]["long"], figures["legs"]["short"]
    assert (long["contracts"], long["entry_price"], long["unrealized"]) == ("0.004", "60000.00000000", "2.00000000")
    assert (short["contracts"], short["entry_price"], short["unrealized"]) == ("-0.002", "61000.00000000", "1.00000000")
    card = render_to_string("dashboard/_perp_card.html", {"perp": figures})
    assert '<span id="perp-position-mode">hedge</span>' in card
    assert re.search(r'<table class="small" id="perp-legs"[^>]*>', card).group(0).find("hidden") == -1
    assert '<td id="perp-long-contracts">0.004</td>' in card and '<td id="perp-short-contracts">-0.002</td>' in card
    assert '<td id="perp-long-entry">60000</td>' in card and '<td id="perp-short-margin-used">12.1</td>' in card
    one_way = render_to_string("dashboard/_perp_card.html", {"perp": {**figures, "legs": None}})
    assert re.search(r'<table class="small" id="perp-legs"[^>]*hidden>', one_way)


def test_the_perp_api_and_the_bot_page_show_both_legs_of_a_running_hedge_bot(trader, usdm_account, clean_redis):  # noqa: F811
    import json

    from apps.dashboard.live import bot_status_key

    bot = Bot.objects.create(owner=trader, name="hedge held", exchange_account=usdm_account, market=usdm_market(),
                             strategy="fixed_spread", params={}, risk={"perp": {"position_mode": "hedge"}})  # fmt: skip
    clean_redis.set(bot_status_key(bot.pk), json.dumps(hedge_status()))
    figures = api(trader).get(f"/api/v1/bots/{bot.pk}/perp/").json()
    assert figures["position_mode"] == "hedge" and figures["position_contracts"] == "0.002"
    assert figures["legs"]["long"]["contracts"] == "0.004" and figures["legs"]["short"]["entry_price"] == (
        "61000.00000000"
    )
    page = client_for(trader).get(reverse("bot-detail", args=[bot.pk])).content.decode()
    assert '<span id="perp-position-mode">hedge</span>' in page
    assert '<td id="perp-short-contracts">-0.002</td>' in page and '<td id="perp-long-unrealized">' in page
