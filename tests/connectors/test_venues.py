"""VenueFactory: kind + ids -> feed and (live) gateway."""

from __future__ import annotations

from decimal import Decimal

import pytest

from connectors.ccxt_feed import CcxtFeed
from connectors.ccxt_gateway import CcxtGateway
from connectors.ratelimit import LocalRateLimiter, RedisRateLimiter
from connectors.sim import SimFeed
from connectors.venues import VenueFactory, VenueSpec
from tests.connectors.conftest import binance_markets
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


async def test_replay_spec_gives_the_replay_feed_and_no_gateway() -> None:
    factory = VenueFactory()
    spec = VenueSpec("replay", "binance-spot-btcusdt")
    feed = await factory.feed(spec)
    assert type(feed).__name__ == "ReplayFeed"
    assert (await factory.instrument(spec)).symbol == feed.instrument.symbol
    with pytest.raises(ValueError, match=r"'replay' has no order gateway; only 'live'.*PaperVenue"):
        await factory.gateway(spec)
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
    finally:
        venues_module.make_exchange = original
    assert isinstance(feed, CcxtFeed) and feed.instrument.tick_size == Decimal("0.01")
    assert isinstance(gateway, CcxtGateway) and isinstance(gateway, OrderGateway)
    assert isinstance(gateway.limiter, RedisRateLimiter) and gateway.limiter.key == "mms:ratelimit:binance:acct-1"
    assert isinstance(factory.rate_limiter(VenueSpec("live", "binance", symbol="X"), feed.exchange), LocalRateLimiter)
    await feed.exchange.close()
    await gateway.exchange.close()
    await gateway.limiter.close()
