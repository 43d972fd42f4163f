"""A hosted paper bot on a live ccxt venue's perpetual market: a paper account on ``binanceusdm``
(ccxt ``defaultType`` swap) trading ``BTC/USDT:USDT`` on the exchange's book. The loop is stepped
as in ``test_perp_hosted`` through the shipped USD-M recording's events, published on the
``binanceusdm`` feed stream as the live feed would publish them (the feed itself is tested in
``tests/connectors/test_ccxt_feed.py``): the bot quotes and fills in contracts, keeps the
position with its margin, liquidation price and funding (the constant rate given), and its
status carries the perpetual figures. No key and no request to the exchange: paper."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from tests.workers.test_perp_hosted import MINUTES, SYMBOL, hosted_run, usdm_feed_events

pytestmark = [pytest.mark.django_db(transaction=True)]

VENUE = "binanceusdm"


def test_a_paper_perp_bot_on_a_ccxt_venues_perpetual_trades_in_contracts_with_margin_and_funding(host):
    from apps.accounts.models import User
    from apps.bots.models import Bot
    from apps.bots.services import bot_create
    from apps.exchanges.models import Market
    from apps.exchanges.services import exchange_account_create
    from apps.orders.models import Fill
    from workers import records

    user = User.objects.create_user(username="paper-usdm", password="pw-12345678")
    account = exchange_account_create(owner=user, label="paper on binanceusdm", venue=VENUE,
                                      paper_balances={"USDT": "5000"})  # fmt: skip
    assert account.kind == "paper" and account.default_type == "swap"
    market, _ = Market.objects.update_or_create(
        venue=VENUE, symbol=SYMBOL,
        defaults={"base": "BTC", "quote": "USDT", "tick_size": "0.1", "lot_size": "0.001", "min_notional": "100",
                  "maker_fee": "0.0002", "taker_fee": "0.0005", "kind": "linear", "contract_size": "1",
                  "settle": "USDT", "max_leverage": 125},
    )  # fmt: skip
    market.refresh_from_db()
    bot = bot_create(
        owner=user, name="paper usdm bidder", exchange_account=account, market=market, strategy="fixed_spread",
        params={"order_amount": "0.01", "bid_spread": "0.00002", "ask_spread": "0.05", "order_levels": 1,
                "refresh_time": "1"},
        risk={"max_order_size": "0.02", "max_position_base": "5",
              "perp": {"leverage": 3, "margin_mode": "isolated", "funding_rate": "0.0001", "wallet": "4000",
                       "limits": {"max_position_contracts": "0.05"}}},
    )  # fmt: skip
    Bot.objects.filter(pk=bot.pk).update(desired_state="running")
    setup = records.bot_setup(bot.pk)
    assert setup.venue == VENUE and setup.account_kind == "paper"
    events = usdm_feed_events(setup.instrument, MINUTES)

    out = asyncio.run_coroutine_threadsafe(hosted_run(host, bot.pk, events), host.loop).result(600)
    host.drain_writers(60)
    perp = out["perp"]

    fills = list(Fill.objects.filter(bot=bot, account=account).order_by("ts", "id"))
    assert fills, "the bot never filled"
    net = sum((f.quantity if f.side == "buy" else -f.quantity) for f in fills)
    assert Decimal(perp.position.net_lots) * out["lot"] == net and 0 < net <= Decimal("0.05")
    assert perp.leverage == 3 and perp.funding_source == "constant rate (bot configuration)"
    figures = perp.snapshot()
    assert Decimal(figures["position_contracts"]) == net
    assert Decimal(figures["margin_used"]) > 0 and Decimal(figures["liquidation_price"]) > 0
    # isolated at 3x: the liquidation price of a long sits about a third below the entry
    entry, liq = Decimal(figures["entry_price"]), Decimal(figures["liquidation_price"])
    assert Decimal("0.60") < liq / entry < Decimal("0.70"), (entry, liq)
    assert figures["settle"] == "USDT" and Decimal(figures["funding_rate"]) == Decimal("0.0001")
    assert perp.wallet == 4000  # its allocation of the paper account's 5,000 USDT


def test_the_paper_only_settings_are_refused_on_a_live_account_of_the_same_market():
    """A wallet allocation and a constant funding rate are a paper perpetual's own settings; on a
    live account the exchange's balance and funding rate are used, so both are refused by name."""
    from apps.accounts.errors import FieldErrors
    from apps.accounts.models import User
    from apps.bots.services import bot_create
    from apps.exchanges.models import Market
    from apps.exchanges.services import exchange_account_create

    user = User.objects.create_user(username="live-usdm", password="pw-12345678")
    live = exchange_account_create(owner=user, label="live usdm", kind="live", venue=VENUE, api_key="k",
                                   api_secret="s")  # fmt: skip
    market, _ = Market.objects.update_or_create(
        venue=VENUE, symbol=SYMBOL,
        defaults={"base": "BTC", "quote": "USDT", "tick_size": "0.1", "lot_size": "0.001", "min_notional": "100",
                  "kind": "linear", "contract_size": "1", "settle": "USDT", "max_leverage": 125},
    )  # fmt: skip
    market.refresh_from_db()
    with pytest.raises(FieldErrors) as refused:
        bot_create(owner=user, name="live", exchange_account=live, market=market, strategy="fixed_spread",
                   params={"order_amount": "0.01"},
                   risk={"perp": {"leverage": 3, "funding_rate": "0.0001", "wallet": "100"}})  # fmt: skip
    errors = refused.value.errors["risk"]
    assert "reads the funding rate from the exchange" in errors["perp.funding_rate"][0]
    assert "wallet is the exchange account's balance" in errors["perp.wallet"][0]
