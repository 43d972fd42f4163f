"""The host's database writer threads (workers.dbwriter) and the paper order rows written behind
the venue: the real PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import json
import time
from decimal import Decimal

import pytest

from apps.orders.services import fills_record, orders_create, orders_update
from apps.portfolio.services import pnl_snapshots_record
from tests.workers.helpers import make_paper_bots, venue_fills_recorded, wait_until

pytestmark = [pytest.mark.django_db(transaction=True)]


def _place(cid: str, price: int = 6_000_000, qty: int = 100):
    from trading.events import PlaceOrder
    from trading.instruments import Side

    return PlaceOrder(cid, Side.BUY, price, qty)


def _run(coro):
    return asyncio.run(coro)


def test_writes_land_calls_answer_and_a_failed_call_says_why():
    from apps.orders.models import Order
    from workers import records
    from workers.dbwriter import AsyncWriter, DbWriter

    _user, account, (bot,) = make_paper_bots(1, start=False)
    inst = records.market_instrument(bot.market)

    async def scenario():
        db, setup = AsyncWriter(DbWriter("t-db", linger_s=0.01)), AsyncWriter(DbWriter("t-setup"))
        for i in range(50):
            db.submit(orders_create, [(bot.pk, account.pk, bot.market_id, inst, _place(f"dp-{i}"))])
        known = await db.call(records.order_ids_known, [f"dp-{i}" for i in range(60)])
        with pytest.raises(TypeError, match=r".object. object is not iterable"):
            await setup.call(records.bots_desired_states, object())
        pending_after = db.pending() + setup.pending()
        db.drain(10)
        setup.drain(10)
        return known, pending_after

    known, pending = _run(scenario())
    # Same writer, in order: the 50 creates are committed before the call that reads them.
    assert known == {f"dp-{i}" for i in range(50)}
    assert pending == 0
    assert Order.objects.filter(client_order_id__startswith="dp-").count() == 50


def test_one_bots_row_the_database_refuses_never_drops_or_delays_another_users_rows():
    """Issue 23 item 3: rows of two bots of two users merged into one batch, one row overflowing
    NUMERIC(38, 18). Only that row is dropped (and reported with its owner and the value); the
    other user's order rows and fills are all written, at once."""
    from apps.orders.models import Fill, Order
    from trading.instruments import Side
    from workers import records
    from workers.dbwriter import DbWriter

    _u1, account_a, (bot_a,) = make_paper_bots(1, username="alice", start=False)
    _u2, account_b, (bot_b,) = make_paper_bots(1, username="bob", start=False)
    inst = records.market_instrument(bot_a.market)
    refused: list = []
    # A long linger: every call below is queued before the writer looks, so they share one batch.
    writer = DbWriter("t", linger_s=0.3, on_refused=lambda owner, fn, row, exc: refused.append((owner, fn, row)))
    t0 = time.monotonic()
    writer.submit(orders_create, [(bot_b.pk, account_b.pk, bot_b.market_id, inst, _place("iso-b1"))],
                  owner=bot_b.pk)  # fmt: skip
    absurd = _place("iso-a1", qty=10**30)  # 10^26 BTC
    writer.submit(orders_create, [(bot_a.pk, account_a.pk, bot_a.market_id, inst, _place("iso-a0")),
                                          (bot_a.pk, account_a.pk, bot_a.market_id, inst, absurd)],
                  owner=bot_a.pk)  # fmt: skip
    writer.submit(orders_create, [(bot_b.pk, account_b.pk, bot_b.market_id, inst, _place("iso-b2"))],
                  owner=bot_b.pk)  # fmt: skip
    fills = []
    for i in range(5):
        setup = records.BotSetup(bot_id=bot_b.pk, owner_id=0, name="", account_id=account_b.pk, account_kind="paper",
                                 venue="sim:alpha", market_id=bot_b.market_id, symbol="BTC/USDT", instrument=inst,
                                 strategy="", params={}, risk={}, desired_state="running", prefix="iso",
                                 client_id_start=0, paper_balances={}, kill_switch=False)  # fmt: skip
        fills.append(records.fill_row(setup, time.time_ns(), "iso-b1", Side.BUY, 6_000_000, 10, 1, True, f"iso-t{i}"))
    writer.submit(fills_record, fills, owner=bot_b.pk)
    writer.drain(10)
    took = time.monotonic() - t0
    assert set(Order.objects.filter(client_order_id__startswith="iso-").values_list("client_order_id", flat=True)) == {
        "iso-b1",
        "iso-b2",
        "iso-a0",
    }
    assert Fill.objects.filter(account=account_b, venue_trade_id__startswith="iso-t").count() == 5
    assert took < 5, f"the other bot's rows waited {took:.1f} s"
    assert [(owner, fn.__name__, row[4].client_order_id) for owner, fn, row in refused] == [
        (bot_a.pk, "orders_create", "iso-a1")
    ]
    description = orders_create.describe(refused[0][2])
    assert "quantity 100000000000000000000000000.0 (beyond NUMERIC(38, 18)" in description, description
    assert writer.refused == 1


