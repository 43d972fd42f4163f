"""The paper venue (``workers.paper_venue.PaperVenue``) on the real Redis: the backtester's fill
model decides, the venue's state (open orders, trade log, balance movements) lives in Redis, so
balances move exactly by notional and fee, bots of one account share them, and a new owner
continues where the old one left off.

Funds are checked before an order leaves the bot, by pre-trade risk against the account's
balances and the bot's working orders: ``tests/trading/test_risk_balance.py`` and, hosted,
``tests/workers/test_paper_balance_guard.py``."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from trading.events import (
    BookSnapshot,
    CancelOrder,
    Liquidity,
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    PlaceOrder,
    TimeInForce,
    TradeTick,
)
from trading.instruments import Instrument, Side

BTC = Instrument.create(symbol="BTC/USDT", tick_size="0.01", lot_size="0.00001", maker_fee="0.001", taker_fee="0.002")
T0 = 1_800_000_000_000_000_000
ACCOUNT = 7
BALANCES = {"USDT": Decimal("1000"), "BTC": Decimal("0")}


def book(ts: int = T0) -> BookSnapshot:
    # 64000.00 / 64000.10, one BTC each side
    return BookSnapshot(ts=ts, bids=((6_400_000, 100_000),), asks=((6_400_010, 100_000),), sequence=1)


async def venue_of(client, bot_id: int, prefix: str, now: list[int], *, holder: str = "me", token: int = 1):
    """Bot ``bot_id``'s paper venue on ``ACCOUNT``, holding the bot's lease as ``holder``, restored
    from Redis as a bot loop's start (or take-over) does, then given the book."""
    from workers import keys
    from workers.paper_venue import PaperVenue

    lease = keys.bot_lease(bot_id)
    await client.set(lease, f"{holder}:{token}")
    venue = PaperVenue(client, account_id=ACCOUNT, instrument=BTC, bot_id=bot_id, prefix=prefix, lease_key=lease,
                       lease_value=f"{holder}:{token}", token=token, balances=BALANCES, clock=lambda: now[0],
                       faults=None)  # fmt: skip
    restored = await venue.restore()
    await venue.on_market(book(now[0]))
    return venue, restored


def run(scenario) -> None:
    import redis.asyncio as aioredis
    from django.conf import settings

    async def main():
        client = aioredis.Redis.from_url(settings.REDIS_URL)
        try:
            await scenario(client)
        finally:
            await client.aclose()

    asyncio.run(main())


def test_a_post_only_order_that_would_cross_is_rejected_and_leaves_nothing_on_the_venue(clean_redis):
    from workers import keys

    async def scenario(client):
        venue, _ = await venue_of(client, 901, "a1", [T0])
        events, failed = await venue.send_many([PlaceOrder("a1-1", Side.BUY, 6_400_010, 1000, TimeInForce.POST_ONLY)])
        assert failed == []
        (event,) = events
        assert isinstance(event, OrderRejected) and event.code == "post_only_would_cross"
        assert await venue.fetch_open_orders() == [] and await venue.fetch_order("a1-1") is None
        assert await venue.fetch_balances() == BALANCES

    run(scenario)
    assert clean_redis.hlen(keys.paper(ACCOUNT, "BTC/USDT", "orders")) == 0


def test_a_maker_fill_moves_the_balances_exactly_by_notional_and_fee(clean_redis):
    async def scenario(client):
        now = [T0]
        venue, _ = await venue_of(client, 902, "b2", now)
        events, _ = await venue.send_many([PlaceOrder("b2-1", Side.BUY, 6_400_000, 1000, TimeInForce.POST_ONLY)])
        assert [type(e) for e in events] == [OrderAccepted] and events[0].venue_order_id
        now[0] += 1_000_000
        # a seller trades through our bid: we are filled in full, as maker
        trade = TradeTick(ts=now[0], price=6_399_000, qty=5000, aggressor=Side.SELL, trade_id="x1")
        (fill,) = [e for e in await venue.on_market(trade) if type(e) is OrderFilled]
        assert (fill.qty, fill.leaves_qty, fill.liquidity) == (1000, 0, Liquidity.MAKER)
        assert fill.trade_id and fill.venue_order_id == events[0].venue_order_id
        # 0.01 BTC for 640 USDT, maker fee 0.1 % = 0.64 USDT
        assert await venue.fetch_balances() == {"USDT": Decimal("359.36"), "BTC": Decimal("0.01")}
        (report,) = await venue.fetch_my_trades()
        assert (report.trade_id, report.client_order_id, report.side, report.price, report.qty, report.maker) == (
            fill.trade_id,
            "b2-1",
            Side.BUY,
            6_400_000,
            1000,
            True,
        )
        assert BTC.cash(int(report.fee)) == Decimal("0.64")  # the log keeps cash units
        assert await venue.fetch_open_orders() == []  # filled in full: off the venue

    run(scenario)


