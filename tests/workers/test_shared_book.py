"""A host keeps one book per feed for all its bots (engines and paper matching read it), a bot
that falls behind handles every trade but only the newest book, and still records every fill;
a cycle's places and cancels reach the paper venue in one fenced round trip."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest

from tests.workers.helpers import make_paper_bots, paper_venue, venue_fills_recorded, wait_until

pytestmark = [pytest.mark.django_db(transaction=True)]


def on_loop(host, fn):
    """Run ``fn()`` on the host's loop thread (nothing else runs there meanwhile)."""
    return asyncio.run_coroutine_threadsafe(_call(fn), host.loop).result(10)


async def _call(fn):
    return fn()


class _Subscriber:
    """What the host hands market items to (a bot runner's two members)."""

    def __init__(self) -> None:
        self.items: list = []
        self.wake = threading.Event()

    def push_market(self, item) -> None:
        self.items.append(item)


def test_bots_of_one_feed_read_one_book_and_a_bot_behind_records_every_fill(host, redis_client):
    from apps.bots.models import Bot
    from trading.events import TradeTick
    from trading.instruments import Side
    from workers import codec, keys, lifecycle, supervisor

    _user, account, bots = make_paper_bots(2)
    supervisor.tick()
    assert wait_until(lambda: all(Bot.objects.get(pk=b.pk).actual_state == "running" for b in bots), 20)
    runners = [host.bots[b.pk] for b in bots]
    assert wait_until(lambda: all(len(r.venue.sim.open_orders()) >= 2 for r in runners), 20), "bots never quoted"
    book = host.book("sim:alpha", "BTC/USDT")
    assert all(r.engine.book is book and r.venue.sim.book is book for r in runners)
    assert book.best_bid() is not None and book.best_ask() is not None

    stream = keys.feed_stream("sim:alpha", "BTC/USDT")
    runner = runners[0]

    def fall_behind():
        """Queue, while the bot cannot run: 20 copies of the book and one trade through each of
        the bot's resting orders between them (each fills that order whole)."""
        ts = time.time_ns()
        batch = []

        def snap(at: int) -> bytes:  # as the reader hands entries over: encoded
            s = book.snapshot(at)
            return codec.encode_snapshot(s.ts, s.bids, s.asks)

        for i, order in enumerate(runner.venue.sim.open_orders()):
            through = order.price - 1 if order.side is Side.BUY else order.price + 1
            aggressor = Side.SELL if order.side is Side.BUY else Side.BUY
            batch.append((stream, snap(ts + 2 * i), ts))
            batch.append(
                (stream, codec.encode_trade(TradeTick(ts + 2 * i + 1, through, 10**6, aggressor, f"x{i}")), ts)
            )
        batch.append((stream, b'["X",1]', ts))  # one bad entry: logged and skipped, the rest goes on
        batch += [(stream, snap(ts + 1000 + i), ts) for i in range(20)]
        before = runner.conflated, host.book_errors
        host._dispatch(batch)
        return before

    conflated_before, errors_before = on_loop(host, fall_behind)

    def recorded() -> bool:
        return venue_fills_recorded(redis_client, account)

    assert wait_until(recorded, 20), "a fill on the venue is missing from the database"
    assert runner.conflated - conflated_before >= 20  # superseded books were not handled one by one
    assert host.book_errors == errors_before + 1
    for bot in bots:
        Bot.objects.filter(pk=bot.pk).update(desired_state="stopped")
        lifecycle.apply(bot.pk)
    assert wait_until(lambda: all(Bot.objects.get(pk=b.pk).actual_state == "stopped" for b in bots), 20)
    assert wait_until(recorded, 10)


