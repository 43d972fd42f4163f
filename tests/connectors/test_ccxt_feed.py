"""CcxtFeed driven through the real ccxt.pro Binance class against a local websocket server
replaying Binance's own frames (fixtures/ccxt/ws/binance.json)."""

from __future__ import annotations

import asyncio
import random

import ccxt
import pytest

from connectors.ccxt_feed import CcxtFeed
from connectors.ccxt_venue import make_exchange
from connectors.errors import AuthFailure, Backoff
from connectors.markets import TICK_SIZE, instrument_from_market
from connectors.validation import FeedValidator
from tests.connectors.conftest import binance_markets, case
from tests.connectors.servers.fake_exchange import DROP, FakeExchange, Pause, Reply
from trading.events import BookSnapshot, TradeTick
from trading.instruments import Side
from trading.ports import FeedHealth, MarketDataFeed

SPOT_CASE = "spot orderbook from rest snapshot and two depth deltas"


def spot_instrument():
    return instrument_from_market(binance_markets()["BTC/USDT"], precision_mode=TICK_SIZE, venue="binance")


def make_feed(fake: FakeExchange, clock, **kw) -> CcxtFeed:
    ex = make_exchange("binance", markets=binance_markets(), http_base=fake.http_base)
    kw.setdefault("validator", FeedValidator(spot_instrument(), max_staleness_ns=10**12))
    return CcxtFeed(
        ex,
        spot_instrument(),
        clock_ns=clock,
        backoff=Backoff(base_s=0.01, max_s=0.05, rng=random.Random(7)),
        **kw,
    )


async def collect(feed: CcxtFeed, n: int, timeout: float = 3.0) -> list:
    out = []

    async def run() -> None:
        async for ev in feed.events():
            out.append(ev)
            if len(out) >= n:
                return

    await asyncio.wait_for(run(), timeout)
    return out


async def collect_until(feed: CcxtFeed, done, timeout: float = 3.0) -> list:
    """Collect events until ``done(event)`` is true for one of them."""
    out = []

    async def run() -> None:
        async for ev in feed.events():
            out.append(ev)
            if done(ev):
                return

    await asyncio.wait_for(run(), timeout)
    return out


def depth_frames(c: dict) -> list[dict]:
    return [m for m in c["messages"] if m.get("e") == "depthUpdate"]


def delta(U: int, u: int, bids=(), asks=(), E: int = 1754500003000) -> dict:
    return {"e": "depthUpdate", "E": E, "s": "BTCUSDT", "U": U, "u": u, "b": list(bids), "a": list(asks)}


async def test_spot_book_from_snapshot_and_deltas_matches_ccxt_expected_parse(fake, fixed_clock) -> None:
    c = case("ws", "binance", "watchOrderBook", SPOT_CASE)
    fake.route("GET", "/api/v3/depth", c["httpResponse"])
    fake.ws_sessions = [depth_frames(c)]
    feed = make_feed(fake, fixed_clock, trades=False)
    assert isinstance(feed, MarketDataFeed)
    await feed.connect()
    try:
        books = await collect_until(feed, lambda b: b.sequence == 110)
    finally:
        await feed.close()
    last = books[-1]
    assert isinstance(last, BookSnapshot)
    inst = spot_instrument()
    expected = c["parsedResponse"]
    assert last.bids == tuple((inst.ticks(repr(p)), inst.lots(repr(q))) for p, q in expected["bids"])
    assert last.asks == tuple((inst.ticks(repr(p)), inst.lots(repr(q))) for p, q in expected["asks"])
    assert last.sequence == expected["nonce"] == 110
    assert last.venue_ts == expected["timestamp"] * 1_000_000
    # exact: 64000.00 at tick 0.01 is 6,400,000 ticks; 1.2 BTC at lot 0.00001 is 120,000 lots
    assert last.bids[0] == (6_400_000, 120_000)
    assert fake.ws_received[0]["params"] == c["sentMessages"][0]["params"]
    assert feed.stats.rejected_total == 0
    assert feed.health is FeedHealth.CLOSED
    stats = feed.stats_dict()
    assert stats["validator"]["accepted"] == stats["emitted"] >= 1
    # exchange -> receipt latency measured against the (frozen) clock: 0.5 s after the last frame
    assert stats["validator"]["exchange_to_receipt_p50_ns"] >= 500_000_000