def test_a_fill_out_of_bounds_is_dropped_alone_and_reported_naming_the_field():
    """The bounds check of ``fills_record`` refuses a row before the database sees it; in a merged
    batch only that row is dropped and reported (with its bot), the other bot's fills are written."""
    from datetime import UTC, datetime

    from django.core.exceptions import ValidationError

    from apps.orders.models import Fill
    from workers.dbwriter import DbWriter

    _u1, account_a, (bot_a,) = make_paper_bots(1, username="alice", start=False)
    _u2, account_b, (bot_b,) = make_paper_bots(1, username="bob", start=False)
    refused: list = []
    writer = DbWriter("t", linger_s=0.3, on_refused=lambda owner, fn, row, exc: refused.append((owner, row, exc)))

    def fill(account, bot, trade_id: str, quantity: Decimal) -> dict:
        return {"ts": datetime.now(UTC), "account_id": account.pk, "bot_id": bot.pk, "client_order_id": "",
                "venue_trade_id": trade_id, "side": "buy", "price": Decimal("60000"), "quantity": quantity,
                "fee": Decimal(0), "fee_currency": "USDT", "liquidity": "maker"}  # fmt: skip

    writer.submit(
        fills_record, [fill(account_b, bot_b, f"ob-b{i}", Decimal("0.001")) for i in range(3)], owner=bot_b.pk
    )
    writer.submit(fills_record, [fill(account_a, bot_a, "ob-a0", Decimal("0.001")),
                                 fill(account_a, bot_a, "ob-a1", Decimal("-0.001"))], owner=bot_a.pk)  # fmt: skip
    writer.drain(10)
    assert set(Fill.objects.filter(venue_trade_id__startswith="ob-").values_list("venue_trade_id", flat=True)) == {
        "ob-b0",
        "ob-b1",
        "ob-b2",
        "ob-a0",
    }
    assert [(owner, row["venue_trade_id"]) for owner, row, _exc in refused] == [(bot_a.pk, "ob-a1")]
    exc = refused[0][2]
    assert isinstance(exc, ValidationError) and "accepted: a decimal above 0" in exc.message_dict["quantity"][0]
    assert "quantity -0.001" in fills_record.describe(refused[0][1])


def test_a_batch_runs_row_creation_before_the_updates_that_refer_to_it():
    """The writer merges queued calls per function; creates go first even when an update of an
    older order came before them in the queue."""
    from apps.orders.models import Order
    from workers import records
    from workers.dbwriter import DbWriter

    _user, account, (bot,) = make_paper_bots(1, start=False)
    inst = records.market_instrument(bot.market)
    orders_create([(bot.pk, account.pk, bot.market_id, inst, _place("bf-a"))])
    writer = DbWriter("t", linger_s=0.3)
    writer.submit(orders_update, [("bf-a", "open", "va", None, "", inst)])
    writer.submit(orders_create, [(bot.pk, account.pk, bot.market_id, inst, _place("bf-b"))])
    writer.submit(orders_update, [("bf-b", "cancelled", "vb", None, "requote", inst)])
    writer.drain(10)
    assert writer.timing["orders_update"][0] == 1  # one batch: both updates in one statement
    assert Order.objects.get(client_order_id="bf-a").status == "open"
    assert Order.objects.get(client_order_id="bf-b").status == "cancelled"


