"""Synthetic multi-venue market: reproducible, consistent books, correlation and lead/lag as configured."""

from __future__ import annotations

import itertools
import math

import pytest

from trading.book import OrderBook
from trading.events import BookDelta, BookSnapshot, TradeTick
from trading.instruments import Instrument, Side
from trading.synthetic.multivenue import MultiVenueMarket, VenueSpec

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
    a = MultiVenueMarket(INSTRUMENT, seed=11).take(200)
    b = MultiVenueMarket(INSTRUMENT, seed=11).take(200)
    c = MultiVenueMarket(INSTRUMENT, seed=12).take(200)
    assert a == b
    assert a != c


def test_books_have_integer_ticks_twenty_levels_and_sizes_growing_away_from_the_touch():
    market = MultiVenueMarket(INSTRUMENT, seed=3)
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
    market2 = MultiVenueMarket(INSTRUMENT, venues=(VenueSpec("solo"),), seed=4)
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
    events = MultiVenueMarket(INSTRUMENT, seed=5).take(300)
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
    venues = (VenueSpec("lead", noise_bps=0.2), VenueSpec("lag", lag_ns=5 * STEP, noise_bps=0.2))
    n = 3000
    market = MultiVenueMarket(INSTRUMENT, venues, seed=7, volatility_bps=20.0)
    series = _mid_series(market.take(n), ["lead", "lag"], n)
    lead = _returns(series["lead"], 1)
    lag = _returns(series["lag"], 1)
    at_delay = _corr(lead[:-5], lag[5:])
    same_time = _corr(lead, lag)
    assert at_delay > 0.8
    assert abs(same_time) < 0.2


def test_correlation_sign_follows_beta():
    venues = (VenueSpec("long"), VenueSpec("inverse", beta=-1.0))
    n = 2000
    market = MultiVenueMarket(INSTRUMENT, venues, seed=8, volatility_bps=20.0)
    series = _mid_series(market.take(n), ["long", "inverse"], n)
    assert _corr(_returns(series["long"], 10), _returns(series["inverse"], 10)) < -0.8
    venues = (VenueSpec("one"), VenueSpec("two"))
    market = MultiVenueMarket(INSTRUMENT, venues, seed=8, volatility_bps=20.0)
    series = _mid_series(market.take(n), ["one", "two"], n)
    assert _corr(_returns(series["one"], 10), _returns(series["two"], 10)) > 0.8


def test_dislocations_jump_on_one_venue_and_decay():
    venues = (
        VenueSpec("calm", noise_bps=0.1),
        VenueSpec("jumpy", noise_bps=0.1, jump_rate=0.2, jump_bps=30.0, jump_half_life_ns=1_000_000_000),
    )
    market = MultiVenueMarket(INSTRUMENT, venues, seed=9, volatility_bps=2.0)
    gaps = []
    for _ in range(3000):
        market.step()
        gaps.append(abs(market.mid("jumpy") / market.mid("calm") - 1) / 1e-4)
    big = [i for i, g in enumerate(gaps) if g > 20]
    assert big, "expected at least one dislocation above 20 bps"
    i = big[0]
    assert gaps[min(i + 30, len(gaps) - 1)] < gaps[i] / 2  # three half-lives later it has mostly closed
    assert sorted(gaps)[len(gaps) // 2] < 10  # most of the time the venues agree


def test_generates_forever_step_by_step():
    market = MultiVenueMarket(INSTRUMENT, seed=1)
    stream = iter(market)
    events = [next(stream) for _ in range(5000)]
    assert market.steps > 100
    assert events[-1][1].ts > events[0][1].ts


def test_bad_configuration_is_rejected_naming_the_field():
    with pytest.raises(ValueError, match="lag_ns"):
        VenueSpec("x", lag_ns=-1)
    with pytest.raises(ValueError, match="names"):
        MultiVenueMarket(INSTRUMENT, (VenueSpec("a"), VenueSpec("a")))
    with pytest.raises(ValueError, match="step_ns"):
        MultiVenueMarket(INSTRUMENT, step_ns=0)
    with pytest.raises(KeyError, match="nope"):
        MultiVenueMarket(INSTRUMENT).mid("nope")
