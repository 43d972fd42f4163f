"""The synthetic multi-venue market: a function of (seed, venues, time) -- the same events in any
process and any window --, consistent books, correlation, lead/lag, dislocations and episodes."""

from __future__ import annotations

import itertools
import math

import pytest

from trading.book import OrderBook
from trading.events import BookDelta, BookSnapshot, TradeTick
from trading.instruments import Instrument, Side
from trading.synthetic.market import SyntheticMarket, VenueProfile

INSTRUMENT = Instrument.create(symbol="SYN/USD", tick_size="0.001", lot_size="1")
STEP = 100_000_000


def _corr(x, y):
    n = len(x)
    mx, my = sum(x) / n, sum(y) / n
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y, strict=True))
    sxx = sum((a - mx) ** 2 for a in x)
    syy = sum((b - my) ** 2 for b in y)
    return sxy / math.sqrt(sxx * syy)


def _mid_series(events, venues, n_steps):
    """Replay the events into real order books; the mid of each venue after every step."""
    books = {v: OrderBook() for v in venues}
    series = {v: [] for v in venues}
    by_step = itertools.groupby(events, key=lambda item: item[1].ts // STEP)
    for _, group in by_step:
        for venue, event in group:
            if isinstance(event, BookSnapshot):
                books[venue].apply_snapshot(event)
            elif isinstance(event, BookDelta):
                assert books[venue].apply_delta(event)  # raises SequenceGap on a gap
            assert not books[venue].is_crossed()
        for v in venues:
            series[v].append(books[v].mid())
    assert len(series[venues[0]]) == n_steps
    return series


def _returns(series, every):
    sampled = series[::every]
    return [math.log(b / a) for a, b in itertools.pairwise(sampled)]


def test_same_seed_gives_the_same_events_and_another_seed_differs():
    a = SyntheticMarket(INSTRUMENT, seed=11).take(200)
    b = SyntheticMarket(INSTRUMENT, seed=11).take(200)
    c = SyntheticMarket(INSTRUMENT, seed=12).take(200)
    assert a == b
    assert a != c


def test_books_have_integer_ticks_twenty_levels_and_sizes_growing_away_from_the_touch():
    market = SyntheticMarket(INSTRUMENT, seed=3)
    first = market.take(1)
    snapshots = [e for _, e in first if isinstance(e, BookSnapshot)]
    assert len(snapshots) == 2
    for snap in snapshots:
        assert len(snap.bids) == len(snap.asks) == 20
        assert all(isinstance(p, int) and isinstance(q, int) and q > 0 for p, q in snap.bids + snap.asks)
        assert snap.bids[0][0] < snap.asks[0][0]
    near = far = 0
    for _venue, event in market.take(300):
        if isinstance(event, BookDelta):
            for _p, q in event.bids + event.asks:
                assert q >= 0
    book = OrderBook()
    market2 = SyntheticMarket(INSTRUMENT, venues=(VenueProfile("solo"),), seed=4)
    for _, event in market2.take(500):
        if isinstance(event, BookSnapshot):
            book.apply_snapshot(event)
        elif isinstance(event, BookDelta):
            book.apply_delta(event)
            bids, asks = book.top(20)
            near += bids[0][1] + asks[0][1]
            far += bids[-1][1] + asks[-1][1]
    assert far > 3 * near


def test_trades_print_at_the_touch_with_positive_size_in_time_order():
    events = SyntheticMarket(INSTRUMENT, seed=5).take(300)
    assert [e.ts for _, e in events] == sorted(e.ts for _, e in events)
    books = {"alpha": OrderBook(), "beta": OrderBook()}
    trades = 0
    for venue, event in events:
        if isinstance(event, BookSnapshot):
            books[venue].apply_snapshot(event)
        elif isinstance(event, BookDelta):
            books[venue].apply_delta(event)
        else:
            assert isinstance(event, TradeTick) and event.qty > 0
            expected = books[venue].best_ask() if event.aggressor is Side.BUY else books[venue].best_bid()
            assert event.price == expected
            trades += 1
    # 4 trades/s per venue over 30 s: about 240; Poisson, so allow a wide band.
    assert 150 < trades < 350


def test_lagging_venue_follows_the_leader_by_its_configured_delay():
    venues = (VenueProfile("lead", noise_bps=0.2), VenueProfile("lag", lag_ns=5 * STEP, noise_bps=0.2))
    n = 3000
    market = SyntheticMarket(INSTRUMENT, venues, seed=7, volatility_bps=20.0)
    series = _mid_series(market.take(n), ["lead", "lag"], n)
    lead = _returns(series["lead"], 1)
    lag = _returns(series["lag"], 1)
    at_delay = _corr(lead[:-5], lag[5:])
    same_time = _corr(lead, lag)
    assert at_delay > 0.8
    assert abs(same_time) < 0.2


def test_correlation_sign_follows_beta():
    venues = (VenueProfile("long"), VenueProfile("inverse", beta=-1.0))
    n = 2000
    market = SyntheticMarket(INSTRUMENT, venues, seed=8, volatility_bps=20.0)
    series = _mid_series(market.take(n), ["long", "inverse"], n)
    assert _corr(_returns(series["long"], 10), _returns(series["inverse"], 10)) < -0.8
    venues = (VenueProfile("one"), VenueProfile("two"))
    market = SyntheticMarket(INSTRUMENT, venues, seed=8, volatility_bps=20.0)
    series = _mid_series(market.take(n), ["one", "two"], n)
    assert _corr(_returns(series["one"], 10), _returns(series["two"], 10)) > 0.8


def test_dislocations_jump_on_one_venue_and_decay():
    venues = (
        VenueProfile("calm", noise_bps=0.1),
        VenueProfile("jumpy", noise_bps=0.1, jump_rate=0.2, jump_bps=30.0, jump_half_life_ns=1_000_000_000),
    )
    market = SyntheticMarket(INSTRUMENT, venues, seed=9, volatility_bps=2.0)
    gaps = [
        abs(market.mid_ticks("jumpy", k * STEP) / market.mid_ticks("calm", k * STEP) - 1) / 1e-4 for k in range(3000)
    ]
    big = [i for i, g in enumerate(gaps) if g > 20]
    assert big, "expected at least one dislocation above 20 bps"
    i = big[0]
    assert gaps[min(i + 30, len(gaps) - 1)] < gaps[i] / 2  # three half-lives later it has mostly closed
    assert sorted(gaps)[len(gaps) // 2] < 10  # most of the time the venues agree


def test_generates_step_by_step_across_hours_with_chained_books():
    market = SyntheticMarket(INSTRUMENT, seed=1)
    hour = 3_600_000_000_000
    stream = market.events(hour - 50 * STEP, 2**62)  # open-ended, across an hour boundary
    events = [next(stream) for _ in range(1000)]
    assert events[-1][1].ts > hour
    books = {"alpha": OrderBook(), "beta": OrderBook()}
    for venue, event in events:
        if isinstance(event, BookSnapshot):
            books[venue].apply_snapshot(event)
        elif isinstance(event, BookDelta):
            assert books[venue].apply_delta(event)
    jump = abs(market.mid_ticks("alpha", hour) / market.mid_ticks("alpha", hour - STEP) - 1) / 1e-4
    assert jump < 5  # the hourly redraw leaves no visible break in the price


def test_bad_configuration_is_rejected_naming_the_field():
    with pytest.raises(ValueError, match="lag_ns"):
        VenueProfile("x", lag_ns=-1)
    with pytest.raises(ValueError, match="names"):
        SyntheticMarket(INSTRUMENT, (VenueProfile("a"), VenueProfile("a")))
    with pytest.raises(ValueError, match="step_ns"):
        SyntheticMarket(INSTRUMENT, step_ns=0)
    with pytest.raises(ValueError, match="step_ns"):
        SyntheticMarket(INSTRUMENT, step_ns=7_000_000)  # does not divide a minute
    with pytest.raises(ValueError, match="seed"):
        SyntheticMarket(INSTRUMENT, seed=-1)
    with pytest.raises(ValueError, match="episode_share"):
        VenueProfile("x", episode_share=1.5)
    with pytest.raises(KeyError, match="nope"):
        SyntheticMarket(INSTRUMENT).mid("nope", 0)
    with pytest.raises(ValueError, match="ts"):
        SyntheticMarket(INSTRUMENT).book_at("alpha", -1)


def test_the_market_at_a_time_does_not_depend_on_when_generation_started():
    long = SyntheticMarket(INSTRUMENT, seed=21).take(400)
    late = SyntheticMarket(INSTRUMENT, seed=21).take(100, start_ts=300 * STEP)
    tail = [item for item in long if item[1].ts >= 300 * STEP]
    # the first step of a window is a snapshot, after it every event is the same
    assert late[2:] == tail[2:]
    first_books = dict(late[:2])
    for venue, delta in tail[:2]:
        assert isinstance(delta, BookDelta) and first_books[venue].sequence == delta.last_sequence
        book = OrderBook()
        book.apply_snapshot(SyntheticMarket(INSTRUMENT, seed=21).book_at(venue, 299 * STEP))
        assert book.apply_delta(delta)
        assert book.top(20) == (list(first_books[venue].bids), list(first_books[venue].asks))


def test_adding_a_venue_leaves_the_others_unchanged():
    one = SyntheticMarket(INSTRUMENT, (VenueProfile("alpha"),), seed=5).take(200)
    two = SyntheticMarket(INSTRUMENT, (VenueProfile("alpha"), VenueProfile("gamma")), seed=5).take(200)
    assert one == [item for item in two if item[0] == "alpha"]


def test_divergence_episodes_move_one_venue_away_and_back_within_the_minute():
    venues = (VenueProfile("a", noise_bps=0.0), VenueProfile("b", noise_bps=0.0, episode_share=0.5, episode_bps=30.0))
    market = SyntheticMarket(INSTRUMENT, venues, seed=3)
    minute = 600  # steps
    gaps = [
        abs(market.mid_ticks("b", k * STEP) / market.mid_ticks("a", k * STEP) - 1) / 1e-4 for k in range(20 * minute)
    ]
    peaks = [max(gaps[m * minute : (m + 1) * minute]) for m in range(20)]
    assert 3 <= sum(p > 1 for p in peaks) <= 17  # about half the minutes diverge
    assert max(peaks) <= 30.01 and max(peaks) > 10
    assert all(gaps[m * minute] < 1e-6 for m in range(20))  # every episode starts and ends at zero


_DIGEST = """
import hashlib, sys
from trading.instruments import Instrument
from trading.synthetic.market import DEFAULT_VENUES, SyntheticMarket

inst = Instrument.create(symbol="SYN/USD", tick_size="0.001", lot_size="1")
market = SyntheticMarket(inst, DEFAULT_VENUES, seed=int(sys.argv[1]), start_price=60_000.0)
start = int(sys.argv[2])
print(hashlib.sha256(repr(market.take(int(sys.argv[3]), start_ts=start)).encode()).hexdigest())
"""


def test_two_processes_generate_identical_events_for_the_same_seed_venues_and_window():
    import hashlib
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    start = 1_765_000_000 * 1_000_000_000  # an epoch time, as hosted venues use
    args = ["17", str(start), "600"]
    digests = [
        subprocess.run(
            [sys.executable, "-c", _DIGEST, *args], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        for _ in range(2)
    ]
    here = SyntheticMarket(INSTRUMENT, seed=17, start_price=60_000.0).take(600, start_ts=start)
    assert digests[0] == digests[1] == hashlib.sha256(repr(here).encode()).hexdigest()
    other = subprocess.run(
        [sys.executable, "-c", _DIGEST, "18", str(start), "600"], cwd=root, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert other != digests[0]