def test_an_acknowledged_row_is_created_open_with_its_acknowledgement_time():
    from apps.orders.models import Order
    from workers import records

    _user, account, (bot,) = make_paper_bots(1, start=False)
    inst = records.market_instrument(bot.market)
    orders_create(
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


def test_a_bot_whose_rows_the_database_refuses_goes_to_error_and_another_users_bot_keeps_every_row(host, redis_client):
    """Two bots of two users on one host: the database refuses every order row of one of them
    (a CHECK constraint the test adds: input validation stops absurd sizes before a bot starts,
    so the refusal comes from the database itself, as any constraint or an older release's
    stored value would). Its refused row puts it into ``error`` naming the refusal, after
    cancelling its orders; the other bot's order rows and fills are all written, at once."""
    from django.db import connection

    from apps.bots.models import Bot, BotEvent
    from apps.bots.services import bot_start
    from apps.orders.models import Order
    from trading.events import TradeTick
    from trading.instruments import Side
    from workers import codec, keys, supervisor

    alice, account_a, (bot_a,) = make_paper_bots(1, username="alice", start=False)
    _bob, account_b, (bot_b,) = make_paper_bots(1, username="bob")
    table = Order._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"ALTER TABLE {table} ADD CONSTRAINT mm_test_refuse_bot CHECK (bot_id <> {int(bot_a.pk)}) NOT VALID"
        )
    try:
        bot_start(bot=Bot.objects.get(pk=bot_a.pk), actor=alice)
        supervisor.tick()
        assert wait_until(lambda: Bot.objects.get(pk=bot_a.pk).actual_state == "error", 30), Bot.objects.get(
            pk=bot_a.pk
        ).actual_state
        bot = Bot.objects.get(pk=bot_a.pk)
        assert "the database refused its order" in bot.state_reason and "mm_test_refuse_bot" in bot.state_reason
        assert BotEvent.objects.filter(bot=bot_a, code="write_refused", kind="error").exists()
        assert wait_until(lambda: redis_client.hlen(keys.paper(account_a.pk, "BTC/USDT", "orders")) == 0, 10)
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS mm_test_refuse_bot")

    assert wait_until(lambda: Bot.objects.get(pk=bot_b.pk).actual_state == "running", 20)
    runner = host.bots[bot_b.pk]
    assert wait_until(lambda: len(runner.venue.sim.open_orders()) >= 2, 20), "bot never quoted"
    stream = keys.feed_stream("sim:alpha", "BTC/USDT")

    def trade_through() -> None:
        ts = time.time_ns()
        batch = []
        for i, order in enumerate(runner.venue.sim.open_orders()):
            through = order.price - 1 if order.side is Side.BUY else order.price + 1
            aggressor = Side.SELL if order.side is Side.BUY else Side.BUY
            batch.append((stream, codec.encode_trade(TradeTick(ts + i, through, 10**6, aggressor, f"iso{i}")), ts))
        host._dispatch(batch)

    host.loop.call_soon_threadsafe(trade_through)
    assert wait_until(lambda: venue_fills_recorded(redis_client, account_b), 5), "a fill of the other bot is missing"
    placed = {
        fields[b"cid"].decode()
        for _id, fields in redis_client.xrange(keys.place_log())
        if fields[b"bot"] == str(bot_b.pk).encode() and fields[b"action"] == b"place"
    }
    assert wait_until(
        lambda: placed <= set(Order.objects.filter(bot=bot_b).values_list("client_order_id", flat=True)), 5
    )


def _synchronous_commit_setting() -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        return cursor.fetchone()[0]


def _sc_telemetry(rows: list) -> str:
    return _synchronous_commit_setting()


def _sc_fills(rows: list) -> str:
    return _synchronous_commit_setting()


def test_batches_with_fills_or_order_updates_commit_synchronously_telemetry_does_not():
    """``synchronous_commit`` as each kind of batch ran it, on both paths (a transaction per
    merged batch; a lone statement in autocommit on a ``one_statement`` writer)."""
    import threading

    from apps.core.writes import batchable, durable
    from workers.dbwriter import DbWriter

    telemetry = batchable(_sc_telemetry)
    fills = durable(batchable(_sc_fills))
    assert fills_record.durable and orders_update.durable
    assert not getattr(pnl_snapshots_record, "durable", False)
    for writer in (DbWriter("t-db"), DbWriter("t-orders", one_statement=True)):
        seen = []
        for fn in (telemetry, fills, telemetry, fills):
            done = threading.Event()
            writer.submit(
                fn, [1], done=lambda result, exc, done=done, seen=seen: (seen.append(result or exc), done.set())
            )
            assert done.wait(30)
        writer.drain(10)
        assert seen == ["off", "on", "off", "on"], (writer, seen)
