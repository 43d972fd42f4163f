"""The tracker scan on the real Redis: books published like the feeds publish them, the demo's
sim venues, recording, live push, notifications and paper execution."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from apps.arbitrage.models import Opportunity
from apps.arbitrage.services import arbitrage_settings_update
from apps.arbitrage.tracker import LatestBook, tracker_paper_execute, tracker_scan
from apps.exchanges.models import Market
from connectors.sim import hosted_feed, sim_mid
from workers import keys
from workers.arbitrage import read_latest, scan_once, watched_markets

pytestmark = pytest.mark.django_db


def _payload(venue: str, symbol: str, bids, asks, ts: int) -> str:
    return json.dumps(
        {
            "type": "book",
            "venue": venue,
            "symbol": symbol,
            "ts": ts,
            "bids": [[str(p), str(q)] for p, q in bids],
            "asks": [[str(p), str(q)] for p, q in asks],
        }
    )


def _sim_payload(venue: str, ts: int) -> str:
    market = Market.objects.get(venue=venue, symbol="BTC/USDT")
    from apps.arbitrage.tracker import market_instrument

    inst = market_instrument(market)
    snap = hosted_feed(venue, inst).book_at(ts)
    return _payload(
        venue,
        "BTC/USDT",
        [(inst.price(p), inst.quantity(q)) for p, q in snap.bids],
        [(inst.price(p), inst.quantity(q)) for p, q in snap.asks],
        ts,
    )


def _diverged_time() -> int:
    """A wall time (ns) at which the demo's sim:alpha and sim:beta are > 25 bps apart."""
    t = 1_763_700_000.0
    for _ in range(20_000):
        a, b = sim_mid("sim:alpha", t), sim_mid("sim:beta", t)
        if abs(a - b) / min(a, b) > 0.0025:
            return int(t * 1e9)
        t += 1.0
    raise AssertionError("the sim venues never diverge by 25 bps")


def test_the_demo_sim_venues_show_real_opportunities_after_fees(sent):
    ts = _diverged_time()
    latest = [LatestBook(v, "BTC/USDT", _sim_payload(v, ts), ts) for v in ("sim:alpha", "sim:beta")]
    result = tracker_scan(latest=latest, now_ns=ts)
    assert result.found, "diverged sim venues must produce an opportunity"
    row = Opportunity.objects.get(pk=result.recorded[0].pk)
    cheap = "sim:alpha" if sim_mid("sim:alpha", ts / 1e9) < sim_mid("sim:beta", ts / 1e9) else "sim:beta"
    assert row.buy_venue == cheap and row.sell_venue != cheap
    # taker fee 5 bps each leg: the net edge is the gross minus at least ~10 bps
    assert row.gross_edge_bps - row.net_edge_bps >= Decimal("9.9")
    assert row.net_profit > 0 and row.size > 0
    top_fees = (row.buy_price + row.sell_price) * row.size * Decimal("0.0005")
    assert abs(row.fees - top_fees) <= row.slippage * Decimal("0.0005") + Decimal("1e-12")


def test_no_opportunity_when_the_venues_agree(sent):
    t = 1_763_700_000.0
    while abs(sim_mid("sim:alpha", t) - sim_mid("sim:beta", t)) / sim_mid("sim:beta", t) > 0.0002:
        t += 1.0
    ts = int(t * 1e9)
    latest = [LatestBook(v, "BTC/USDT", _sim_payload(v, ts), ts) for v in ("sim:alpha", "sim:beta")]
    assert tracker_scan(latest=latest, now_ns=ts).found == []
    assert not Opportunity.objects.exists()


def test_stale_and_malformed_books_are_skipped_without_stopping_the_scan(sent):
    ts = _diverged_time()
    latest = [
        LatestBook("sim:alpha", "BTC/USDT", _sim_payload("sim:alpha", ts), ts - 10_000_000_000),
        LatestBook("sim:beta", "BTC/USDT", _sim_payload("sim:beta", ts), ts),
        LatestBook("sim:beta", "ETH/USDT", "{not json", ts),
    ]
    assert tracker_scan(latest=latest, now_ns=ts).found == []


