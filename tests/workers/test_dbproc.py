"""The host's database writer process (workers.dbproc) and the paper order rows written behind
the venue: real child processes, the real PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from decimal import Decimal

import pytest

from tests.workers.helpers import make_paper_bots, wait_until

pytestmark = [pytest.mark.django_db(transaction=True)]


def _place(cid: str, price: int = 6_000_000):
    from trading.events import PlaceOrder
    from trading.instruments import Side

    return PlaceOrder(cid, Side.BUY, price, 100)


def _run(coro):
    return asyncio.run(coro)


def test_writes_land_calls_answer_and_a_failed_call_says_why():
    from apps.orders.models import Order
    from workers import records
    from workers.dbproc import DbCallError, DbProcess

    _user, account, (bot,) = make_paper_bots(1, start=False)
    inst = records.market_instrument(bot.market)

    async def scenario():
        proc = DbProcess("t", {"db": {"linger_s": 0.01}, "setup": {}})
        db, setup = proc.writer("db"), proc.writer("setup")
        await proc.start()
        for i in range(50):
            db.submit(records.orders_create, [(bot.pk, account.pk, bot.market_id, inst, _place(f"dp-{i}"))])
        known = await db.call(records.order_ids_known, [f"dp-{i}" for i in range(60)])
        with pytest.raises(DbCallError, match=r"TypeError: .object. object is not iterable"):
            await setup.call(records.bots_desired_states, object())
        pending_after = proc.pending()
        await proc.aclose()
        return known, pending_after, proc.proc.returncode

    known, pending, code = _run(scenario())
    # Same writer, in order: the 50 creates are committed before the call that reads them.
    assert known == {f"dp-{i}" for i in range(50)}
    assert pending == 0
    assert code == 0
    assert Order.objects.filter(client_order_id__startswith="dp-").count() == 50


def test_a_killed_writer_process_is_restarted_and_gets_every_unconfirmed_write_once():
    from apps.orders.models import Order
    from workers import records
    from workers.dbproc import DbProcess

    _user, account, (bot,) = make_paper_bots(1, start=False)
    inst = records.market_instrument(bot.market)

    async def scenario():
        # A long linger: the writes sit in the child, unconfirmed, when it is killed.
        proc = DbProcess("t", {"db": {"linger_s": 2.0}})
        db = proc.writer("db")
        await proc.start()
        await asyncio.sleep(1.5)  # the child is up (Django loaded)
        first_pid = proc.proc.pid
        for i in range(200):
            db.submit(records.orders_create, [(bot.pk, account.pk, bot.market_id, inst, _place(f"dk-{i}"))])
            db.submit(records.orders_update, [(f"dk-{i}", "open", f"v{i}", None, "", inst)])
        await asyncio.sleep(0.3)
        assert proc.pending() == 400
        os.kill(first_pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while proc.pending() and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        pending, restarts, pid = proc.pending(), proc.restarts, proc.proc.pid
        await proc.aclose()
        return first_pid, pid, pending, restarts

    first_pid, pid, pending, restarts = _run(scenario())
    assert restarts == 1 and pid != first_pid
    assert pending == 0
    rows = Order.objects.filter(client_order_id__startswith="dk-")
    assert rows.count() == 200
    assert set(rows.values_list("status", flat=True)) == {"open"}  # each update after its create


def test_a_batch_runs_row_creation_before_the_updates_that_refer_to_it():
    """The writer merges queued calls per function; creates go first even when an update of an
    older order came before them in the queue."""
    from apps.orders.models import Order
    from workers import records
    from workers.dbwriter import DbWriter

    _user, account, (bot,) = make_paper_bots(1, start=False)
    inst = records.market_instrument(bot.market)
    records.orders_create([(bot.pk, account.pk, bot.market_id, inst, _place("bf-a"))])
    writer = DbWriter("t", linger_s=0.3)
    writer.submit(records.orders_update, [("bf-a", "open", "va", None, "", inst)])
    writer.submit(records.orders_create, [(bot.pk, account.pk, bot.market_id, inst, _place("bf-b"))])
    writer.submit(records.orders_update, [("bf-b", "cancelled", "vb", None, "requote", inst)])
    writer.drain(10)
    assert writer.timing["orders_update"][0] == 1  # one batch: both updates in one statement
    assert Order.objects.get(client_order_id="bf-a").status == "open"
    assert Order.objects.get(client_order_id="bf-b").status == "cancelled"


def test_an_acknowledged_row_is_created_open_with_its_acknowledgement_time():
    from apps.orders.models import Order
    from workers import records

    _user, account, (bot,) = make_paper_bots(1, start=False)
    inst = records.market_instrument(bot.market)
    records.orders_create(
        [
            (bot.pk, account.pk, bot.market_id, inst, _place("ack-1"), "P1-ack-1", 1_700_000_000_250_000_000),
            (bot.pk, account.pk, bot.market_id, inst, _place("ack-2")),
        ]
    )
    one, two = Order.objects.get(client_order_id="ack-1"), Order.objects.get(client_order_id="ack-2")
    assert (one.status, one.venue_order_id, one.acked_at.timestamp()) == ("open", "P1-ack-1", 1_700_000_000.25)
    assert (two.status, two.venue_order_id, two.acked_at) == ("pending_new", "", None)
    assert one.price == Decimal("60000.00") and one.quantity == Decimal("0.0100")


def test_take_over_writes_the_rows_a_dead_owner_left_unwritten_and_adopts_its_orders(host, redis_client):
    """An owner that died just after placing (its rows not yet written) leaves an open order and a
    filled order on the paper venue: the next owner records both (open / filled, with the fill
    linked to its order) instead of cancelling an order it cannot find."""
    from apps.bots.models import Bot, BotEvent
    from apps.orders.models import Fill, Order
    from workers import keys, lifecycle, supervisor

    _user, account, (bot,) = make_paper_bots(1, start=False)
    bot.refresh_from_db()
    prefix = bot.client_id_prefix
    now = time.time_ns()
    k_orders = keys.paper(account.pk, "BTC/USDT", "orders")
    k_trades = keys.paper(account.pk, "BTC/USDT", "trades")
    redis_client.hset(k_orders, f"{prefix}-5", json.dumps({"cid": f"{prefix}-5", "voi": f"P{account.pk}-{prefix}-5",
                                                           "side": 1, "price": 5_000_000, "qty": 100, "filled": 0,
                                                           "tif": "PO", "ts": now}))  # fmt: skip
    redis_client.rpush(k_trades, json.dumps({"cid": f"{prefix}-6", "voi": "v6", "side": -1, "price": 7_000_000,
                                             "qty": 100, "leaves": 0, "fee": 7, "maker": True, "ts": now,
                                             "id": f"p{account.pk}-x-1"}))  # fmt: skip
    Bot.objects.filter(pk=bot.pk).update(desired_state="running")
    supervisor.tick()
    assert wait_until(lambda: Bot.objects.get(pk=bot.pk).actual_state == "running", 20)
    assert wait_until(lambda: Order.objects.filter(client_order_id=f"{prefix}-5").exists(), 10)
    adopted = Order.objects.get(client_order_id=f"{prefix}-5")
    assert adopted.status in ("open", "cancelled")  # adopted; the strategy may then requote it
    assert adopted.venue_order_id == f"P{account.pk}-{prefix}-5" and adopted.acked_at is not None
    filled = Order.objects.get(client_order_id=f"{prefix}-6")
    assert (filled.status, filled.side, filled.filled_quantity) == ("filled", "sell", Decimal("0.0100"))
    assert Fill.objects.get(venue_trade_id=f"p{account.pk}-x-1").order_id == filled.pk
    assert BotEvent.objects.filter(bot=bot, code="order_rows_written").exists()
    take_over = BotEvent.objects.get(bot=bot, code="take_over")
    assert take_over.data["adopted"] == [f"{prefix}-5"] and take_over.data["cancelled"] == []
    Bot.objects.filter(pk=bot.pk).update(desired_state="stopped")
    lifecycle.apply(bot.pk)
    assert wait_until(lambda: Bot.objects.get(pk=bot.pk).actual_state == "stopped", 20)
    assert redis_client.hlen(k_orders) == 0


def test_reconciliation_leaves_a_fresh_paper_order_whose_row_is_on_its_way(clean_redis):
    from workers import keys, reconcile

    _user, account, (bot,) = make_paper_bots(1)
    bot.refresh_from_db()
    prefix = bot.client_id_prefix
    k_orders = keys.paper(account.pk, "BTC/USDT", "orders")
    clean_redis.hset(k_orders, f"{prefix}-9", json.dumps({"cid": f"{prefix}-9", "voi": "x", "side": 1,
                                                          "price": 6_000_000, "qty": 100, "filled": 0,
                                                          "ts": time.time_ns()}))  # fmt: skip
    assert reconcile.run()["orphans"] == 0
    assert clean_redis.hexists(k_orders, f"{prefix}-9")