def test_places_and_cancels_go_in_one_fenced_round_trip(clean_redis):
    import redis.asyncio as aioredis
    from django.conf import settings

    from trading.book import OrderBook
    from trading.events import BookSnapshot, CancelOrder, OrderAccepted, OrderCancelled, OrderRejected, PlaceOrder
    from trading.events import TimeInForce as Tif
    from trading.instruments import Instrument, Side
    from workers import keys
    from workers.paper_venue import LeaseLost

    inst = Instrument.create(symbol="BTC/USDT", tick_size="0.01", lot_size="0.0001")
    book = OrderBook()
    book.apply_snapshot(BookSnapshot(ts=1, bids=((100_00, 5),), asks=((100_02, 5),)))

    async def scenario():
        client = aioredis.Redis.from_url(settings.REDIS_URL)
        venue = await paper_venue(client, inst, book)
        lease = keys.bot_lease(999)
        sent = []
        real_exec = venue._exec

        async def counting(ops):
            sent.append(len(ops))
            return await real_exec(ops)

        venue._exec = counting
        events, failed = await venue.send_many(
            [
                PlaceOrder("t9-1", Side.BUY, 100_00, 3, Tif.POST_ONLY),
                PlaceOrder("t9-2", Side.SELL, 100_02, 3, Tif.POST_ONLY),
                PlaceOrder("t9-3", Side.BUY, 100_02, 3, Tif.POST_ONLY),  # would cross: rejected
            ]
        )
        assert failed == [] and sent == [4]  # three places and the reject's removal, one round trip
        assert [(type(e), e.client_order_id) for e in events] == [
            (OrderAccepted, "t9-1"),
            (OrderAccepted, "t9-2"),
            (OrderRejected, "t9-3"),
        ]
        stored = await client.hkeys(keys.paper(7, "BTC/USDT", "orders"))
        assert sorted(stored) == [b"t9-1", b"t9-2"]
        events, failed = await venue.send_many([CancelOrder("t9-1", "requote"), CancelOrder("t9-3", "requote")])
        assert [(type(e), e.client_order_id) for e in events] == [(OrderCancelled, "t9-1"), (OrderRejected, "t9-3")]
        assert await client.hkeys(keys.paper(7, "BTC/USDT", "orders")) == [b"t9-2"]
        log = [entry[1] for entry in await client.xrange(keys.place_log())]
        assert [(e[b"cid"], e[b"action"], e[b"token"]) for e in log] == [
            (b"t9-1", b"place", b"1"),
            (b"t9-2", b"place", b"1"),
            (b"t9-3", b"place", b"1"),
            (b"t9-1", b"cancel", b"1"),
        ]
        await client.set(lease, "someone-else:2")  # the lease moved on: nothing is written
        with pytest.raises(LeaseLost):
            await venue.send_many([PlaceOrder("t9-4", Side.BUY, 99_00, 3, Tif.POST_ONLY)])
        assert await client.hkeys(keys.paper(7, "BTC/USDT", "orders")) == [b"t9-2"]
        await client.aclose()

    asyncio.run(scenario())