def test_users_above_their_threshold_are_notified(sent, trader, trader2):
    from apps.notifications.services import channel_create, rule_create

    for user, threshold in ((trader, "1"), (trader2, "5000")):
        channel = channel_create(owner=user, kind="discord", name="d", config={"url": "http://127.0.0.1:9/x"})
        rule_create(owner=user, event_kind="arbitrage", channels=[channel])
        arbitrage_settings_update(user=user, notify_threshold_bps=threshold)
    ts = _diverged_time()
    latest = [LatestBook(v, "BTC/USDT", _sim_payload(v, ts), ts) for v in ("sim:alpha", "sim:beta")]
    result = tracker_scan(latest=latest, now_ns=ts)
    assert result.notified == 1
    from apps.notifications.models import Delivery

    assert list(Delivery.objects.values_list("channel__owner", flat=True)) == [trader.pk]


def test_paper_execution_on_the_same_books_realizes_the_detected_edge(sent, trader):
    arbitrage_settings_update(user=trader, paper_execute=True)
    ts = _diverged_time()
    latest = [LatestBook(v, "BTC/USDT", _sim_payload(v, ts), ts) for v in ("sim:alpha", "sim:beta")]
    scan = tracker_scan(latest=latest, now_ns=ts)
    executed = tracker_paper_execute(scan=scan, latest=latest)
    assert len(executed) == len(scan.found) >= 1
    row = Opportunity.objects.get(pk=executed[0].pk)
    assert row.executed
    # books unchanged and no discount in the execution: realized >= detected net (the discount)
    assert row.realized_profit >= row.net_profit
    # a second of market movement later the outcome is whatever the books say, recorded as is
    later = [LatestBook(v, "BTC/USDT", _sim_payload(v, ts + 30 * 10**9), ts) for v in ("sim:alpha", "sim:beta")]
    scan2 = tracker_scan(latest=latest, now_ns=ts)
    tracker_paper_execute(scan=scan2, latest=later)
    assert Opportunity.objects.get(pk=scan2.recorded[0].pk).realized_profit is not None


def test_scan_once_reads_the_feed_keys_from_redis_and_keeps_sim_feeds_alive(sent, clean_redis):
    import time

    now = time.time_ns()
    for venue in ("sim:alpha", "sim:beta"):
        clean_redis.set(keys.feed_book(venue, "BTC/USDT"), _sim_payload(venue, now), ex=60)
    markets = watched_markets(clean_redis)
    assert ("sim:alpha", "BTC/USDT") in markets and ("sim:beta", "BTC/USDT") in markets
    latest = read_latest(clean_redis, markets)
    assert {b.venue for b in latest} == {"sim:alpha", "sim:beta"}
    assert all(abs(b.published_ns - now) < 2_000_000_000 for b in latest)
    summary = scan_once(clean_redis)
    assert summary["books"] == 2
    assert summary["found"] == Opportunity.objects.count()
    assert clean_redis.get(keys.feed_interest("sim:alpha", "BTC/USDT")) == b"sim:alpha|BTC/USDT"


def test_replay_feeds_are_not_compared_with_live_or_simulated_venues(clean_redis, settings):
    from workers import keys as worker_keys

    clean_redis.sadd(worker_keys.feeds_wanted(), "replay:binance-spot|BTC/USDT", "sim:alpha|BTC/USDT")
    markets = watched_markets(clean_redis)
    assert ("replay:binance-spot", "BTC/USDT") not in markets
    assert ("sim:alpha", "BTC/USDT") in markets and ("sim:beta", "BTC/USDT") in markets
    settings.ARBITRAGE_WATCH_VENUES = ["replay:binance-spot", "sim:alpha"]
    assert watched_markets(clean_redis) == [("replay:binance-spot", "BTC/USDT"), ("sim:alpha", "BTC/USDT")]


def test_scans_queued_behind_a_busy_worker_collapse_into_one(sent, clean_redis):
    from workers.arbitrage import scan

    assert "skipped" not in scan()
    assert scan() == {"skipped": 1}
