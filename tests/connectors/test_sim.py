"""Simulated venue feeds: a time-indexed synthetic market paced by a clock."""

from __future__ import annotations

import asyncio

import pytest

from connectors.sim import SimFeed, hosted_feed, sim_mid
from connectors.venues import SIM_INSTRUMENT, VenueFactory, VenueSpec
from trading.book import OrderBook
from trading.events import BookDelta, BookSnapshot, TradeTick
from trading.ports import FeedHealth, MarketDataFeed
from trading.synthetic.market import SyntheticMarket, VenueProfile

MS = 1_000_000
STEP = 100 * MS


class FakeTime:
    def __init__(self, start: int = 1_765_000_000 * 10**9) -> None:
        self.now = start
        self.slept: list[float] = []

    def clock(self) -> int:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += int(seconds * 1e9)


def market(seed: int = 1, venues=("lead", "lag")) -> SyntheticMarket:
    profiles = [VenueProfile(v, lag_ns=500 * MS if v == "lag" else 0) for v in venues]
    return SyntheticMarket(SIM_INSTRUMENT, profiles, seed=seed, volatility_bps=20.0)


async def take(feed: SimFeed, n: int) -> list:
    out = []
    async for ev in feed.events():
        out.append(ev)
        if len(out) == n:
            break
    return out


async def test_at_real_speed_the_feed_plays_the_market_at_wall_clock_time() -> None:
    t = FakeTime()
    m = market()
    feed = SimFeed(m, "lead", clock_ns=t.clock, sleep=t.sleep)
    assert isinstance(feed, MarketDataFeed)
    await feed.connect()
    got = await asyncio.wait_for(take(feed, 60), 5)
    await feed.close()
    books = [e for e in got if not isinstance(e, TradeTick)]
    assert isinstance(got[0], BookSnapshot) and all(isinstance(e, BookDelta) for e in books[1:])
    assert [b.ts for b in books] == [got[0].ts + i * STEP for i in range(len(books))]
    # wall time is market time: the book at the clock's step is the market's book at that time
    assert got[0] == m.book_at("lead", got[0].ts) and got[0].ts // STEP == -(-FakeTime().now // STEP)
    assert sum(t.slept) == pytest.approx((got[-1].ts - FakeTime().now) / 1e9, abs=1e-6)


async def test_two_feeds_started_apart_publish_the_same_market() -> None:
    """A second host taking over later sees the same books and trades at the same times."""
    t1, t2 = FakeTime(), FakeTime(FakeTime().now + 3 * STEP)
    first = SimFeed(market(), "lead", clock_ns=t1.clock, sleep=t1.sleep)
    second = SimFeed(market(), "lead", clock_ns=t2.clock, sleep=t2.sleep)
    a = await asyncio.wait_for(take(first, 120), 5)
    b = await asyncio.wait_for(take(second, 60), 5)
    book_a, book_b = OrderBook(), OrderBook()
    for ev in a:
        if isinstance(ev, BookSnapshot):
            book_a.apply_snapshot(ev)
        elif isinstance(ev, BookDelta):
            book_a.apply_delta(ev)
        if ev.ts == b[0].ts and not isinstance(ev, TradeTick):
            break
    book_b.apply_snapshot(b[0])
    assert book_a.top(20) == book_b.top(20)
    trades_a = [e for e in a if isinstance(e, TradeTick) and e.ts >= b[0].ts]
    trades_b = [e for e in b if isinstance(e, TradeTick)]
    assert trades_b and trades_a[: len(trades_b)] == trades_b


async def test_speed_factor_compresses_waiting_and_rebases_times() -> None:
    t = FakeTime()
    feed = SimFeed(market(), "lead", speed=10.0, start_ts=0, clock_ns=t.clock, sleep=t.sleep)
    got = await asyncio.wait_for(take(feed, 200), 5)
    books = [e for e in got if not isinstance(e, TradeTick)]
    assert books[0].ts == FakeTime().now  # market time 0 is played from the clock's now
    assert books[5].ts - books[0].ts == 50 * MS  # 500 ms of market time in 50 ms
    assert sum(t.slept) == pytest.approx((got[-1].ts - books[0].ts) / 1e9, abs=1e-6)


async def test_a_consumer_that_falls_behind_skips_ahead_with_a_snapshot() -> None:
    t = FakeTime()
    feed = SimFeed(market(), "lead", clock_ns=t.clock, sleep=t.sleep)
    got = []
    async for ev in feed.events():
        got.append(ev)
        if len(got) == 3:
            t.now += 5_000_000_000  # the consumer stalls for 5 s
        if len(got) > 3 and isinstance(got[-1], BookSnapshot):
            break
    assert got[-1].ts >= FakeTime().now + 5_000_000_000 - STEP
    assert feed.stats.rejected.get("skipped_behind") == 1


async def test_same_seed_reproduces_the_same_market_and_another_seed_differs() -> None:
    async def run(seed: int) -> list:
        feed = SimFeed(market(seed, ("sim",)), "sim", speed=0, start_ts=0)
        got = await asyncio.wait_for(take(feed, 200), 5)
        await feed.close()
        return [(type(e).__name__, getattr(e, "price", None) or (e.bids[0] if e.bids else None)) for e in got]

    first, again, other = await run(7), await run(7), await run(8)
    assert first == again
    assert first != other
    assert any(kind == "TradeTick" for kind, _ in first)


async def test_closing_the_feed_ends_its_events() -> None:
    feed = SimFeed(market(), "lead", speed=0, start_ts=0)
    got = []
    async for ev in feed.events():
        got.append(ev)
        if len(got) == 10:
            await feed.close()
    assert len(got) == 10 and feed.health is FeedHealth.CLOSED


async def test_lagging_venue_follows_the_leader() -> None:
    m = market(3)
    lead = [m.mid_ticks("lead", k * STEP) for k in range(2000)]
    lag = [m.mid_ticks("lag", k * STEP) for k in range(2000)]
    ahead = sum(abs(a - b) for a, b in zip(lead[:-5], lag[5:], strict=True))
    same = sum(abs(a - b) for a, b in zip(lead, lag, strict=True))
    assert ahead < same / 2


def test_hosted_venues_are_btc_like_and_their_mid_is_the_feeds_book() -> None:
    from decimal import Decimal

    from trading.instruments import Instrument

    inst = Instrument.create(symbol="BTC/USDT", tick_size="0.01", lot_size="0.00001", venue="sim:alpha")
    ts = 1_765_000_000 * 10**9
    book = hosted_feed("sim:alpha", inst).book_at(ts)
    assert len(book.bids) == len(book.asks) == 10
    mid = (inst.price(book.bids[0][0]) + inst.price(book.asks[0][0])) / 2
    assert abs(mid / Decimal(str(sim_mid("sim:alpha", ts / 1e9))) - 1) < Decimal("0.0002")
    assert 30_000 < sim_mid("sim:alpha", ts / 1e9) < 120_000
    assert sim_mid("sim:alpha", ts / 1e9) != sim_mid("sim:beta", ts / 1e9)


async def test_factory_builds_several_correlated_sim_venues_on_one_market() -> None:
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
    mid_a = (got_a[0].bids[0][0] + got_a[0].asks[0][0]) / 2
    mid_b = (got_b[0].bids[0][0] + got_b[0].asks[0][0]) / 2
    assert abs(mid_a - mid_b) <= 5  # one latent price