def test_a_market_event_fill_goes_out_with_the_engines_answer_and_is_confirmed_before_it_counts(clean_redis):
    """Fills a market event makes are kept by the venue (trade ids are made by the venue object,
    unique per owner) and sent ahead of the cancels and places that answer them, in the same
    round trip; ``confirm`` sends them alone and says whether Redis took them (fenced)."""
    import redis.asyncio as aioredis
    from django.conf import settings

    from trading.book import OrderBook
    from trading.events import BookSnapshot, CancelOrder, OrderFilled, PlaceOrder, TradeTick
    from trading.events import TimeInForce as Tif
    from trading.instruments import Instrument, Side
    from workers import keys
    from workers.paper_venue import LeaseLost, PaperVenue

    inst = Instrument.create(symbol="BTC/USDT", tick_size="0.01", lot_size="0.0001")
    book = OrderBook()
    book.apply_snapshot(BookSnapshot(ts=1, bids=((100_00, 5),), asks=((100_03, 5),)))
    trades_key = keys.paper(7, "BTC/USDT", "trades")

    async def scenario():
        client = aioredis.Redis.from_url(settings.REDIS_URL)
        lease = keys.bot_lease(999)
        await client.set(lease, "me:1")
        venue = PaperVenue(client, account_id=7, instrument=inst, bot_id=999, prefix="t9", lease_key=lease,
                           lease_value="me:1", token=1, book=book, defer_fills=True)  # fmt: skip
        await venue.restore()
        await venue.send_many(
            [PlaceOrder("t9-1", Side.BUY, 100_01, 3, Tif.POST_ONLY), PlaceOrder("t9-2", Side.BUY, 100_01, 3, Tif.GTC)]
        )
        trips = venue.round_trips
        events = await venue.on_market(TradeTick(ts=time.time_ns(), price=100_01, qty=2, aggressor=Side.SELL))
        fills = [e for e in events if type(e) is OrderFilled]
        assert [(f.client_order_id, f.qty) for f in fills] == [("t9-1", 2)]
        assert fills[0].trade_id.startswith("p7-999.1.")
        assert venue.unconfirmed and venue.round_trips == trips  # queued, nobody waited
        # The engine's answer (cancel the rest) goes in one round trip with the fill.
        await venue.send_many([CancelOrder("t9-1", "requote")])
        assert venue.round_trips == trips + 1 and not venue.unconfirmed
        stored = [json.loads(b) for b in await client.lrange(trades_key, 0, -1)]
        assert [(f["cid"], f["qty"], f["id"]) for f in stored] == [("t9-1", 2, fills[0].trade_id)]
        assert await client.hkeys(keys.paper(7, "BTC/USDT", "orders")) == [b"t9-2"]

        # The next owner's trade ids cannot collide with this one's.
        other = PaperVenue(client, account_id=7, instrument=inst, bot_id=999, prefix="t9", lease_key=lease,
                           lease_value="me:1", token=2, book=book, defer_fills=True)  # fmt: skip
        assert other._trade_ids != venue._trade_ids and other._trade_ids.startswith("p7-999.2.")

        # A fill queued after the lease moved on is refused by Redis and confirm says so.
        await client.set(lease, "someone-else:2")
        events = await venue.on_market(TradeTick(ts=time.time_ns(), price=100_00, qty=9, aggressor=Side.SELL))
        assert [e.client_order_id for e in events if type(e) is OrderFilled] == ["t9-2"]
        with pytest.raises(LeaseLost, match="fill refused"):
            await venue.confirm()
        assert not venue.unconfirmed
        assert len(await client.lrange(trades_key, 0, -1)) == 1  # nothing written for it
        await client.aclose()

    asyncio.run(scenario())


def test_a_fill_the_venue_refuses_is_never_recorded(host, redis_client):
    """A bot's fill is queued with its cycle's answer and its row held until Redis confirms: when
    the lease has moved on, Redis refuses the fill (fenced) and the database never has it."""
    from apps.bots.models import Bot, BotEvent
    from apps.orders.models import Fill
    from trading.events import TradeTick
    from trading.instruments import Side
    from workers import codec, keys, supervisor

    _user, account, (bot,) = make_paper_bots(1)
    supervisor.tick()
    assert wait_until(lambda: Bot.objects.get(pk=bot.pk).actual_state == "running", 20)
    runner = host.bots[bot.pk]
    assert wait_until(lambda: len(runner.venue.sim.open_orders()) >= 2, 20), "bot never quoted"
    stream = keys.feed_stream("sim:alpha", "BTC/USDT")
    k_trades = keys.paper(account.pk, "BTC/USDT", "trades")
    target: list[str] = []

    def lose_lease_and_trade_through():
        """On the loop thread, so nothing of the bot runs between the two: another owner takes
        the lease, then a trade goes through one of the bot's resting orders."""
        order = runner.venue.sim.open_orders()[0]
        target.append(order.client_order_id)
        redis_client.set(keys.bot_lease(bot.pk), "another-host:999")
        through = order.price - 1 if order.side is Side.BUY else order.price + 1
        aggressor = Side.SELL if order.side is Side.BUY else Side.BUY
        trade = TradeTick(time.time_ns(), through, 10**6, aggressor, "refused-1")
        host._dispatch([(stream, codec.encode_trade(trade), time.time_ns())])

    on_loop(host, lose_lease_and_trade_through)
    assert wait_until(lambda: bot.pk not in host.bots, 15), "the bot kept running without its lease"
    time.sleep(0.5)  # anything still on the writer lands
    stored = set(Fill.objects.filter(account=account).values_list("venue_trade_id", flat=True))
    venue = {json.loads(b)["id"] for b in redis_client.lrange(k_trades, 0, -1)}
    assert stored <= venue  # nothing recorded that the venue does not have
    assert not any(json.loads(b)["cid"] == target[0] for b in redis_client.lrange(k_trades, 0, -1))
    assert not Fill.objects.filter(client_order_id=target[0]).exists()  # the refused fill
    # The loop stopped because Redis refused that fill (not because the renewal noticed first).
    assert wait_until(
        lambda: BotEvent.objects.filter(bot=bot, code="lease_lost", message__contains="fill refused").exists(), 10
    )


