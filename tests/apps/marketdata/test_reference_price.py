"""The price the fat-finger guards judge an order at (apps/marketdata/reference_price.py): the
freshest source that has one, so a market that was never fed is judged too. Real PostgreSQL and
Redis; the replay price is read from the shipped recording."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from apps.exchanges.models import Market
from apps.marketdata.models import DepthSnapshot, Trade
from apps.marketdata.reference_price import reference_price
from tests.apps.bots.factories import sim_market
from workers.keys import feed_book

pytestmark = pytest.mark.django_db


def _market(venue: str, symbol: str = "BTC/USDT") -> Market:
    return sim_market(venue, symbol)


def test_a_replay_market_never_fed_is_priced_from_its_recording(clean_redis):
    from connectors.binance_recording import RECORDINGS, iter_recording
    from trading.events import TradeTick

    recording = RECORDINGS["binance-spot-btcusdt"]
    first = next(e for e in iter_recording(recording.paths, recording.instrument) if isinstance(e, TradeTick))
    ref = reference_price(_market("replay:binance-spot"))
    assert ref.price == recording.instrument.price(first.price)
    assert ref.source == "the replay recording's opening price"


def test_a_sim_market_is_priced_at_the_sim_venues_price_now(clean_redis):
    ref = reference_price(_market("sim:alpha"))
    assert ref.source == "the sim venue's price now"
    assert Decimal("30000") < ref.price < Decimal("120000")  # around the generator's 60,000 base


def test_a_live_market_never_fed_has_no_price(clean_redis):
    assert reference_price(_market("binance")) is None


def test_the_freshest_source_wins_in_order(clean_redis):
    market = _market("binance")
    book = {"bids": [["100.00", "1"]], "asks": [["102.00", "2"]]}
    clean_redis.set(feed_book(market.venue, market.symbol), json.dumps(book))
    assert (reference_price(market).price, reference_price(market).source) == (Decimal("101"), "live book")
    now = timezone.now()
    DepthSnapshot.objects.create(market=market, ts=now, bids=[["90", "1"]], asks=[["92", "1"]], mid=Decimal("91"))
    assert (reference_price(market).price, reference_price(market).source) == (Decimal("91"), "latest recorded book")
    Trade.objects.create(market=market, ts=now - timedelta(seconds=5), price=Decimal("95.5"), qty=Decimal("1"),
                         aggressor="buy", trade_id="t1")  # fmt: skip
    assert (reference_price(market).price, reference_price(market).source) == (Decimal("95.5"), "last trade")


def test_an_unreadable_live_book_is_skipped(clean_redis):
    market = _market("binance")
    clean_redis.set(feed_book(market.venue, market.symbol), "not json")
    assert reference_price(market) is None
