"""Reconciliation (workers/reconcile.py) of a hedged bot whose legs are of different kinds: a live
maker (a ccxt account on the local fake Binance spot server) hedged on a paper account, and the
reverse. The beat's run takes the bot up whatever its maker's kind and reconciles its paper leg
like any paper bot's (missing fills recorded on that leg's account, an orphan cancelled, an order
the venue no longer has closed, that account's balances replaced), each incident naming the leg;
the live leg's keys are never read as paper (real PostgreSQL and Redis)."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from tests.workers.helpers import ensure_market
from tests.workers.test_live_venue import BINANCE_SPOT_MARKET, fake_binance  # noqa: F401 - fixture

pytestmark = [pytest.mark.django_db(transaction=True)]

PAPER_VENUE, LIVE_VENUE = "sim:rx-paper", "binance"


def _trade(cid: str, trade_id: str, side: int, price: int, qty: int, fee: int, ts: int, maker: bool) -> str:
    return json.dumps({"cid": cid, "voi": "v", "side": side, "price": price, "qty": qty, "leaves": 0, "fee": fee,
                       "maker": maker, "ts": ts, "id": trade_id})  # fmt: skip


def _open(cid: str, side: int, price: int, qty: int, ts: int) -> str:
    return json.dumps({"cid": cid, "voi": "x", "side": side, "price": price, "qty": qty, "filled": 0, "ts": ts})


def _mixed_bot(live_leg: str):
    """A hedged bot with its ``live_leg`` ("maker" or "hedge") on a live Binance account and the
    other on a paper account (10 BTC, 1,000,000 USDT)."""
    from apps.accounts.models import User
    from apps.bots.services import bot_create
    from apps.exchanges.models import Market
    from apps.exchanges.services import exchange_account_create

    user = User.objects.create_user(username=f"mixed{time.time_ns()}", password="pw-12345678")
    live = exchange_account_create(owner=user, label="live", kind="live", venue=LIVE_VENUE, api_key="test-key",
                                   api_secret="test-secret")  # fmt: skip
    paper = exchange_account_create(owner=user, label="paper", venue=PAPER_VENUE,
                                    paper_balances={"BTC": "10", "USDT": "1000000"})  # fmt: skip
    live_market, _ = Market.objects.update_or_create(
        venue=LIVE_VENUE, symbol="BTC/USDT", defaults={"base": "BTC", "quote": "USDT", "min_notional": "5",
                                                       **BINANCE_SPOT_MARKET}
    )  # fmt: skip
    live_market.refresh_from_db()
    paper_market = ensure_market(PAPER_VENUE)
    maker, hedge = ((live, live_market), (paper, paper_market)) if live_leg == "maker" else (
        (paper, paper_market), (live, live_market))  # fmt: skip
    bot = bot_create(
        owner=user,
        name=f"mixed {live_leg} live",
        exchange_account=maker[0],
        market=maker[1],
        strategy="hedged_maker",
        params={"hedge_account": hedge[0].pk, "hedge_market": hedge[1].pk, "order_amount": "0.01",
                "min_profitability": "0.002", "max_unhedged": "0.05"},
        risk={"max_position_base": "5"},
    )  # fmt: skip
    bot.refresh_from_db()
    return bot, paper, paper_market, live


@pytest.mark.parametrize(("live_leg", "paper_leg"), [("maker", "hedge"), ("hedge", "maker")])
def test_the_paper_leg_of_a_hedged_bot_with_a_live_leg_is_reconciled(clean_redis, fake_binance, live_leg, paper_leg):  # noqa: F811
    from apps.core.models import Incident
    from apps.orders.models import Fill, Order
    from apps.portfolio.models import Balance
    from trading.events import PlaceOrder
    from trading.instruments import Side
    from workers import keys, reconcile, records

    bot, paper, market, live = _mixed_bot(live_leg)
    assert bot.exchange_account.kind == ("live" if live_leg == "maker" else "paper")
    legs = reconcile.paper_leg_markets(bot)
    assert [(leg, account_id) for leg, account_id, *_ in legs] == [(paper_leg, paper.pk)]
    prefix = bot.client_id_prefix + paper_leg[0]  # <bot prefix>m / <bot prefix>h
    inst = records.market_instrument(market)
    old = time.time_ns() - (reconcile.GRACE_S + 5) * 1_000_000_000
    k_trades, k_orders = keys.paper(paper.pk, "BTC/USDT", "trades"), keys.paper(paper.pk, "BTC/USDT", "orders")
    # a fill of the paper leg the database lacks (its host died before writing it) ...
    clean_redis.rpush(k_trades, _trade(f"{prefix}-0", "px-1", -1, inst.ticks(Decimal("60010")),
                                       inst.lots(Decimal("0.01")), 30_005, old, paper_leg == "maker"))  # fmt: skip
    # ... an order resting on the paper venue that the database does not know (an orphan) ...
    clean_redis.hset(k_orders, f"{prefix}-1", _open(f"{prefix}-1", -1, inst.ticks(Decimal("59000")),
                                                  inst.lots(Decimal("0.01")), 1))  # fmt: skip
    # ... and one open in the database that the venue no longer has, its trade showing it filled
    records.orders_create([(bot.pk, paper.pk, market.pk, inst,
                            PlaceOrder(f"{prefix}-2", Side.SELL, inst.ticks(Decimal("60020")),
                                       inst.lots(Decimal("0.002"))))])  # fmt: skip
    Order.objects.filter(client_order_id=f"{prefix}-2").update(updated=timezone.now() - timedelta(minutes=5))
    clean_redis.rpush(k_trades, _trade(f"{prefix}-2", "px-2", -1, inst.ticks(Decimal("60020")),
                                       inst.lots(Decimal("0.002")), 0, old, paper_leg == "maker"))  # fmt: skip
    # the live account's id under the paper keys is never read as a leg of this bot
    clean_redis.rpush(keys.paper(live.pk, "BTC/USDT", "trades"),
                      _trade(f"{bot.client_id_prefix}{live_leg[0]}-0", "lx-1", 1, 6_000_000, 10, 0, old, True))  # fmt: skip

    result = reconcile.run()
    assert result["bots"] >= 1 and (result["fills"], result["orphans"], result["closed"]) == (2, 1, 1), result
    fills = {f.venue_trade_id: f for f in Fill.objects.filter(bot=bot)}
    assert set(fills) == {"px-1", "px-2"}
    first = fills["px-1"]
    assert (first.account_id, first.side, first.price, first.quantity) == (
        paper.pk, "sell", Decimal("60010"), Decimal("0.01"))  # fmt: skip
    assert first.fee == inst.cash(30_005) and first.liquidity == ("maker" if paper_leg == "maker" else "taker")
    assert clean_redis.hlen(k_orders) == 0  # the orphan cancelled (the bot has no owner)
    assert Order.objects.get(client_order_id=f"{prefix}-2").status == "filled"
    incidents = {(i.kind, i.account_id, i.data.get("leg")) for i in Incident.objects.filter(bot=bot)}
    assert incidents == {("missing_fill", paper.pk, paper_leg), ("orphan_order", paper.pk, paper_leg),
                         ("missing_order", paper.pk, paper_leg)}  # fmt: skip
    orphan = Incident.objects.get(bot=bot, kind="orphan_order")
    assert f"{prefix}-1 ({paper_leg} leg, BTC/USDT on {PAPER_VENUE})" in orphan.message
    # the paper account's balances are the venue's; the live account gets none from the paper keys
    clean_redis.hset(keys.paper(paper.pk, "BTC/USDT", "delta"), mapping={"base": -inst.lots(Decimal("0.012"))})
    reconcile.run()
    assert Balance.objects.get(account_id=paper.pk, asset="BTC").total == Decimal("9.988")
    assert not Balance.objects.filter(account_id=live.pk).exists()
    again = reconcile.run()  # nothing new: idempotent
    assert (again["fills"], again["orphans"], again["closed"]) == (0, 0, 0)
