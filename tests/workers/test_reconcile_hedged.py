"""Reconciliation of a hedged paper bot (workers/reconcile.py): its orders and fills on both legs
(``<prefix>m-`` on the maker account and market, ``<prefix>h-`` on the hedge account and market)
are reconciled like a single-venue bot's, each leg on its own account's keys with its own
market's sizes (real PostgreSQL and Redis)."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from tests.workers.helpers import wait_until
from tests.workers.test_hedged_host import make_hedged_bot

pytestmark = [pytest.mark.django_db(transaction=True)]


def _trade(cid: str, trade_id: str, side: int, price: int, qty: int, fee: int, ts: int, maker: bool) -> str:
    return json.dumps({"cid": cid, "voi": "v", "side": side, "price": price, "qty": qty, "leaves": 0, "fee": fee,
                       "maker": maker, "ts": ts, "id": trade_id})  # fmt: skip


def _open(cid: str, side: int, price: int, qty: int, ts: int) -> str:
    return json.dumps({"cid": cid, "voi": "x", "side": side, "price": price, "qty": qty, "filled": 0, "ts": ts})


def test_reconciliation_covers_both_legs_of_a_hedged_bot(clean_redis):
    from apps.core.models import Incident
    from apps.orders.models import Fill, Order
    from apps.portfolio.models import Balance
    from trading.events import PlaceOrder
    from trading.instruments import Side
    from workers import keys, reconcile, records

    user, bot, maker_market, hedge_market = make_hedged_bot("sim:rc-maker", "sim:rc-hedge", start=False)
    bot.refresh_from_db()
    # the hedge market has other sizes than the maker's: each leg is read with its own
    hedge_market.lot_size, hedge_market.tick_size = Decimal("0.001"), Decimal("0.1")
    hedge_market.save(update_fields=["lot_size", "tick_size"])
    maker_account, hedge_account = bot.exchange_account_id, bot.params["hedge_account"]
    prefix = bot.client_id_prefix
    mi, hi = records.market_instrument(maker_market), records.market_instrument(hedge_market)
    old = time.time_ns() - (reconcile.GRACE_S + 5) * 1_000_000_000
    k_maker_trades = keys.paper(maker_account, "BTC/USDT", "trades")
    k_hedge_trades = keys.paper(hedge_account, "BTC/USDT", "trades")
    k_hedge_orders = keys.paper(hedge_account, "BTC/USDT", "orders")
    # The host died before writing anything: a maker fill (0.01 BTC bought at 60,000) and its
    # hedge (0.01 sold at 60,010) are only in the venues' trade logs ...
    clean_redis.rpush(k_maker_trades, _trade(f"{prefix}m-0", "mk-1", 1, mi.ticks(Decimal("60000")),
                                             mi.lots(Decimal("0.01")), 0, old, True))  # fmt: skip
    clean_redis.rpush(k_hedge_trades, _trade(f"{prefix}h-0", "hg-1", -1, hi.ticks(Decimal("60010")),
                                             hi.lots(Decimal("0.01")), 30_005, old, False))  # fmt: skip
    # ... a limit hedge left working on the hedge venue that the database does not know (orphan) ...
    clean_redis.hset(k_hedge_orders, f"{prefix}h-1", _open(f"{prefix}h-1", -1, hi.ticks(Decimal("59000")),
                                                         hi.lots(Decimal("0.01")), 1))  # fmt: skip
    # ... and a hedge order open in the database that the venue no longer has, its trade showing it filled
    setup = records.bot_setup(bot.pk)
    records.orders_create([(bot.pk, hedge_account, hedge_market.pk, hi,
                            PlaceOrder(f"{prefix}h-2", Side.SELL, hi.ticks(Decimal("60020")), hi.lots(Decimal("0.002"))))])  # fmt: skip
    Order.objects.filter(client_order_id=f"{prefix}h-2").update(updated=timezone.now() - timedelta(minutes=5))
    clean_redis.rpush(k_hedge_trades, _trade(f"{prefix}h-2", "hg-2", -1, hi.ticks(Decimal("60020")),
                                             hi.lots(Decimal("0.002")), 0, old, False))  # fmt: skip
    # another bot's trade on the same hedge account and symbol is not this bot's
    clean_redis.rpush(k_hedge_trades, _trade("mm999999xh-0", "other-1", 1, hi.ticks(Decimal("60000")), 5, 0, old, True))
    assert setup.prefix == prefix
    result = reconcile.run()
    assert (result["fills"], result["orphans"], result["closed"]) == (3, 1, 1), result
    fills = {f.venue_trade_id: f for f in Fill.objects.filter(bot=bot)}
    assert set(fills) == {"mk-1", "hg-1", "hg-2"}
    maker, hedge = fills["mk-1"], fills["hg-1"]
    assert (maker.account_id, maker.side, maker.price, maker.quantity, maker.liquidity) == (
        maker_account,
        "buy",
        Decimal("60000"),
        Decimal("0.01"),
        "maker",
    )
    assert (hedge.account_id, hedge.side, hedge.price, hedge.quantity, hedge.liquidity) == (
        hedge_account, "sell", Decimal("60010"), Decimal("0.01"), "taker")  # fmt: skip
    assert hedge.fee == hi.cash(30_005) and hedge.fee_currency == "USDT"
    assert not Fill.objects.filter(venue_trade_id="other-1").exists()
    # the orphan hedge order is cancelled on the hedge venue (the bot has no owner)
    assert clean_redis.hlen(k_hedge_orders) == 0
    assert Order.objects.get(client_order_id=f"{prefix}h-2").status == "filled"
    incidents = {(i.kind, i.account_id, i.data.get("leg")) for i in Incident.objects.filter(bot=bot)}
    assert incidents == {("missing_fill", maker_account, "maker"), ("missing_fill", hedge_account, "hedge"),
                         ("orphan_order", hedge_account, "hedge"), ("missing_order", hedge_account, "hedge")}  # fmt: skip
    orphan = Incident.objects.get(bot=bot, kind="orphan_order")
    assert f"{prefix}h-1 (hedge leg, BTC/USDT on sim:rc-hedge)" in orphan.message
    # both accounts' balances are the venue's (the hedge account's balance movements included)
    clean_redis.hset(keys.paper(hedge_account, "BTC/USDT", "delta"), mapping={"base": -hi.lots(Decimal("0.012"))})
    reconcile.run()
    assert Balance.objects.get(account_id=hedge_account, asset="BTC").total == Decimal("9.988")
    assert Balance.objects.filter(account_id=maker_account, asset="BTC").exists()
    again = reconcile.run()  # nothing new: idempotent
    assert (again["fills"], again["orphans"], again["closed"]) == (0, 0, 0)
    assert user.pk == bot.owner_id


def test_a_hedge_account_of_another_user_is_never_read(clean_redis):
    """A hedged bot whose params name an account that is not its owner's (edited in the database
    by hand): reconciliation reads the maker leg only, never the other user's keys."""
    from apps.bots.models import Bot
    from apps.orders.models import Fill
    from workers import keys, reconcile

    _user, bot, _maker_market, _hedge_market = make_hedged_bot("sim:ro-maker", "sim:ro-hedge", start=False)
    _other, other_bot, _m, _h = make_hedged_bot("sim:ro-maker", "sim:ro-hedge", start=False)
    theirs = other_bot.params["hedge_account"]
    Bot.objects.filter(pk=bot.pk).update(params={**bot.params, "hedge_account": theirs})
    bot.refresh_from_db()
    old = time.time_ns() - (reconcile.GRACE_S + 5) * 1_000_000_000
    clean_redis.rpush(keys.paper(theirs, "BTC/USDT", "trades"),
                      _trade(f"{bot.client_id_prefix}h-0", "theirs-1", 1, 6_000_000, 10, 0, old, True))  # fmt: skip
    assert [leg for leg, *_ in reconcile.paper_leg_markets(bot)] == ["maker"]
    reconcile.run()
    assert not Fill.objects.filter(venue_trade_id="theirs-1").exists()