def test_the_host_reader_follows_streams_subscribed_later_and_hands_every_entry_over_in_order(host, redis_client):
    """The reader reads the streams in use when they change, from their newest entry on, and
    hands every entry to the loop in order, a bad one skipped."""

    from trading.events import TradeTick
    from trading.instruments import Side
    from workers import codec, keys

    def publish(stream: str, i: int) -> None:
        trade = TradeTick(i, 100 + i, 10, Side.BUY, f"t{i}")
        redis_client.xadd(stream, {"e": codec.encode_trade(trade), "p": str(time.time_ns())})

    first, second = _Subscriber(), _Subscriber()
    s1, s2 = keys.feed_stream("sim:a", "X/Y"), keys.feed_stream("sim:b", "X/Y")
    publish(s2, 99)  # before anyone reads s2: not handed over (reading starts at the newest)
    on_loop(host, lambda: host.subscribe(first, "sim:a", "X/Y"))
    assert wait_until(lambda: host._streams_in_use == {s1}, 5)
    time.sleep(0.3)  # the reader's next XREAD covers s1
    for i in range(1, 4):
        publish(s1, i)
    assert wait_until(lambda: len(first.items) == 3, 5)
    on_loop(host, lambda: host.subscribe(second, "sim:b", "X/Y"))
    time.sleep(0.5)  # the XREAD in flight (BLOCK 200 ms) ends; the next one covers both
    errors = host.book_errors
    redis_client.xadd(s2, {"e": b"not an event", "p": str(time.time_ns())})
    for i in range(4, 10):
        publish(s1 if i % 2 else s2, i)
    assert wait_until(lambda: len(first.items) == 6 and len(second.items) == 3, 5), (first.items, second.items)
    assert [e.trade_id for e, _ in first.items] == ["t1", "t2", "t3", "t5", "t7", "t9"]
    assert [e.trade_id for e, _ in second.items] == ["t4", "t6", "t8"]
    assert host.book_errors == errors + 1  # the bad entry, logged and skipped
    stats = host.stats()
    assert 0 < stats["feed_to_bot_p99_ms"] < 5000


