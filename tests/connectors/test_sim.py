"""Simulated venues: one generator fanned out to several venue feeds, paced by a clock."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from connectors.sim import SimFeed, SimMarket, single_venue_market
from connectors.venues import SIM_INSTRUMENT
from trading.events import BookSnapshot, TradeTick
from trading.instruments import Side
from trading.ports import FeedHealth, MarketDataFeed

MS = 1_000_000


class FakeTime:
    def __init__(self, start: int = 10**18) -> None:
        self.now = start
        self.slept: list[float] = []

    def clock(self) -> int:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += int(seconds * 1e9)


def correlated_source():
    """Two venues quoting the same price path, venue b lagging a by 5 ms."""
    for i in range(6):
        ts = i * 100 * MS
        mid = 10_000 + i
        yield "a", BookSnapshot(ts=ts, bids=((mid - 1, 5),), asks=((mid + 1, 5),), sequence=i + 1)
        yield "b", BookSnapshot(ts=ts + 5 * MS, bids=((mid - 1, 7),), asks=((mid + 1, 7),), sequence=i + 1)


async def take(feed: SimFeed, n: int) -> list:
    out = []
    async for ev in feed.events():
        out.append(ev)
        if len(out) == n:
            break
    return out


async def test_two_venues_share_one_generator_and_see_the_same_price_path() -> None:
    t = FakeTime()
    market = SimMarket(correlated_source(), speed=1.0, clock_ns=t.clock, sleep=t.sleep)
    a = SimFeed(market, "a", SIM_INSTRUMENT)
    b = SimFeed(market, "b", SIM_INSTRUMENT)
    assert isinstance(a, MarketDataFeed)
    await a.connect()
    await b.connect()
    got_a, got_b = await asyncio.wait_for(asyncio.gather(take(a, 6), take(b, 6)), 2)
    await a.close()
    await b.close()
    assert [e.bids[0][0] for e in got_a] == [e.bids[0][0] for e in got_b] == [9_999 + i for i in range(6)]
    assert {e.bids[0][1] for e in got_a} == {5} and {e.bids[0][1] for e in got_b} == {7}
    # times are re-based onto the clock, 100 ms apart, venue b 5 ms behind
    start = got_a[0].ts
    assert [e.ts - start for e in got_a] == [i * 100 * MS for i in range(6)]
    assert [e.ts - start for e in got_b] == [i * 100 * MS + 5 * MS for i in range(6)]
    assert sum(t.slept) == pytest.approx(0.505, abs=1e-6)


async def test_speed_factor_compresses_waiting() -> None:
    t = FakeTime()
    market = SimMarket(correlated_source(), speed=10.0, clock_ns=t.clock, sleep=t.sleep)
    feed = SimFeed(market, "a", SIM_INSTRUMENT)
    await feed.connect()
    got = await asyncio.wait_for(take(feed, 6), 2)
    await feed.close()
    assert got[-1].ts - got[0].ts == 50 * MS  # 500 ms of market time in 50 ms
    assert sum(t.slept) == pytest.approx(0.0505, abs=1e-6)


async def test_same_seed_reproduces_the_same_market_and_another_seed_differs() -> None:
    async def run(seed: int) -> list:
        market = single_venue_market(SIM_INSTRUMENT, seed=seed, speed=0)
        feed = SimFeed(market, "sim", SIM_INSTRUMENT)
        await feed.connect()
        got = await asyncio.wait_for(take(feed, 200), 5)
        await feed.close()
        return [(type(e).__name__, getattr(e, "price", None) or e.bids[0][0]) for e in got]

    first, again, other = await run(7), await run(7), await run(8)
    assert first == again
    assert first != other
    assert any(kind == "TradeTick" for kind, _ in first)


async def test_feed_reports_closed_when_the_generator_is_exhausted() -> None:
    market = SimMarket(iter([("a", TradeTick(ts=1, price=10, qty=1, aggressor=Side.BUY))]), speed=0)
    feed = SimFeed(market, "a", SIM_INSTRUMENT)
    await feed.connect()
    got = [e async for e in feed.events()]
    assert len(got) == 1 and feed.health is FeedHealth.CLOSED


async def test_single_venue_market_runs_past_the_model_horizon_without_a_price_jump() -> None:
    market = single_venue_market(SIM_INSTRUMENT, seed=5, speed=0)
    feed = SimFeed(market, "sim", SIM_INSTRUMENT)
    await feed.connect()
    got = await asyncio.wait_for(take(feed, 1500), 10)
    await feed.close()
    books = [e for e in got if isinstance(e, BookSnapshot)]
    assert len(books) > 400  # more than two 200-step horizons
    assert all(b.ts > a.ts for a, b in itertools.pairwise(books))
    mids = [(b.bids[0][0] + b.asks[0][0]) / 2 for b in books]
    # one step moves the mid by sigma*sqrt(dt) = 0.14 (14 ticks): never a reset back to s0
    assert max(abs(b - a) for a, b in itertools.pairwise(mids)) <= 16


async def test_multi_venue_market_feeds_are_correlated_and_reproducible() -> None:
    from connectors.sim import multi_venue_market

    async def run(seed: int) -> tuple[list, list]:
        market = multi_venue_market(SIM_INSTRUMENT, ["lead", "lag"], seed=seed, speed=0)
        lead, lag = SimFeed(market, "lead", SIM_INSTRUMENT), SimFeed(market, "lag", SIM_INSTRUMENT)
        await lead.connect()
        await lag.connect()
        got = await asyncio.wait_for(asyncio.gather(take(lead, 300), take(lag, 300)), 10)
        await lead.close()
        await lag.close()
        return got

    a_lead, a_lag = await run(1)
    b_lead, b_lag = await run(1)

    def shape(events: list) -> list:
        return [(type(e).__name__, e.ts - events[0].ts, getattr(e, "price", None)) for e in events]

    assert shape(a_lead) == shape(b_lead) and shape(a_lag) == shape(b_lag)
    assert isinstance(a_lead[0], BookSnapshot) and isinstance(a_lag[0], BookSnapshot)
    first_mid = {name: (evs[0].bids[0][0] + evs[0].asks[0][0]) / 2 for name, evs in (("lead", a_lead), ("lag", a_lag))}
    # one latent price: both venues start within a few ticks of each other
    assert abs(first_mid["lead"] - first_mid["lag"]) <= 5


async def test_factory_builds_several_correlated_sim_venues_on_one_generator() -> None:
    from connectors.venues import VenueFactory, VenueSpec

    factory = VenueFactory()
    options = {"seed": 2, "speed": 0, "venues": ["sim-a", "sim-b"]}
    a = await factory.feed(VenueSpec("sim", "sim-a", options=options))
    b = await factory.feed(VenueSpec("sim", "sim-b", options=options))
    assert a.market is b.market
    await a.connect()
    await b.connect()
    got_a, got_b = await asyncio.wait_for(asyncio.gather(take(a, 50), take(b, 50)), 10)
    await a.close()
    await b.close()
    assert got_a and got_b and got_a != got_b
