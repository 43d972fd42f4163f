"""The beat's position reconciliation (``workers.perp_reconcile``) of hedged bots' live perpetual
legs, against the fake Binance USD-M server through the real ccxt ``binanceusdm`` class: the maker
leg and the hedge leg are each compared on their own account with the fills of their own client-id
family (``<prefix>m-`` / ``<prefix>h-``); a difference on two sweeps in a row is one incident
naming the leg, not repeated; a bot a host runs is left to its loop; a paper leg is not read."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from tests.workers.test_live_perp import SYMBOL, USDM_MARKET, usdm  # noqa: F401 - fixture
from tests.workers.test_live_venue import fake_binance  # noqa: F401 - fixture
from tests.workers.test_perp_reconcile_sweep import ZERO, position_reads, set_exchange_position

pytestmark = [pytest.mark.django_db(transaction=True)]


def _account(user, label: str, kind: str = "live", venue: str = "binanceusdm"):
    from apps.exchanges.services import exchange_account_create

    if kind == "paper":
        return exchange_account_create(owner=user, label=label, venue=venue, paper_balances={"USDT": "10000"})
    return exchange_account_create(
        owner=user, label=label, kind="live", venue=venue, api_key=f"{label}-key", api_secret=f"{label}-secret"
    )


def _hedged_bot(maker_account, maker_market, hedge_account, hedge_market):
    """A hedged bot row (its configuration is not what is under test here)."""
    from apps.bots.models import Bot

    bot = Bot.objects.create(
        owner=maker_account.owner, name=f"hedged {time.time_ns()}", exchange_account=maker_account,
        market=maker_market, strategy="hedged_maker",
        params={"hedge_account": hedge_account.pk, "hedge_market": hedge_market.pk, "order_amount": "0.004",
                "min_profitability": "0.002"},
        risk={"max_position_base": "1"},
    )  # fmt: skip
    Bot.objects.filter(pk=bot.pk).update(client_id_prefix=f"mm{bot.pk}x")
    bot.refresh_from_db()
    return bot


def _fill(bot, account, leg: str, n: int, side: str, qty: str) -> None:
    from apps.orders.services import fills_record
    from workers import records

    fills_record(
        [{"ts": records.ns_to_dt(time.time_ns()), "account_id": account.pk, "bot_id": bot.pk,
          "client_order_id": f"{bot.client_id_prefix}{leg}-{n}", "venue_trade_id": f"t-{bot.pk}-{leg}{n}",
          "side": side, "price": Decimal("60000"), "quantity": Decimal(qty), "fee": Decimal(0),
          "fee_currency": "USDT", "liquidity": "maker"}],
        count_new=True,
    )  # fmt: skip


def _perp_market():
    from apps.exchanges.models import Market

    market, _ = Market.objects.update_or_create(
        venue="binanceusdm",
        symbol=SYMBOL,
        defaults={"base": "BTC", "quote": "USDT", "min_notional": "5", **USDM_MARKET},
    )
    market.refresh_from_db()
    return market


def test_both_live_perp_legs_are_compared_each_on_its_account_and_a_difference_is_one_incident(
    fake_binance,  # noqa: F811
    usdm,  # noqa: F811
    clean_redis,
    redis_client,
):
    from apps.accounts.models import User
    from apps.core.models import Incident
    from workers import keys, perp_reconcile

    user = User.objects.create_user(username=f"hpr{time.time_ns()}", password="pw-12345678")
    maker_account, hedge_account = _account(user, "maker"), _account(user, "hedge")
    perp = _perp_market()
    bot = _hedged_bot(maker_account, perp, hedge_account, perp)
    _fill(bot, maker_account, "m", 1, "buy", "0.004")  # the maker leg: long 0.004 on its account
    _fill(bot, hedge_account, "h", 1, "sell", "0.004")  # the hedge leg: short 0.004 on the other
    # The fake keeps one position per symbol whatever the keys: both accounts read +0.004, so the
    # maker leg agrees and the hedge leg (booked -0.004) does not: each leg is judged on its own.
    set_exchange_position(fake_binance, usdm, "0.004")
    reads = position_reads(fake_binance)
    assert perp_reconcile.run() == {**ZERO, "pairs": 2, "agree": 1, "first": 1}
    assert position_reads(fake_binance) == reads + 2  # each account read once
    assert not Incident.objects.exists()
    assert perp_reconcile.run() == {**ZERO, "pairs": 2, "agree": 1, "reported": 1}
    incident = Incident.objects.get()
    assert (incident.bot_id, incident.account_id, incident.kind) == (bot.pk, hedge_account.pk, "position_mismatch")
    assert incident.data == {"ours": "-0.004", "venue": "0.004", "tolerance": "0", "legs": [f"{bot.pk}:hedge"]}
    assert incident.message == (
        "BTC/USDT:USDT: our position is -0.004 contracts, the venue's 0.004 (difference -0.008, tolerance 0)"
        f" (the hedge leg of hedged bot {bot.pk})"
    )
    assert perp_reconcile.run() == {**ZERO, "pairs": 2, "agree": 1, "known": 1}  # not repeated
    assert Incident.objects.count() == 1

    # The exchange moves to the hedge leg's figure: now the maker leg differs, on its own account.
    set_exchange_position(fake_binance, usdm, "-0.004")
    assert perp_reconcile.run() == {**ZERO, "pairs": 2, "agree": 1, "first": 1}
    assert perp_reconcile.run() == {**ZERO, "pairs": 2, "agree": 1, "reported": 1}
    maker_incident = Incident.objects.exclude(pk=incident.pk).get()
    assert maker_incident.account_id == maker_account.pk
    assert maker_incident.data["legs"] == [f"{bot.pk}:maker"] and maker_incident.data["ours"] == "0.004"
    assert maker_incident.message.endswith(f"(the maker leg of hedged bot {bot.pk})")

    # While a host runs the bot, its loop reads its legs: neither pair is read or judged.
    redis_client.set(keys.bot_lease(bot.pk), "some-host:1")
    reads = position_reads(fake_binance)
    assert perp_reconcile.run() == {**ZERO, "pairs": 2, "hosted": 2}
    assert position_reads(fake_binance) == reads


def test_a_live_hedge_leg_is_summed_with_the_accounts_perp_bot_and_a_paper_maker_leg_is_not_read(
    fake_binance,  # noqa: F811
    usdm,  # noqa: F811
    clean_redis,
):
    from apps.accounts.models import User
    from apps.bots.models import Bot
    from apps.core.models import Incident
    from apps.exchanges.models import Market
    from workers import perp_reconcile

    user = User.objects.create_user(username=f"hpr{time.time_ns()}", password="pw-12345678")
    live = _account(user, "usdm")
    paper = _account(user, "paper spot", kind="paper", venue="sim:alpha")
    spot, _ = Market.objects.get_or_create(
        venue="sim:alpha", symbol="BTC/USDT",
        defaults={"base": "BTC", "quote": "USDT", "tick_size": "0.01", "lot_size": "0.0001"},
    )  # fmt: skip
    perp = _perp_market()
    bot = _hedged_bot(paper, spot, live, perp)
    single = Bot.objects.create(
        owner=user, name="single", exchange_account=live, market=perp, strategy="fixed_spread", params={}, risk={}
    )
    _fill(bot, paper, "m", 1, "buy", "0.003")  # the paper maker leg: never read here
    _fill(bot, live, "h", 1, "sell", "0.003")
    from apps.orders.services import fills_record
    from workers import records

    fills_record(
        [{"ts": records.ns_to_dt(time.time_ns()), "account_id": live.pk, "bot_id": single.pk,
          "client_order_id": f"mm{single.pk}-1", "venue_trade_id": "t-single-1", "side": "buy",
          "price": Decimal("60000"), "quantity": Decimal("0.001"), "fee": Decimal(0), "fee_currency": "USDT",
          "liquidity": "maker"}],
        count_new=True,
    )  # fmt: skip
    # one position on the account and market: the bot's -0.003 and the single bot's +0.001
    set_exchange_position(fake_binance, usdm, "-0.002")
    assert perp_reconcile.run() == {**ZERO, "pairs": 1, "agree": 1}
    set_exchange_position(fake_binance, usdm, "-0.003")
    assert perp_reconcile.run() == {**ZERO, "pairs": 1, "first": 1}
    assert perp_reconcile.run() == {**ZERO, "pairs": 1, "reported": 1}
    incident = Incident.objects.get()
    assert incident.account_id == live.pk and incident.data["ours"] == "-0.002"
    assert incident.data["legs"] == [f"{bot.pk}:hedge"]
    assert f"bot {single.pk}" in incident.message and f"the hedge leg of hedged bot {bot.pk}" in incident.message