async def test_public_trades_normalize_to_ticks_lots_and_taker_side(fake, fixed_clock) -> None:
    c = case("ws", "binance", "watchTrades", "spot public trade message")
    fake.route("GET", "/api/v3/depth", {"lastUpdateId": 1, "bids": [], "asks": []})
    fake.ws_sessions = {"@trade": [c["messages"]]}
    feed = make_feed(fake, fixed_clock)
    await feed.connect()
    try:
        events = [e for e in await collect_until(feed, lambda e: isinstance(e, TradeTick)) if isinstance(e, TradeTick)]
    finally:
        await feed.close()
    expected = c["parsedResponse"][0]
    (trade,) = events
    assert trade.price == 6_400_010  # 64000.10 / 0.01
    assert trade.qty == 500  # 0.005 / 0.00001
    assert trade.aggressor is Side.SELL and expected["side"] == "sell"  # buyer was maker
    assert trade.trade_id == expected["id"]
    assert trade.venue_ts == expected["timestamp"] * 1_000_000


async def test_malformed_frames_are_rejected_and_counted_and_feed_continues(fake, fixed_clock) -> None:
    good = case("ws", "binance", "watchTrades", "spot public trade message")["messages"][0]

    def trade(tid: int, price: str, qty: str) -> dict:
        return {**good, "t": tid, "p": price, "q": qty}

    fake.route("GET", "/api/v3/depth", {"lastUpdateId": 1, "bids": [], "asks": []})
    fake.ws_sessions = {
        "@trade": [
            [
                "this is not json",
                "{broken json",
                trade(1, "NaN", "0.001"),
                trade(2, "64000.005", "0.001"),  # off the 0.01 tick grid
                trade(3, "64000.00", "-1"),
                trade(4, "0", "0.001"),
                trade(5, "64000.00", "0.000001"),  # off the 0.00001 lot grid
                trade(6, "64000.01", "0.002"),
            ]
        ]
    }
    feed = make_feed(fake, fixed_clock)
    await feed.connect()
    try:
        events = await collect_until(feed, lambda e: isinstance(e, TradeTick))
        await asyncio.sleep(0.05)
    finally:
        await feed.close()
    events = [e for e in events if isinstance(e, TradeTick)]
    assert [e.trade_id for e in events] == ["6"]
    assert events[0].price == 6_400_001
    # ccxt's own trade parser chokes on "NaN" (counted as malformed) before our NaN check can
    # ccxt ignores a frame that is not JSON-shaped at all; "{broken json" and the NaN trade
    # (ccxt's own parser chokes on it) are counted as malformed; the rest by our checks
    assert feed.stats.rejected["nan"] + feed.stats.rejected["malformed"] == 2
    assert feed.stats.rejected["off_tick"] == 1
    assert feed.stats.rejected["off_lot"] == 1
    assert feed.stats.rejected["non_positive_qty"] + feed.stats.rejected["non_positive_price"] == 2
    assert feed.stats.reconnects == 0  # the socket survived the non-JSON frames


async def test_dropped_connection_reconnects_resubscribes_and_resyncs_from_new_snapshot(fake, fixed_clock) -> None:
    c = case("ws", "binance", "watchOrderBook", SPOT_CASE)
    second_snapshot = {
        "lastUpdateId": 200,
        "bids": [["64010.00", "1.00000000"]],
        "asks": [["64011.00", "2.00000000"]],
    }
    fake.route("GET", "/api/v3/depth", [Reply(body=c["httpResponse"]), Reply(body=second_snapshot)])
    fake.ws_sessions = [
        [*depth_frames(c), Pause(0.05), DROP],
        [Pause(0.1), delta(201, 205, bids=[["64010.00", "0.50000000"]])],
    ]
    feed = make_feed(fake, fixed_clock, trades=False)
    await feed.connect()
    try:
        books = await collect_until(feed, lambda b: b.sequence == 205, timeout=5)
    finally:
        await feed.close()
    assert fake.ws_connections == 2
    assert len(fake.calls("GET", "/api/v3/depth")) == 2
    # the book after the reconnect is the second snapshot (asks) plus the new delta (bids)
    assert books[-1].sequence == 205
    assert books[-1].asks == ((6_401_100, 200_000),)
    assert books[-1].bids == ((6_401_000, 50_000),)
    assert 110 in [b.sequence for b in books]
    assert feed.stats.reconnects >= 1


