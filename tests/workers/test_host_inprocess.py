"""A host in this process (thread) against the real Redis and PostgreSQL: bots quote on the
paper venue, stop leaves no order on the venue."""

from __future__ import annotations

import pytest

from apps.orders.services import orders_create, orders_update
from tests.workers.helpers import make_paper_bots, wait_until

pytestmark = [pytest.mark.django_db(transaction=True)]


def test_started_paper_bots_quote_on_the_venue_and_stop_leaves_no_open_order(host, redis_client):
    from apps.bots.models import Bot
    from apps.orders.models import Order
    from workers import keys, lifecycle, supervisor

    _user, account, bots = make_paper_bots(2)
    supervisor.tick()
    assert wait_until(lambda: all(Bot.objects.get(pk=b.pk).actual_state == "running" for b in bots), 20)
    k_orders = keys.paper(account.pk, "BTC/USDT", "orders")
    assert wait_until(lambda: redis_client.hlen(k_orders) >= 4, 20), "bots never quoted"
    # Paper order rows follow the venue on the host's writer (not awaited before the place).
    assert wait_until(lambda: Order.objects.filter(bot__in=bots).count() >= 4, 10)
    # The venue's acknowledgements are stamped (order-entry latency for the observatory).
    assert wait_until(lambda: Order.objects.filter(bot__in=bots, acked_at__isnull=False).exists(), 10)
    # Each running bot's live status, as the dashboards read it, comes from its owner: its
    # state, resting quotes (the venue's prices) and PnL figures.
    from decimal import Decimal

    from apps.dashboard import live

    def statuses_shown() -> bool:
        shown = live.bot_status_many(bot_ids=[b.pk for b in bots])
        return all((shown.get(b.pk) or {}).get("state") == "running" and len(shown[b.pk]["orders"]) >= 2 for b in bots)

    assert wait_until(statuses_shown, 10), live.bot_status_many(bot_ids=[b.pk for b in bots])
    status = live.bot_status(bot_id=bots[0].pk)
    assert status["owner"] == host.host_id and status["token"] == host.bots[bots[0].pk].lease.token
    resting = {Decimal(o["price"]) for o in status["orders"]}
    # every quote shown is one of the bot's order rows (rows follow the venue: waited for)
    assert wait_until(lambda: resting <= set(Order.objects.filter(bot=bots[0]).values_list("price", flat=True)), 10)
    assert {"equity", "position", "realized", "drawdown", "risk"} <= set(status)
    # The PnL snapshot of the same instant is persisted with the same figures (exact decimals).
    from apps.core.timeseries import ns_to_dt
    from apps.portfolio.models import PnlSnapshot

    def persisted():
        return PnlSnapshot.objects.filter(bot=bots[0], ts=ns_to_dt(status["ts"])).first()

    assert wait_until(lambda: persisted() is not None, 10), "the PnL snapshot was not persisted"
    row = persisted()
    for field in ("position", "equity", "realized", "unrealized", "drawdown"):
        assert getattr(row, field) == Decimal(status[field]), field
    assert row.drawdown == max(Decimal(0), row.peak_equity - row.equity)
    assert Decimal("1000") < row.mid < Decimal("1000000")  # a BTC/USDT price, not an amount
    assert wait_until(lambda: all(PnlSnapshot.objects.filter(bot=b).exists() for b in bots), 10)
    for bot in bots:
        Bot.objects.filter(pk=bot.pk).update(desired_state="stopped")
        lifecycle.apply(bot.pk)
    assert wait_until(lambda: all(Bot.objects.get(pk=b.pk).actual_state == "stopped" for b in bots), 20)
    assert redis_client.hlen(k_orders) == 0
    assert not Order.objects.filter(bot__in=bots, status__in=["pending_new", "open", "partially_filled"]).exists()


