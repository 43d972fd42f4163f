"""VenueFactory: kind + ids -> feed and gateway; a paper bot's pieces running together."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import pytest

from connectors.ccxt_feed import CcxtFeed
from connectors.ccxt_gateway import CcxtGateway
from connectors.paper import PaperGateway
from connectors.ratelimit import LocalRateLimiter, RedisRateLimiter
from connectors.sim import SimFeed
from connectors.venues import SIM_INSTRUMENT, VenueFactory, VenueSpec
from tests.connectors.conftest import binance_markets
from trading.book import OrderBook
from trading.events import (
    BookDelta,
    BookSnapshot,
    CancelOrder,
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    PlaceOrder,
    TimeInForce,
)
from trading.instruments import Side
from trading.ports import MarketDataFeed, OrderGateway


def test_spec_refuses_unknown_kind_and_missing_ids_with_accepted_values() -> None:
    with pytest.raises(ValueError, match="live, replay, sim"):
        VenueSpec(kind="paperish", venue="x")
    with pytest.raises(ValueError, match="symbol"):
        VenueSpec(kind="live", venue="binance")
    with pytest.raises(ValueError, match="venue"):
        VenueSpec(kind="sim", venue="")


async def test_sim_specs_with_the_same_seed_share_one_generator() -> None:
    factory = VenueFactory()
    a = await factory.feed(VenueSpec("sim", "sim", options={"seed": 3, "speed": 0}))
    b = await factory.feed(VenueSpec("sim", "sim", options={"seed": 3, "speed": 0}))
    c = await factory.feed(VenueSpec("sim", "sim", options={"seed": 4, "speed": 0}))
    assert isinstance(a, SimFeed) and isinstance(a, MarketDataFeed)
    assert a.market is b.market and a.market is not c.market


async def test_replay_spec_gives_the_replay_feed_and_a_paper_gateway() -> None:
    factory = VenueFactory()
    spec = VenueSpec("replay", "binance-spot-btcusdt")
    feed = await factory.feed(spec)
    gateway = await factory.gateway(spec, balances={"USDT": Decimal("1000")})
    assert type(feed).__name__ == "ReplayFeed"
    assert isinstance(gateway, PaperGateway) and gateway.instrument.symbol == feed.instrument.symbol
    with pytest.raises(ValueError, match="binance-spot-btcusdt"):
        await factory.instrument(VenueSpec("replay", "nope"))


async def test_live_spec_builds_ccxt_feed_and_rate_limited_gateway(fake) -> None:
    markets_payload = binance_markets()
    factory = VenueFactory(redis_url="redis://127.0.0.1:6379/0")
    spec = VenueSpec(
        "live",
        "binance",
        symbol="BTC/USDT",
        account_id="acct-1",
        api_key="k",
        secret="s",
        options={"http_base": fake.http_base},
    )
    # markets come from the exchange: serve them through ccxt's own loader path
    import connectors.venues as venues_module

    original = venues_module.make_exchange

    def with_markets(*args, **kwargs):
        return original(*args, markets=markets_payload, **kwargs)

    venues_module.make_exchange = with_markets
    try:
        feed = await factory.feed(spec)
        gateway = await factory.gateway(spec)
        paper = await factory.gateway(spec, paper=True, balances={"USDT": Decimal("5")})
    finally:
        venues_module.make_exchange = original
    assert isinstance(feed, CcxtFeed) and feed.instrument.tick_size == Decimal("0.01")
    assert isinstance(gateway, CcxtGateway) and isinstance(gateway, OrderGateway)
    assert isinstance(gateway.limiter, RedisRateLimiter) and gateway.limiter.key == "mms:ratelimit:binance:acct-1"
    assert isinstance(paper, PaperGateway)
    assert isinstance(factory.rate_limiter(VenueSpec("live", "binance", symbol="X"), feed.exchange), LocalRateLimiter)
    await feed.exchange.close()
    await gateway.exchange.close()
    await gateway.limiter.close()


async def test_paper_bot_on_a_sim_venue_quotes_and_requotes_for_seconds_without_error() -> None:
    """Sim feed + paper gateway + a trivial quoting loop, at 20x speed for ~2 s of wall time."""
    factory = VenueFactory()
    spec = VenueSpec("sim", "sim", options={"seed": 11, "speed": 20})
    feed = await factory.feed(spec)
    paper = await factory.gateway(spec, balances={"USD": Decimal("100000"), "SIM": Decimal("1000")})
    assert isinstance(paper, PaperGateway)
    inst = SIM_INSTRUMENT
    counts: dict[str, int] = {}
    working: dict[Side, str] = {}
    seq = 0

    async def on_order_events() -> None:
        async for ev in paper.events():
            counts[type(ev).__name__] = counts.get(type(ev).__name__, 0) + 1
            if isinstance(ev, OrderFilled | OrderCancelled | OrderRejected):
                for side, cid in list(working.items()):
                    if cid == ev.client_order_id and (not isinstance(ev, OrderFilled) or ev.is_final):
                        del working[side]

    async def quoting_loop() -> None:
        nonlocal seq
        book = OrderBook()
        quoted: dict[Side, int] = {}
        async for event in feed.events():
            paper.on_market(event)
            if isinstance(event, BookSnapshot):
                book.apply_snapshot(event)
            elif isinstance(event, BookDelta):
                book.apply_delta(event)
            else:
                continue
            bid, ask = book.best_bid(), book.best_ask()
            if bid is None or ask is None:
                continue
            for side, price in ((Side.BUY, bid), (Side.SELL, ask)):  # join the touch, requote when it moves
                if side in working and quoted.get(side) == price:
                    continue
                quoted[side] = price
                if side in working:
                    await paper.cancel(inst.symbol, CancelOrder(working.pop(side)))
                seq += 1
                cid = f"bot1-{seq}"
                working[side] = cid
                await paper.place(inst.symbol, PlaceOrder(cid, side, price, 100, TimeInForce.POST_ONLY))

    await feed.connect()
    await paper.connect()
    listener = asyncio.create_task(on_order_events())
    loop = asyncio.create_task(quoting_loop())
    started = time.monotonic()
    await asyncio.sleep(2.0)
    assert not loop.done(), loop.exception() if loop.done() else None
    loop.cancel()
    await asyncio.gather(loop, return_exceptions=True)
    await paper.close()
    await feed.close()
    await asyncio.wait_for(listener, 2)
    assert time.monotonic() - started >= 2.0
    assert paper.market_events > 100  # 2 s at 20x: ~400 steps of the sim market
    assert counts.get("OrderAccepted", 0) > 50 and counts.get("OrderCancelled", 0) > 50
    assert counts.get("OrderFilled", 0) > 0  # the sim market moves through our quotes sometimes
    balances = await paper.fetch_balances()
    assert balances != {"USD": Decimal("100000"), "SIM": Decimal("1000")}
    assert isinstance(OrderAccepted, type)
