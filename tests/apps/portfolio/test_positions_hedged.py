"""Positions by account (``apps.portfolio.positions``, the overview and
``GET /api/v1/portfolio/positions/``) for a perp-to-perp hedged bot: its maker leg is listed on
the maker's account and its hedge leg on the hedge account, each with that leg's own position —
from the leg's fills while the bot is stopped, from the running bot's status (``hedged.hedge_perp``
for the hedge leg) while it runs. Real PostgreSQL and Redis."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from apps.bots.models import Bot
from apps.exchanges.models import Market
from apps.exchanges.services import exchange_account_create
from tests.apps.bots.factories import api
from tests.apps.dashboard.conftest import client_for

pytestmark = pytest.mark.django_db

PERP = {"base": "BTC", "quote": "USDT", "tick_size": "0.1", "lot_size": "0.001", "min_notional": "5",
        "maker_fee": "0.0002", "taker_fee": "0.0005", "kind": "linear", "contract_size": "1", "settle": "USDT",
        "max_leverage": 50}  # fmt: skip


def _perp_market(venue: str) -> Market:
    market, _ = Market.objects.update_or_create(venue=venue, symbol="BTC/USDT:USDT", defaults=PERP)
    return market


def _fill(bot, account, market, side: str, qty: str, trade_id: str, order_cid: str | None = None):
    from apps.orders.models import Fill, Order

    order = None
    if order_cid:
        order = Order.objects.create(bot=bot, account=account, market=market, client_order_id=order_cid, side=side,
                                     price=Decimal("60000"), quantity=Decimal(qty), status="filled")  # fmt: skip
    return Fill.objects.create(bot=bot, account=account, order=order, ts=timezone.now(), side=side,
                               price=Decimal("60000"), quantity=Decimal(qty), fee=Decimal("0"),
                               venue_trade_id=trade_id)  # fmt: skip


@pytest.fixture
def hedged(trader):
    gamma, delta = _perp_market("sim:gamma"), _perp_market("sim:delta")
    maker_acct = exchange_account_create(owner=trader, label="gamma perps", venue="sim:gamma",
                                         paper_balances={"USDT": "100000"})  # fmt: skip
    hedge_acct = exchange_account_create(owner=trader, label="delta perps", venue="sim:delta",
                                         paper_balances={"USDT": "100000"})  # fmt: skip
    bot = Bot.objects.create(owner=trader, name="perp hedged", exchange_account=maker_acct, market=gamma,
                             strategy="hedged_maker", risk={},
                             params={"hedge_account": hedge_acct.pk, "hedge_market": delta.pk})  # fmt: skip
    # the maker bought 0.005 on gamma, the hedge sold 0.004 and then 0.001 on delta
    _fill(bot, maker_acct, gamma, "buy", "0.005", "m1", "abcm-1")
    _fill(bot, hedge_acct, delta, "sell", "0.004", "h1", "abch-1")
    _fill(bot, hedge_acct, delta, "sell", "0.001", "h2", "abch-2")
    return bot, maker_acct, hedge_acct


def test_each_leg_of_a_stopped_hedged_bot_is_listed_on_its_own_account_with_its_own_fills(trader, hedged, clean_redis):
    bot, _, _ = hedged
    rows = {r["label"]: r for r in api(trader).get("/api/v1/portfolio/positions/").json()}
    [maker] = rows["gamma perps"]["perp"]
    [hedge] = rows["delta perps"]["perp"]
    assert (maker["bot"], maker["leg"], maker["position_contracts"], maker["live"]) == (bot.pk, "maker", "0.005", False)
    assert (hedge["bot"], hedge["leg"], hedge["position_contracts"], hedge["live"]) == (
        bot.pk,
        "hedge",
        "-0.005",
        False,
    )
    page = client_for(trader).get(reverse("overview")).content.decode()
    assert f'<tr data-bot="{bot.pk}" data-leg="hedge">' in page and "hedge leg" in page
    assert '<td class="r contracts">-0.005</td>' in page and '<td class="r contracts">0.005</td>' in page
    # a paper derivatives account's balance is its deposit, and says so
    assert ">Deposit</span>" in page and "paper derivatives accounts: their deposit" in page


def test_a_running_hedged_bots_hedge_leg_shows_the_hedge_legs_live_figures(trader, hedged, clean_redis):
    from apps.dashboard.live import bot_status_key

    bot, _, _ = hedged
    leg = {"position_contracts": "-0.005", "entry_price": "60010.5", "mark_price": "60001.0", "unrealized": "0.0475",
           "realized": "1.25", "fees": "0.15", "leverage": 5, "margin_mode": "isolated", "margin_used": "60.01",
           "margin_free": "99940.1", "liquidation_price": "71900.1", "liquidation_distance": 0.1983,
           "funding": "-0.01", "settle": "USDT"}  # fmt: skip
    maker = dict(leg, position_contracts="0.005", entry_price="59990.0", liquidation_price="48000.0")
    status = {"type": "status", "state": "running", "ts": 1, "perp": maker,
              "hedged": {"maker_perp": maker, "hedge_perp": leg}}  # fmt: skip
    clean_redis.set(bot_status_key(bot.pk), json.dumps(status))
    rows = {r["label"]: r for r in api(trader).get("/api/v1/portfolio/positions/").json()}
    [m] = rows["gamma perps"]["perp"]
    [h] = rows["delta perps"]["perp"]
    assert (m["live"], m["position_contracts"], m["liquidation_price"]) == (True, "0.005", "48000.0")
    assert (h["live"], h["leg"], h["position_contracts"], h["entry_price"], h["liquidation_price"]) == (
        True, "hedge", "-0.005", "60010.5", "71900.1")  # fmt: skip
    assert h["liquidation_distance_pct"] == "19.83"
    assert (h["realized"], h["fees"], h["margin_free"]) == ("1.25", "0.15", "99940.1")
    page = client_for(trader).get(reverse("overview")).content.decode()
    assert '<td class="r realized"><span class="pos">+1.25</span> / 0.15</td>' in page
    assert '<td class="r margin-free">99940.1</td>' in page


def test_another_users_bot_naming_my_account_as_its_hedge_is_not_listed_on_it(
    trader, other_trader, hedged, clean_redis
):
    bot, _, hedge_acct = hedged
    theirs = exchange_account_create(owner=other_trader, label="their gamma", venue="sim:gamma",
                                     paper_balances={"USDT": "1000"})  # fmt: skip
    Bot.objects.create(owner=other_trader, name="forged hedge", exchange_account=theirs, market=bot.market,
                       strategy="hedged_maker", risk={},
                       params={"hedge_account": hedge_acct.pk, "hedge_market": bot.params["hedge_market"]})  # fmt: skip
    mine = {r["label"]: r for r in api(trader).get("/api/v1/portfolio/positions/").json()}
    assert [r["bot_name"] for r in mine["delta perps"]["perp"]] == ["perp hedged"]
    theirs_rows = {r["label"]: r for r in api(other_trader).get("/api/v1/portfolio/positions/").json()}
    assert set(theirs_rows) == {"their gamma"}
    assert [(r["bot_name"], r["leg"]) for r in theirs_rows["their gamma"]["perp"]] == [("forged hedge", "maker")]