async def test_sequence_gap_triggers_resync_with_fresh_snapshot(fake, fixed_clock) -> None:
    c = case("ws", "binance", "watchOrderBook", SPOT_CASE)
    resnap = {"lastUpdateId": 300, "bids": [["63990.00", "1.00000000"]], "asks": [["64005.00", "1.00000000"]]}
    fake.route("GET", "/api/v3/depth", [Reply(body=c["httpResponse"]), Reply(body=resnap)])
    fake.ws_sessions = [
        [
            *depth_frames(c),  # 101-105, 106-110
            delta(120, 125, bids=[["63000.00", "1.00000000"]]),  # 111-119 missing: a gap
            Pause(0.5),  # the resubscribe and fresh snapshot happen in the meantime
            delta(301, 305, asks=[["64006.00", "3.00000000"]]),
        ]
    ]
    feed = make_feed(fake, fixed_clock, trades=False)
    await feed.connect()
    try:
        books = await collect_until(feed, lambda b: b.sequence == 305, timeout=5)
    finally:
        await feed.close()
    assert feed.stats.sequence_gaps == 1
    assert books[0].sequence in (105, 110)
    # after the resync: the fresh snapshot's bid plus the post-snapshot delta's ask
    assert books[-1].sequence == 305
    assert books[-1].bids == ((6_399_000, 100_000),)
    assert books[-1].asks == ((6_400_500, 100_000), (6_400_600, 300_000))
    assert all(lvl[0] != 6_300_000 for b in books for lvl in b.bids)  # the gapped delta never applied
    assert len(fake.calls("GET", "/api/v3/depth")) == 2


async def test_rest_polling_fallback_when_streaming_is_off(fake, fixed_clock) -> None:
    ob = case("response", "binance", "fetchOrderBook", "spot orderbook")
    trades = case("response", "binance", "fetchTrades", "public spot trades")
    fake.route("GET", "/api/v3/depth", ob["httpResponse"])
    fake.route("GET", "/api/v3/aggTrades", trades["httpResponse"])
    # the two recorded payloads are from different days: relax the outlier check for this test
    validator = FeedValidator(spot_instrument(), max_staleness_ns=10**18, outlier_floor=1.0)
    feed = make_feed(fake, fixed_clock, streaming=False, poll_interval_s=0.02, validator=validator)
    await feed.connect()
    try:
        events = await collect(feed, 2)
        await asyncio.sleep(0.1)
    finally:
        await feed.close()
    book = next(e for e in events if isinstance(e, BookSnapshot))
    trade = next(e for e in events if isinstance(e, TradeTick))
    parsed = ob["parsedResponse"]
    assert book.bids[0] == (4_257_430, 1070) and parsed["bids"][0] == [42574.3, 0.0107]
    assert book.asks[0] == (4_257_431, 870)
    assert book.sequence == parsed["nonce"]
    assert trade.price == 7_323_870 and trade.qty == 109 and trade.aggressor is Side.BUY
    # the same book and trade polled again are not emitted twice
    assert feed.stats.emitted == 2
    assert feed.stats.rejected["duplicate_trade"] >= 1


async def test_silent_feed_reports_stale(fake, fixed_clock) -> None:
    c = case("ws", "binance", "watchOrderBook", SPOT_CASE)
    fake.route("GET", "/api/v3/depth", c["httpResponse"])
    fake.ws_sessions = [depth_frames(c)[:1]]
    now = [0.0]
    feed = make_feed(fake, fixed_clock, trades=False, stale_after_s=5)
    feed._monotonic = lambda: now[0]
    await feed.connect()
    try:
        await collect(feed, 1)
        assert feed.health is FeedHealth.LIVE
        now[0] = 10.0
        assert feed.health is FeedHealth.STALE
    finally:
        await feed.close()


