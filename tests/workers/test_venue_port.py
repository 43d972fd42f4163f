"""The venue port (``trading.ports.BotVenue``): the paper and the live venue implement all of
it, so the bot runner drives either without asking which it holds."""

from __future__ import annotations

import ast
import asyncio
import inspect
import time
from decimal import Decimal

import pytest

pytestmark = [pytest.mark.django_db(transaction=True)]


def test_both_venues_have_every_member_of_the_port_and_the_runner_never_asks_which_it_holds():
    from trading.ports import BotVenue
    from workers import bot_control, bot_records, bot_start, botloop
    from workers.live_venue import LiveVenue
    from workers.paper_venue import PaperVenue

    members = {name for name in vars(BotVenue) if not name.startswith("_")} | set(BotVenue.__annotations__)
    assert {"send_many", "fetch_balances", "close", "holds_orders", "round_trips"} <= members
    for cls in (PaperVenue, LiveVenue):
        assert [m for m in sorted(members) if not hasattr(cls, m)] == [], cls.__name__
    assert (PaperVenue.holds_orders, PaperVenue.reports_later) == (True, False)
    assert (LiveVenue.holds_orders, LiveVenue.reports_later) == (False, True)
    for module in (botloop, bot_control, bot_records):  # no kind check, no duck typing in the code
        names = {n.id for n in ast.walk(ast.parse(inspect.getsource(module))) if isinstance(n, ast.Name)}
        assert not names & {"PaperVenue", "LiveVenue", "getattr", "hasattr"}, module.__name__
    # Building the venue is the one place that knows the account's kind.
    assert "PaperVenue(" in inspect.getsource(bot_start)


def test_the_paper_venue_reports_orders_and_balances_moved_by_its_fills(clean_redis):
    import redis.asyncio as aioredis
    from django.conf import settings

    from tests.workers.helpers import paper_venue
    from trading.book import OrderBook
    from trading.events import BookSnapshot, CancelOrder, OrderFilled, PlaceOrder, TradeTick
    from trading.events import TimeInForce as Tif
    from trading.instruments import Instrument, Side

    inst = Instrument.create(symbol="BTC/USDT", tick_size="0.01", lot_size="0.0001")
    book = OrderBook()
    book.apply_snapshot(BookSnapshot(ts=1, bids=((100_00, 5),), asks=((100_03, 5),)))

    async def scenario():
        client = aioredis.Redis.from_url(settings.REDIS_URL)
        venue = await paper_venue(client, inst, book, balances={"BTC": Decimal("1"), "USDT": Decimal("1000")})
        assert isinstance(venue.scrub("key abc"), str) and venue.unconfirmed is False
        await venue.send_many([PlaceOrder("t9-1", Side.BUY, 100_01, 3, Tif.GTC)])
        report = await venue.fetch_order("t9-1")
        assert (report.client_order_id, report.qty, report.filled_qty) == ("t9-1", 3, 0)
        events = await venue.on_market(TradeTick(ts=time.time_ns(), price=100_01, qty=2, aggressor=Side.SELL))
        (fill,) = [e for e in events if type(e) is OrderFilled]
        balances = await venue.fetch_balances()  # confirms the deferred fill first
        assert balances["BTC"] == Decimal("1.0002")  # 2 lots bought
        assert balances["USDT"] == Decimal("1000") - Decimal("100.01") * Decimal("0.0002") - inst.cash(fill.fee)
        assert (await venue.fetch_order("t9-1")).filled_qty == 2
        await venue.send_many([CancelOrder("t9-1", "done")])
        assert await venue.fetch_order("t9-1") is None
        await venue.close()
        await client.aclose()

    asyncio.run(scenario())