def test_order_updates_are_coalesced_and_a_closed_order_only_becomes_filled():
    from decimal import Decimal

    from apps.orders.models import Order
    from tests.workers.helpers import make_paper_bots
    from trading.events import PlaceOrder
    from trading.instruments import Side
    from workers import records

    _user, account, bots = make_paper_bots(1, start=False)
    bot = bots[0]
    inst = records.market_instrument(bot.market)
    orders_create([(bot.pk, account.pk, bot.market_id, inst, PlaceOrder("t-1", Side.BUY, 6_000_000, 100)),
                           (bot.pk, account.pk, bot.market_id, inst, PlaceOrder("t-2", Side.SELL, 6_000_100, 100))])  # fmt: skip
    orders_update(
        [
            ("t-1", "open", "v1", None, "", inst, 1_700_000_000_123_456_000),
            ("t-1", "partially_filled", "", 40, "", inst),
            ("t-2", "open", "v2", None, "", inst),
            ("t-2", "cancelled", "", None, "requote", inst),
        ]
    )
    orders_update([("t-2", "open", "", None, "", inst)])  # stale: a closed order stays closed
    one, two = Order.objects.get(client_order_id="t-1"), Order.objects.get(client_order_id="t-2")
    assert (one.status, one.venue_order_id, one.filled_quantity) == ("partially_filled", "v1", Decimal("0.004"))
    assert one.acked_at.timestamp() == 1_700_000_000.123456 and two.acked_at is None
    assert (two.status, two.venue_order_id, two.reason) == ("cancelled", "v2", "requote")
    assert two.closed_at is not None
    orders_update([("t-2", "filled", "", 100, "", inst)])  # a late fill after the cancel request
    assert Order.objects.get(client_order_id="t-2").status == "filled"


def test_kill_switch_with_flatten_cancels_everything_and_closes_the_position(host, redis_client):
    from decimal import Decimal

    from django.db.models import Sum

    from apps.bots.models import Bot, BotEvent
    from apps.orders.models import Fill, Order
    from workers import keys, lifecycle, supervisor

    _user, account, (bot,) = make_paper_bots(1, spread="0.00003")
    supervisor.tick()

    def position() -> Decimal:
        fills = Fill.objects.filter(bot=bot)
        buys = fills.filter(side="buy").aggregate(q=Sum("quantity"))["q"] or Decimal(0)
        sells = fills.filter(side="sell").aggregate(q=Sum("quantity"))["q"] or Decimal(0)
        return buys - sells

    assert wait_until(lambda: position() != 0, 40), "the bot never took a position"
    Bot.objects.filter(pk=bot.pk).update(desired_state="stopped")
    lifecycle.apply(bot.pk, kill=True, flatten=True)
    assert wait_until(lambda: Bot.objects.get(pk=bot.pk).actual_state == "stopped", 20)
    assert wait_until(lambda: position() == 0, 10), f"position left: {position()}"
    event = BotEvent.objects.get(bot=bot, code="flatten")
    if "already flat" not in event.message:  # a fill may have closed the position just before
        assert Fill.objects.filter(bot=bot, liquidity="taker").exists()
    assert redis_client.hlen(keys.paper(account.pk, "BTC/USDT", "orders")) == 0
    assert not Order.objects.filter(bot=bot, status__in=["pending_new", "open", "partially_filled"]).exists()