def test_a_running_hedged_bot_is_reconciled_without_false_reports_and_its_orphan_cancelled(host, redis_client):
    """A hedged bot trading in a host: reconciliation finds nothing wrong with its two legs' own
    orders and fills (none ignored: an orphan on the hedge venue is reported and its owner, the
    hedged loop, cancels it); once stopped, every venue fill of both legs is in the database."""
    from apps.bots.models import Bot
    from apps.core.models import Incident
    from apps.orders.models import Fill
    from workers import keys, lifecycle, reconcile, supervisor

    _user, bot, _maker_market, hedge_market = make_hedged_bot("sim:rr-maker", "sim:rr-hedge")
    supervisor.tick()
    prefix = bot.client_id_prefix
    hedges = Fill.objects.filter(bot=bot, client_order_id__startswith=prefix + "h-")
    assert wait_until(hedges.exists, 120), "no hedge fill in 120 s"
    k_hedge_orders = keys.paper(bot.params["hedge_account"], hedge_market.symbol, "orders")
    redis_client.hset(k_hedge_orders, f"{prefix}h-zz", _open(f"{prefix}h-zz", -1, 5_000_000, 10, 1))
    result = reconcile.run()
    assert (result["orphans"], result["closed"]) == (1, 0), result
    assert wait_until(lambda: not redis_client.hexists(k_hedge_orders, f"{prefix}h-zz"), 10), "orphan not cancelled"
    assert Bot.objects.get(pk=bot.pk).actual_state == "running"  # the owner cancelled it; the bot goes on
    Bot.objects.filter(pk=bot.pk).update(desired_state="stopped")
    lifecycle.apply(bot.pk)
    assert wait_until(lambda: Bot.objects.get(pk=bot.pk).actual_state == "stopped", 30)
    host.drain_writers(10)
    recorded = Fill.objects.filter(bot=bot).count()
    result = reconcile.run(fill_grace_s=0)
    assert (result["fills"], result["orphans"], result["closed"]) == (0, 0, 0), result
    assert Fill.objects.filter(bot=bot).count() == recorded
    kinds = list(Incident.objects.filter(bot=bot).exclude(kind="hedge").values_list("kind", "message"))
    assert kinds == [("orphan_order", f"order {prefix}h-zz (hedge leg, BTC/USDT on sim:rr-hedge) open on the venue "
                                      "but unknown in the database; cancelled")]  # fmt: skip


