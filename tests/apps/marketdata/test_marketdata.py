"""Market data: batched ingest ignores duplicates, candles from trades are the hand-computed
OHLCV on plain PostgreSQL, and the API validates its parameters naming each bad one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from apps.exchanges.models import Market
from apps.marketdata import selectors
from apps.marketdata.models import DepthSnapshot, TopOfBookSnapshot, Trade
from apps.marketdata.services import batch_from_events, marketdata_ingest_batch, ns_to_datetime
from trading.events import BookSnapshot, TopOfBook, TradeTick
from trading.instruments import Instrument, Side

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


@pytest.fixture
def market():
    return Market.objects.get(venue="sim:alpha", symbol="BTC/USDT")


def trade(market, seconds: float, price: str, qty: str, trade_id: str, aggressor: str = "buy") -> Trade:
    return Trade(
        market=market,
        ts=T0 + timedelta(seconds=seconds),
        price=Decimal(price),
        qty=Decimal(qty),
        aggressor=aggressor,
        trade_id=trade_id,
    )


def test_ingest_twice_stores_each_trade_and_snapshot_once(market):
    trades = [trade(market, 1, "100", "1", "t1"), trade(market, 2, "101", "2", "t2")]
    top = TopOfBookSnapshot(market=market, ts=T0, bid=Decimal("99"), bid_qty=1, ask=Decimal("100"), ask_qty=2)
    marketdata_ingest_batch(trades=trades, tops=[top])
    again = [trade(market, 1, "100", "1", "t1"), trade(market, 3, "102", "1", "t3")]
    top_again = TopOfBookSnapshot(market=market, ts=T0, bid=Decimal("99"), bid_qty=1, ask=Decimal("100"), ask_qty=2)
    stored = marketdata_ingest_batch(trades=again, tops=[top_again])
    assert stored == {"tops": 0, "depths": 0, "trades": 1}
    assert sorted(Trade.objects.values_list("trade_id", flat=True)) == ["t1", "t2", "t3"]
    assert TopOfBookSnapshot.objects.count() == 1


def test_snapshots_in_the_same_microsecond_keep_the_last_state(market):
    def top(bid: str) -> TopOfBookSnapshot:
        return TopOfBookSnapshot(market=market, ts=T0, bid=Decimal(bid), bid_qty=1, ask=Decimal(200), ask_qty=1)

    assert marketdata_ingest_batch(tops=[top("100"), top("101"), top("102")]) == {"tops": 1, "depths": 0, "trades": 0}
    assert TopOfBookSnapshot.objects.get().bid == Decimal("102")


def test_ingest_refuses_rows_of_the_wrong_kind(market):
    with pytest.raises(TypeError, match="trades: TopOfBookSnapshot given"):
        marketdata_ingest_batch(trades=[TopOfBookSnapshot(market=market, ts=T0, bid=1, bid_qty=1, ask=2, ask_qty=1)])


def test_events_become_exact_decimal_rows(market):
    inst = Instrument.create(symbol="BTC/USDT", tick_size="0.01", lot_size="0.0001", venue="sim:alpha")
    ts = 1_763_629_200_123_456_789
    events = [
        TopOfBook(ts=ts, bid_price=6173763, bid_qty=15, ask_price=6173764, ask_qty=20000),
        TradeTick(ts=ts + 1000, price=6173763, qty=3, aggressor=Side.SELL, trade_id="42"),
        BookSnapshot(ts=ts + 2000, bids=((6173763, 10), (6173700, 5)), asks=((6173764, 7),)),
    ]
    batch = batch_from_events(market_id=market.pk, instrument=inst, events=events)
    marketdata_ingest_batch(tops=batch.tops, depths=batch.depths, trades=batch.trades)
    tob = TopOfBookSnapshot.objects.get()
    assert (tob.bid, tob.bid_qty, tob.ask, tob.ask_qty) == (
        Decimal("61737.63"),
        Decimal("0.0015"),
        Decimal("61737.64"),
        Decimal("2"),
    )
    assert tob.ts == ns_to_datetime(ts) and tob.ts.microsecond == 123456
    tr = Trade.objects.get()
    assert (tr.price, tr.qty, tr.aggressor, tr.trade_id) == (Decimal("61737.63"), Decimal("0.0003"), "sell", "42")
    depth = DepthSnapshot.objects.get()
    assert depth.bids == [["61737.63", "0.0010"], ["61737.00", "0.0005"]]
    assert depth.mid == Decimal("61737.635")


def test_candles_from_trades_match_hand_computed_ohlcv(market):
    # minute 09:00: 100 @1, 103 @0.5, 99 @2, 101 @1  -> O 100 H 103 L 99 C 101 V 4.5 N 4
    # minute 09:01: none; minute 09:02: 98 @3 -> O=H=L=C 98 V 3 N 1
    rows = [
        trade(market, 0, "100", "1", "a"),
        trade(market, 40, "101", "1", "d"),  # inserted out of order: close must still be by time
        trade(market, 10, "103", "0.5", "b"),
        trade(market, 30, "99", "2", "c", "sell"),
        trade(market, 125, "98", "3", "e"),
    ]
    marketdata_ingest_batch(trades=rows)
    got = selectors.candles(market=market, interval="1m", start=T0, end=T0 + timedelta(minutes=5))
    assert [(r["bucket"], r["open"], r["high"], r["low"], r["close"], r["volume"], r["trades"]) for r in got] == [
        (T0, Decimal("100"), Decimal("103"), Decimal("99"), Decimal("101"), Decimal("4.5"), 4),
        (T0 + timedelta(minutes=2), Decimal("98"), Decimal("98"), Decimal("98"), Decimal("98"), Decimal("3"), 1),
    ]
    (five,) = selectors.candles(market=market, interval="5m", start=T0, end=T0 + timedelta(minutes=5))
    assert (five["open"], five["high"], five["low"], five["close"], five["volume"], five["trades"]) == (
        Decimal("100"),
        Decimal("103"),
        Decimal("98"),
        Decimal("98"),
        Decimal("7.5"),
        5,
    )


def test_candles_exclude_other_markets_and_the_end_of_the_range(market):
    other = Market.objects.get(venue="sim:beta", symbol="BTC/USDT")
    marketdata_ingest_batch(
        trades=[trade(market, 0, "100", "1", "a"), trade(other, 1, "500", "1", "a"), trade(market, 60, "1", "1", "z")]
    )
    got = selectors.candles(market=market, interval="1m", start=T0, end=T0 + timedelta(minutes=1))
    assert [(r["high"], r["trades"]) for r in got] == [(Decimal("100"), 1)]


def test_top_of_book_series_bucketed_keeps_the_last_quote_of_each_bucket(market):
    tops = [
        TopOfBookSnapshot(
            market=market, ts=T0 + timedelta(seconds=s), bid=Decimal(b), bid_qty=1, ask=Decimal(b) + 1, ask_qty=1
        )
        for s, b in [(0, "100"), (30, "101"), (59, "102"), (61, "90")]
    ]
    marketdata_ingest_batch(tops=tops)
    raw = selectors.top_of_book_series(market=market, start=T0, end=T0 + timedelta(minutes=2))
    assert [r["bid"] for r in raw] == [Decimal("100"), Decimal("101"), Decimal("102"), Decimal("90")]
    first_two = selectors.top_of_book_series(market=market, start=T0, end=T0 + timedelta(minutes=2), limit=2)
    assert [r["bid"] for r in first_two] == [Decimal("100"), Decimal("101")]
    bucketed = selectors.top_of_book_series(market=market, start=T0, end=T0 + timedelta(minutes=2), interval="1m")
    assert [(r["bucket"], r["bid"]) for r in bucketed] == [
        (T0, Decimal("102")),
        (T0 + timedelta(minutes=1), Decimal("90")),
    ]


def test_recent_trades_newest_first_and_latest_depth(market):
    marketdata_ingest_batch(trades=[trade(market, s, "100", "1", f"t{s}") for s in range(5)])
    assert [t.trade_id for t in selectors.recent_trades(market=market, limit=3)] == ["t4", "t3", "t2"]
    assert selectors.latest_depth(market=market) is None
    marketdata_ingest_batch(
        depths=[
            DepthSnapshot(market=market, ts=T0 + timedelta(seconds=s), bids=[[str(s), "1"]], asks=[], mid=None)
            for s in (0, 60, 120)
        ]
    )
    assert selectors.latest_depth(market=market).bids == [["120", "1"]]
    assert selectors.latest_depth(market=market, at=T0 + timedelta(seconds=90)).bids == [["60", "1"]]
    heat = selectors.heatmap(market=market, start=T0, end=T0 + timedelta(minutes=3), bucket="1m")
    assert [c["bids"] for c in heat["columns"]] == [[["0", "1"]], [["60", "1"]], [["120", "1"]]]


# --- API ---------------------------------------------------------------------------------------
def test_api_candles_for_any_authenticated_user(market, viewer, api_for):
    marketdata_ingest_batch(trades=[trade(market, 0, "100", "1", "a"), trade(market, 5, "104", "2", "b")])
    response = api_for(viewer).get(
        "/api/v1/marketdata/candles/",
        {"market": market.pk, "interval": "1m", "start": T0.isoformat(), "end": (T0 + timedelta(hours=1)).isoformat()},
    )
    assert response.status_code == 200, response.json()
    (candle,) = response.json()
    assert Decimal(candle["open"]) == 100 and Decimal(candle["close"]) == 104 and Decimal(candle["volume"]) == 3


def test_api_requires_authentication(market, client):
    assert client.get("/api/v1/marketdata/candles/", {"market": market.pk}).status_code in (401, 403)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"market": None, "interval": "1m"}, "market"),
        ({"market": 999999}, "market"),
        ({"market": "abc"}, "market"),
        ({"interval": "7m"}, "interval"),
        ({"start": "yesterday"}, "start"),
        ({"start": "2026-11-20T10:00:00Z", "end": "2026-11-20T09:00:00Z"}, "start"),
        ({"interval": "1m", "start": "2026-01-01T00:00:00Z", "end": "2026-11-20T00:00:00Z"}, "end"),
    ],
)
def test_api_candles_bad_parameters_are_400_naming_the_field(market, trader, api_for, params, field):
    params = {"market": market.pk, **params}
    if params.get("market") is None:
        params.pop("market")
    response = api_for(trader).get("/api/v1/marketdata/candles/", params)
    assert response.status_code == 400
    assert field in response.json(), response.json()


def test_api_trades_depth_top_of_book_and_heatmap(market, trader, api_for):
    marketdata_ingest_batch(
        trades=[trade(market, s, "100", "1", f"t{s}") for s in range(3)],
        tops=[TopOfBookSnapshot(market=market, ts=T0, bid=Decimal("99.5"), bid_qty=1, ask=Decimal("100.5"), ask_qty=3)],
        depths=[DepthSnapshot(market=market, ts=T0, bids=[["99.5", "1"]], asks=[["100.5", "3"]], mid=Decimal("100"))],
    )
    api = api_for(trader)
    trades = api.get("/api/v1/marketdata/trades/", {"market": market.pk, "limit": 2}).json()
    assert [t["trade_id"] for t in trades] == ["t2", "t1"]
    assert api.get("/api/v1/marketdata/trades/", {"market": market.pk, "limit": 0}).json().keys() == {"limit"}
    depth = api.get("/api/v1/marketdata/depth/", {"market": market.pk}).json()
    assert depth["bids"] == [["99.5", "1"]] and Decimal(depth["mid"]) == 100
    window = {"market": market.pk, "start": T0.isoformat(), "end": (T0 + timedelta(minutes=1)).isoformat()}
    tob = api.get("/api/v1/marketdata/top-of-book/", window).json()
    assert [Decimal(r["ask"]) for r in tob] == [Decimal("100.5")]
    assert api.get("/api/v1/marketdata/top-of-book/", {**window, "limit": 10**6}).json().keys() == {"limit"}
    wide = {**window, "bucket": "1m", "end": (T0 + timedelta(days=2)).isoformat()}
    assert api.get("/api/v1/marketdata/heatmap/", wide).json().keys() == {"end"}  # > 1,500 columns
    heat = api.get("/api/v1/marketdata/heatmap/", {**window, "bucket": "1m"}).json()
    assert heat["bucket_seconds"] == 60 and heat["columns"][0]["asks"] == [["100.5", "3"]]
    other = Market.objects.get(venue="sim:beta", symbol="BTC/USDT")
    assert api.get("/api/v1/marketdata/depth/", {"market": other.pk}).status_code == 404