async def test_authentication_failure_closes_the_feed_and_raises_from_events(fake, fixed_clock) -> None:
    fake.route("GET", "/api/v3/depth", Reply(status=401, body={"code": -2015, "msg": "Invalid API-key."}))
    fake.route("GET", "/api/v3/aggTrades", Reply(status=401, body={"code": -2015, "msg": "Invalid API-key."}))
    feed = make_feed(fake, fixed_clock, streaming=False, poll_interval_s=0.01, trades=False)
    await feed.connect()
    try:
        with pytest.raises(AuthFailure, match="Invalid API-key"):
            await collect(feed, 1)
    finally:
        await feed.close()
    assert feed.health is FeedHealth.CLOSED


async def test_temporary_rest_errors_back_off_with_seeded_jitter_and_recover(fake, fixed_clock) -> None:
    ob = case("response", "binance", "fetchOrderBook", "spot orderbook")
    fake.route(
        "GET",
        "/api/v3/depth",
        [Reply(status=503, raw="busy"), Reply(status=429, raw="{}"), Reply(body=ob["httpResponse"])],
    )
    feed = make_feed(fake, fixed_clock, streaming=False, poll_interval_s=0.01, trades=False)
    await feed.connect()
    try:
        (book,) = await collect(feed, 1)
    finally:
        await feed.close()
    assert book.sequence == int(ob["httpResponse"]["lastUpdateId"])
    assert feed.stats.reconnects == 2
    assert set(feed.stats.errors) <= {"ExchangeNotAvailable", "DDoSProtection", "RateLimitExceeded"}


async def test_usdm_futures_book_follows_the_pu_chain_from_the_recorded_frames(fake, fixed_clock) -> None:
    c = case("ws", "binance", "watchOrderBook", "linear swap orderbook with pu continuity chain")
    fake.route("GET", "/fapi/v1/depth", c["httpResponse"])
    fake.ws_sessions = [depth_frames(c)]
    ex = make_exchange("binance", markets=binance_markets(), http_base=fake.http_base)
    inst = instrument_from_market(binance_markets()["BTC/USDT:USDT"], precision_mode=TICK_SIZE)
    feed = CcxtFeed(
        ex,
        inst,
        trades=False,
        clock_ns=fixed_clock,
        validator=FeedValidator(inst, max_staleness_ns=10**12),
        backoff=Backoff(base_s=0.01, rng=random.Random(7)),
    )
    await feed.connect()
    try:
        books = await collect_until(feed, lambda b: b.sequence == 110)
    finally:
        await feed.close()
    expected = c["parsedResponse"]
    assert books[-1].bids == tuple((inst.ticks(repr(p)), inst.lots(repr(q))) for p, q in expected["bids"])
    assert books[-1].asks == tuple((inst.ticks(repr(p)), inst.lots(repr(q))) for p, q in expected["asks"])
    assert books[-1].bids[0] == (640_000, 1_200)  # tick 0.1, lot 0.001
    assert fake.calls("GET", "/fapi/v1/depth")[0].query["symbol"] == "BTCUSDT"


async def test_a_stream_the_exchange_does_not_support_falls_back_to_rest_polling(fake, fixed_clock) -> None:
    ob = case("response", "binance", "fetchOrderBook", "spot orderbook")
    fake.route("GET", "/api/v3/depth", ob["httpResponse"])
    feed = make_feed(fake, fixed_clock, trades=False, poll_interval_s=0.01)

    async def refuse(*args, **kwargs):
        raise ccxt.NotSupported("binance watchOrderBook() is not supported yet")

    feed.exchange.watch_order_book = refuse
    await feed.connect()
    try:
        (book,) = await collect(feed, 1)
    finally:
        await feed.close()
    assert not feed.streaming and book.sequence == int(ob["httpResponse"]["lastUpdateId"])