def test_a_cancel_of_a_hedged_bots_maker_quote_goes_through_its_kernel(host, redis_client):
    """``cancel:<id>`` of a quote the hedged maker works (a user's cancel): the quote leaves the
    maker venue, its row is closed, and the bot quotes on with new ids."""
    from apps.bots.models import Bot
    from apps.orders.models import Order
    from workers import keys, lifecycle, supervisor

    # quotes far from the touch and never requoted: only the cancel takes one off
    _user, bot, _maker_market, _hedge_market = make_hedged_bot(
        "sim:rq-maker", "sim:rq-hedge", requote_ticks=100_000, min_profitability="0.01"
    )
    supervisor.tick()
    k_maker = keys.paper(bot.exchange_account_id, "BTC/USDT", "orders")
    assert wait_until(lambda: redis_client.hlen(k_maker) >= 2, 30), "the bot never quoted"
    time.sleep(0.5)  # the quotes' rows follow the venue on the writer
    cid = sorted(c.decode() for c in redis_client.hkeys(k_maker))[0]
    lifecycle.control(redis_client, bot.pk, f"cancel:{cid}")
    assert wait_until(lambda: not redis_client.hexists(k_maker, cid), 10), "the quote was not cancelled"
    row = Order.objects.filter(client_order_id=cid)
    assert wait_until(lambda: row.exclude(status__in=["open", "pending_new", "partially_filled"]).exists(), 10)
    others = set(redis_client.hkeys(k_maker))
    time.sleep(2.0)
    assert set(redis_client.hkeys(k_maker)) >= others  # the other quote untouched (no requote)
    # the cancelled side is quoted again with a new id
    assert wait_until(lambda: redis_client.hlen(k_maker) >= 2, 10), "quoting did not go on"
    assert not redis_client.hexists(k_maker, cid)
    assert Bot.objects.get(pk=bot.pk).actual_state == "running"