def test_a_place_whose_answer_was_lost_and_that_the_same_batch_cancelled_is_never_placed_again(clean_redis):
    """The engine may cancel an order in the same batch that places it. If the place's answer is
    lost, the venue still took it and the cancel removed it: recovery must report it cancelled,
    not "never arrived" (which would send it again: the same order placed twice)."""
    import redis.asyncio as aioredis
    from django.conf import settings

    from trading.book import OrderBook
    from trading.events import BookSnapshot, CancelOrder, OrderCancelled, PlaceOrder
    from trading.events import TimeInForce as Tif
    from trading.instruments import Instrument, Side
    from workers import keys
    from workers.paper_venue import PaperFaults

    inst = Instrument.create(symbol="BTC/USDT", tick_size="0.01", lot_size="0.0001")
    book = OrderBook()
    book.apply_snapshot(BookSnapshot(ts=1, bids=((100_00, 5),), asks=((100_02, 5),)))

    async def scenario():
        client = aioredis.Redis.from_url(settings.REDIS_URL)
        venue = await paper_venue(client, inst, book, faults=PaperFaults(timeout=1.0))
        place = PlaceOrder("t9-1", Side.BUY, 100_00, 3, Tif.POST_ONLY)
        _events, failed = await venue.send_many([place, CancelOrder("t9-1", "requote")])
        assert [(cmd.client_order_id, type(exc).__name__) for cmd, exc in failed] == [("t9-1", "TimeoutError")]
        recovered = await venue.recover_place(place)
        assert recovered is not None, "the venue took the order: it must not be sent again"
        assert [(type(e), e.client_order_id) for e in recovered] == [(OrderCancelled, "t9-1")]
        log = [f for _id, f in await client.xrange(keys.place_log()) if f[b"cid"] == b"t9-1"]
        assert [f[b"action"] for f in log] == [b"place", b"cancel"]
        assert await client.hlen(keys.paper(7, "BTC/USDT", "orders")) == 0
        # An order whose place never reached the venue is still reported as such (sent again).
        lost = PlaceOrder("t9-2", Side.BUY, 100_00, 3, Tif.POST_ONLY)
        assert await venue.recover_place(lost) is None
        await client.aclose()

    asyncio.run(scenario())


def test_deferred_fills_sent_in_a_pipeline_that_fails_are_never_confirmed(clean_redis):
    """A cycle's fill writes travel with its commands (``send_many``); when that pipeline fails
    (Redis gone mid-write) nobody knows whether Redis applied them, so ``confirm`` raises and the
    loop drops the fills it held (the venue's trade list is the truth) instead of writing rows
    for fills the venue may not have: the reliability suite saw such rows after a Redis kill."""
    import redis.asyncio as aioredis
    from django.conf import settings
    from redis.exceptions import ConnectionError as RedisConnectionError

    from trading.book import OrderBook
    from trading.events import BookSnapshot, OrderFilled, PlaceOrder, TradeTick
    from trading.events import TimeInForce as Tif
    from trading.instruments import Instrument, Side
    from workers import keys
    from workers.paper_venue import PaperVenue

    inst = Instrument.create(symbol="BTC/USDT", tick_size="0.01", lot_size="0.0001")
    book = OrderBook()
    book.apply_snapshot(BookSnapshot(ts=1, bids=((100_00, 5),), asks=((100_03, 5),)))

    async def scenario():
        client = aioredis.Redis.from_url(settings.REDIS_URL)
        lease = keys.bot_lease(999)
        await client.set(lease, "me:1")
        venue = PaperVenue(client, account_id=7, instrument=inst, bot_id=999, prefix="t9", lease_key=lease,
                           lease_value="me:1", token=1, book=book, defer_fills=True)  # fmt: skip
        await venue.restore()
        await venue.send_many([PlaceOrder("t9-1", Side.BUY, 100_01, 3, Tif.GTC)])
        events = await venue.on_market(TradeTick(ts=time.time_ns(), price=100_01, qty=2, aggressor=Side.SELL))
        assert [type(e) for e in events].count(OrderFilled) == 1 and venue.unconfirmed
        # Redis goes away under the next pipeline (the connection refused from here on).
        venue.redis = aioredis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)
        with pytest.raises(RedisConnectionError):
            await venue.send_many([PlaceOrder("t9-2", Side.BUY, 100_00, 3, Tif.GTC)])
        with pytest.raises(RedisConnectionError):
            await venue.confirm()  # the held fill is dropped by the loop, never written as a row
        await venue.confirm()  # said once: later calls carry on
        await client.aclose()

    asyncio.run(scenario())
