"""A hosted perp-to-perp hedged bot (issue 19): a maker on the ``sim:gamma`` BTC/USDT:USDT linear
perpetual hedged on ``sim:delta``'s (both seeded by migration ``exchanges.0005``: contracts of 1
BTC in lots of 0.001), both paper accounts, run by a real in-process host on the real Redis and
PostgreSQL. The test publishes both books itself (as a feed would) and prints trades at the
maker's quote, so the figures are exact:

- the maker quotes from the hedge perp's book (bid walked for 2 contracts x (1 - 0.0008) down to a
  maker tick, ask up);
- a maker fill of 0.002 (2 contracts bought) is hedged at once with 2 contracts sold on the other
  perpetual; exposure 0;
- each leg keeps its own position, margin and leverage (the status's ``maker_perp`` /
  ``hedge_perp``), and each books the funding stored for its own market at its own mark: the long
  maker leg pays, the short hedge leg receives;
- the last PnL snapshot nets both legs (position 0), its funding and fees the two legs' sums.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tests.workers.helpers import wait_until
from tests.workers.test_hedged_legs import Books, _exposure, _open, _status

pytestmark = [pytest.mark.django_db(transaction=True)]

GAMMA, DELTA = "sim:gamma", "sim:delta"
PERP = "BTC/USDT:USDT"
MAKER_RATE, HEDGE_RATE = Decimal("0.0004"), Decimal("0.0001")


@pytest.fixture
def quiet_host(clean_redis):
    """A host that runs bots but no feeds: the test publishes the books itself."""
    from workers.host import Host

    h = Host(ttl_ms=3000, run_feeds=False)
    h.start_thread()
    assert h.started.wait(5)
    yield h
    h.stop()


def _perp(venue: str):
    from apps.exchanges.models import Market

    market, _ = Market.objects.update_or_create(
        venue=venue,
        symbol=PERP,
        defaults={"base": "BTC", "quote": "USDT", "tick_size": "0.1", "lot_size": "0.001", "min_notional": "0",
                  "maker_fee": "0.0002", "taker_fee": "0.0005", "active": True, "kind": "linear",
                  "contract_size": "1", "settle": "USDT", "max_leverage": 100},
    )  # fmt: skip
    market.refresh_from_db()
    return market


def _perp_perp_bot():
    from apps.accounts.models import User
    from apps.bots.services import bot_create
    from apps.exchanges.services import exchange_account_create

    maker_market, hedge_market = _perp(GAMMA), _perp(DELTA)
    user = User.objects.create_user(username=f"pp{time.time_ns()}", password="pw-12345678")
    maker_account = exchange_account_create(owner=user, label="gamma", venue=GAMMA, paper_balances={"USDT": "5000"})
    hedge_account = exchange_account_create(owner=user, label="delta", venue=DELTA, paper_balances={"USDT": "3000"})
    return bot_create(
        owner=user,
        name="perp-perp",
        exchange_account=maker_account,
        market=maker_market,
        strategy="hedged_maker",
        params={"hedge_account": hedge_account.pk, "hedge_market": hedge_market.pk, "order_amount": "0.002",
                "min_profitability": "0.0008", "max_unhedged": "0.004", "requote_ticks": 0,
                "stale_after_ms": 5000, "maker_perp": {"leverage": 10}, "hedge_perp": {"leverage": 5}},
        risk={},
    )  # fmt: skip


def test_the_seeded_sim_perpetuals_make_a_perp_to_perp_bot_valid(db):
    import importlib

    from django.apps import apps as registry

    from apps.bots import hedged
    from apps.exchanges.models import Market

    # the migration's seed (transactional tests before this one flush the seeded rows)
    importlib.import_module("apps.exchanges.migrations.0006_seed_sim_perpetuals").seed(registry, None)
    gamma = Market.objects.get(venue=GAMMA, symbol=PERP)
    delta = Market.objects.get(venue=DELTA, symbol=PERP)
    legs = hedged.legs_for(gamma, delta)
    assert legs.maker.contract.is_perpetual and legs.hedge.contract.is_perpetual
    assert legs.maker.contract.contract_size == legs.hedge.contract.contract_size == Decimal(1)


def test_perp_maker_hedged_on_another_perpetual_keeps_both_positions_margins_and_funding(quiet_host, redis_client):
    from apps.bots.models import Bot, BotEvent
    from apps.bots.services import bot_start
    from apps.derivatives.models import FundingRate
    from apps.exchanges.models import ExchangeAccount
    from apps.orders.models import Fill
    from apps.portfolio.models import PnlSnapshot
    from trading.instruments import Side
    from workers import lifecycle, supervisor

    funding_at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=35)
    FundingRate.objects.create(venue=GAMMA, symbol=PERP, ts=funding_at, rate=MAKER_RATE)
    FundingRate.objects.create(venue=DELTA, symbol=PERP, ts=funding_at, rate=HEDGE_RATE)
    bot = _perp_perp_bot()
    user = bot.owner
    maker_account = bot.exchange_account
    hedge_account = ExchangeAccount.objects.get(pk=bot.params["hedge_account"])
    books = Books(redis_client)
    books.books = {
        (GAMMA, PERP): ([(599_900, 5_000)], [(600_100, 5_000)]),  # 59990.0 / 60010.0, 5 BTC
        (DELTA, PERP): ([(599_999, 5_000)], [(600_001, 5_000)]),  # 59999.9 / 60000.1, 5 BTC
    }
    prefix = bot.client_id_prefix
    try:
        bot_start(bot=bot, actor=user)
        supervisor.tick()
        assert wait_until(lambda: Bot.objects.get(pk=bot.pk).actual_state == "running", 20)
        assert wait_until(lambda: _open(bot, "buy") and _open(bot, "sell"), 20), "the bot never quoted"
        bid, ask = _open(bot, "buy")[0], _open(bot, "sell")[0]
        # 59999.9 x (1 - 0.0008) = 59951.90008 down to 0.1; 60000.1 x 1.0008 = 60048.10008 up to 0.1
        assert (bid.price, bid.quantity, bid.account_id) == (Decimal("59951.9"), Decimal("0.002"), maker_account.pk)
        assert (ask.price, ask.quantity) == (Decimal("60048.2"), Decimal("0.002"))

        # a seller takes the whole bid: 2 contracts bought, hedged at once with 2 contracts sold
        books.trade(GAMMA, PERP, 599_519, 2, Side.SELL)
        hedges = Fill.objects.filter(bot=bot, client_order_id__startswith=prefix + "h-")
        assert wait_until(lambda: hedges.count() == 1, 15), "no hedge for the maker fill"
        hedge = hedges.get()
        assert (hedge.side, hedge.quantity, hedge.price) == ("sell", Decimal("0.002"), Decimal("59999.9"))
        assert (hedge.account_id, hedge.liquidity) == (hedge_account.pk, "taker")
        assert wait_until(lambda: _exposure(redis_client, bot.pk) == Decimal("0"), 10)

        def perps():
            status = _status(redis_client, bot.pk).get("hedged", {})
            m, h = status.get("maker_perp") or {}, status.get("hedge_perp") or {}
            filled = m.get("position_contracts") == "0.002" and h.get("position_contracts") == "-0.002"
            return (m, h) if filled and m.get("mark_price") and h.get("mark_price") else None  # marked each second

        maker_perp, hedge_perp = wait_until(perps, 10) or ({}, {})
        assert maker_perp and hedge_perp, _status(redis_client, bot.pk)
        assert (maker_perp["leverage"], hedge_perp["leverage"]) == (10, 5)
        assert maker_perp["entry_price"] == "59951.90000000" and hedge_perp["entry_price"] == "59999.90000000"
        # initial margin at each leg's own mark (its book's mid) and leverage
        assert Decimal(maker_perp["margin_used"]) == Decimal("0.002") * Decimal("60000") / 10
        assert Decimal(hedge_perp["margin_used"]) == Decimal("0.002") * Decimal("60000") / 5
        # each leg's margin balance is its own paper account's USDT (5000 and 3000), less its fee
        assert Decimal("4999.9") < Decimal(maker_perp["margin_balance"]) < Decimal("5000.2")
        assert Decimal("2999.9") < Decimal(hedge_perp["margin_balance"]) < Decimal("3000")
        # the bot's own market is the maker leg's: its perpetual card (page and API) shows that leg
        from apps.dashboard.perp import bot_perp

        card = bot_perp(bot_id=bot.pk)
        assert card["position_contracts"] == "0.002" and card["leverage"] == 10
        assert card["margin_mode"] == "isolated" and Decimal(card["wallet"]) == 5000

        # the funding time passes: each leg books its own market's rate at its own mark
        funding = BotEvent.objects.filter(bot=bot, kind="funding")
        remaining = (funding_at - datetime.now(UTC)).total_seconds()
        assert remaining > 0, "the fill took longer than the funding time: the test's timing is off"
        assert wait_until(lambda: funding.count() == 2, remaining + 15), list(funding.values_list("message"))
        paid = {e.data["leg"]: e for e in funding}
        assert paid["maker"].code == "funding_paid" and paid["hedge"].code == "funding_received"
        assert Decimal(paid["maker"].data["mark"]) == Decimal("60000") == Decimal(paid["hedge"].data["mark"])
        assert Decimal(paid["maker"].data["amount"]) == -Decimal("0.002") * Decimal("60000") * MAKER_RATE  # -0.048
        assert Decimal(paid["hedge"].data["amount"]) == Decimal("0.002") * Decimal("60000") * HEDGE_RATE  # +0.012
    finally:
        books.close()
        Bot.objects.filter(pk=bot.pk).update(desired_state="stopped")
        lifecycle.apply(bot.pk)
        assert wait_until(lambda: Bot.objects.get(pk=bot.pk).actual_state == "stopped", 30)
    quiet_host.drain_writers(10)

    last = PnlSnapshot.objects.filter(bot=bot).order_by("-ts").first()
    assert last.position == Decimal("0")  # +0.002 on gamma, -0.002 on delta
    assert last.funding == Decimal("-0.048") + Decimal("0.012")
    # fees: the maker fee 0.02 % of 119.9038 USDT, the hedge taker fee 0.05 % of 119.9998 USDT
    assert last.fees == Decimal("0.02398076") + Decimal("0.0599999")