def test_bots_of_one_account_share_its_balance_movements_and_see_only_their_own_orders(clean_redis):
    async def scenario(client):
        now = [T0]
        buyer, _ = await venue_of(client, 903, "c3", now)
        seller, _ = await venue_of(client, 904, "d4", now)
        await buyer.send_many([PlaceOrder("c3-1", Side.BUY, 6_400_000, 1000, TimeInForce.GTC)])
        await seller.send_many([PlaceOrder("d4-1", Side.SELL, 6_400_010, 2000, TimeInForce.GTC)])
        now[0] += 1_000_000
        await buyer.on_market(TradeTick(ts=now[0], price=6_399_000, qty=5000, aggressor=Side.SELL, trade_id="x1"))
        # the buyer's fill moved the account's balances: the other bot's venue reports them too
        moved = {"USDT": Decimal("359.36"), "BTC": Decimal("0.01")}
        assert await buyer.fetch_balances() == moved
        assert await seller.fetch_balances() == moved
        assert [o.client_order_id for o in await seller.fetch_open_orders()] == ["d4-1"]
        assert await seller.fetch_my_trades() == []
        assert [t.client_order_id for t in await buyer.fetch_my_trades()] == ["c3-1"]

    run(scenario)


def test_a_new_owner_continues_where_the_old_one_left_off_and_the_old_one_is_fenced_out(clean_redis):
    from workers.paper_venue import LeaseLost

    async def scenario(client):
        now = [T0]
        old, _ = await venue_of(client, 905, "e5", now)
        await old.send_many([
            PlaceOrder("e5-1", Side.BUY, 6_400_000, 1000, TimeInForce.GTC),
            PlaceOrder("e5-2", Side.SELL, 6_400_010, 1000, TimeInForce.GTC),
            PlaceOrder("e5-3", Side.SELL, 6_400_020, 1000, TimeInForce.GTC),
        ])  # fmt: skip
        now[0] += 1_000_000
        await old.on_market(TradeTick(ts=now[0], price=6_399_000, qty=5000, aggressor=Side.SELL, trade_id="x1"))
        await old.confirm()
        # The host dies; another takes the lease with the next fencing token.
        now[0] += 1_000_000
        new, restored = await venue_of(client, 905, "e5", now, holder="other", token=2)
        assert sorted(o.client_order_id for o in restored) == ["e5-2", "e5-3"]
        assert [(t.client_order_id, t.qty) for t in await new.fetch_my_trades()] == [("e5-1", 1000)]
        assert await new.fetch_balances() == {"USDT": Decimal("359.36"), "BTC": Decimal("0.01")}
        # the restored orders keep matching: a buyer trades through the first ask
        now[0] += 1_000_000
        trade = TradeTick(ts=now[0], price=6_400_015, qty=5000, aggressor=Side.BUY, trade_id="x2")
        (fill,) = [e for e in await new.on_market(trade) if type(e) is OrderFilled]
        assert (fill.client_order_id, fill.qty, fill.leaves_qty, fill.liquidity) == ("e5-2", 1000, 0, Liquidity.MAKER)
        events, _ = await new.send_many([CancelOrder("e5-3", "done")])
        assert [type(e) for e in events] == [OrderCancelled]
        assert await new.fetch_open_orders() == []
        # sold 0.01 BTC at 64000.10 = 640.001 USDT, maker fee 0.640001 USDT
        assert await new.fetch_balances() == {"USDT": Decimal("998.720999"), "BTC": Decimal("0")}
        assert [t.client_order_id for t in await new.fetch_my_trades()] == ["e5-1", "e5-2"]
        # the dead owner's writes are refused
        with pytest.raises(LeaseLost):
            await old.send_many([PlaceOrder("e5-4", Side.BUY, 6_300_000, 1000, TimeInForce.GTC)])

    run(scenario)