def test_take_over_never_reuses_the_id_of_an_order_the_venue_holds_without_a_row(host, redis_client):
    """Paper order rows are written behind the venue, so after a crash the venue may hold an
    order with a later id than any row: the new owner adopts it and never issues that id again
    (a place with it would overwrite the order at the venue)."""
    import json
    import time

    from apps.bots.models import Bot
    from apps.bots.services import bot_start
    from apps.orders.models import Order
    from workers import keys, records, supervisor

    user, account, bots = make_paper_bots(1, start=False)
    bot = bots[0]
    prefix = records.bot_prefix(bot)
    held = f"{prefix}-z"  # sequence 35; the database has no order row of this bot
    k_orders = keys.paper(account.pk, "BTC/USDT", "orders")
    record = {"cid": held, "voi": f"P{account.pk}-{held}", "side": 1, "price": 100, "qty": 100, "filled": 0,
              "tif": "GTC", "ts": time.time_ns()}  # fmt: skip
    redis_client.hset(k_orders, held, json.dumps(record))
    bot_start(bot=bot, actor=user)
    supervisor.tick()
    assert wait_until(lambda: Bot.objects.get(pk=bot.pk).actual_state == "running", 20)
    assert wait_until(lambda: Order.objects.filter(bot=bot).exclude(client_order_id=held).count() >= 2, 20)
    # Adopted: its row written from the venue (the strategy may then cancel it, far from its quotes).
    assert Order.objects.filter(client_order_id=held, bot=bot).exists()
    placed = [f[b"cid"].decode() for _id, f in redis_client.xrange(keys.place_log()) if f[b"action"] == b"place"]
    assert placed and held not in placed
    assert all(int(cid.rsplit("-", 1)[1], 36) > 35 for cid in placed)


def test_take_over_never_reuses_the_id_of_an_order_cancelled_before_its_row_was_written(host, redis_client):
    """An owner that placed an order and cancelled it within the few ms before its row was
    written, then died, leaves no row, venue order or trade of it: the new owner learns the id
    from the bot's last-place mark (set by the same fenced script as the place) and never
    issues it, or any id before it, again."""
    import json
    import time

    from apps.bots.models import Bot
    from apps.bots.services import bot_start
    from apps.orders.models import Order
    from workers import keys, records, supervisor
    from workers.leases import SyncLease
    from workers.paper_scripts import DELETE, PUT

    user, account, bots = make_paper_bots(1, start=False)
    bot = bots[0]
    prefix = records.bot_prefix(bot)
    gone = f"{prefix}-z"  # sequence 35: placed and cancelled by a previous owner, no row
    k_orders = keys.paper(account.pk, "BTC/USDT", "orders")
    record = {"cid": gone, "voi": f"P{account.pk}-{gone}", "side": 1, "price": 100, "qty": 100, "filled": 0,
              "tif": "GTC", "ts": time.time_ns()}  # fmt: skip
    lease = SyncLease(redis_client, keys.bot_lease(bot.pk), keys.bot_fence(bot.pk), "previous-owner")
    assert lease.acquire()
    last_place = keys.bot_last_place(bot.pk)
    args = (lease.key, k_orders, keys.place_log(), last_place, lease.value, gone)
    assert redis_client.eval(PUT, 4, *args, json.dumps(record), "place", bot.pk, lease.token) == 1
    assert redis_client.eval(DELETE, 3, *args[:3], lease.value, gone, "cancel", bot.pk, lease.token) == 1
    lease.release()
    assert redis_client.get(last_place) == gone.encode() and not redis_client.hexists(k_orders, gone)
    assert not Order.objects.filter(bot=bot).exists()
    bot_start(bot=bot, actor=user)
    supervisor.tick()
    assert wait_until(lambda: Bot.objects.get(pk=bot.pk).actual_state == "running", 20)
    assert wait_until(lambda: Order.objects.filter(bot=bot).count() >= 2, 20)
    placed = placed_now(redis_client, bot.pk)
    assert placed[0] == gone and len(placed) >= 3  # the previous owner's, then the new owner's
    assert all(int(cid.rsplit("-", 1)[1], 36) > 35 for cid in placed[1:])
    # every place moves the mark: it is the newest id placed so far
    mark = redis_client.get(last_place).decode()
    assert mark in placed_now(redis_client, bot.pk)
    assert int(mark.rsplit("-", 1)[1], 36) >= max(int(cid.rsplit("-", 1)[1], 36) for cid in placed)


def placed_now(redis_client, bot_id: int) -> list[str]:
    from workers import keys

    return [
        f[b"cid"].decode()
        for _id, f in redis_client.xrange(keys.place_log())
        if f[b"action"] == b"place" and f[b"bot"] == str(bot_id).encode()
    ]
