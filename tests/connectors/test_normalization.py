"""Normalization of raw payloads into events (connectors.normalization): exact ticks/lots, and
refusals naming the field, the value and what is accepted."""

from __future__ import annotations

import math

import pytest

from connectors.normalization import NormalizationError, normalize, normalize_order_book
from trading.events import BookDelta, BookSnapshot, TradeTick
from trading.instruments import Instrument, Side

BTC = Instrument.create(symbol="BTC/USDT", tick_size="0.01", lot_size="0.00001")


def test_normalize_ccxt_order_book_exactly() -> None:
    raw = {
        "bids": [[61837.63, 3.78826], ["61837.62", "0.617"]],
        "asks": [[61837.64, 1.54698]],
        "nonce": 7,
        "timestamp": 1723161255208,
    }
    snap = normalize("order_book", raw, BTC, ts=5)
    assert isinstance(snap, BookSnapshot)
    assert snap.bids == ((6183763, 378826), (6183762, 61700))
    assert snap.asks == ((6183764, 154698),)
    assert snap.sequence == 7 and snap.venue_ts == 1723161255208 * 1_000_000


def test_normalize_trade_and_ticker() -> None:
    trade = normalize("trade", {"price": "100.5", "amount": 0.001, "side": "sell", "id": 42}, BTC, ts=1)
    assert trade == TradeTick(ts=1, price=10050, qty=100, aggressor=Side.SELL, trade_id="42")
    top = normalize("ticker", {"bid": 1.01, "bidVolume": 1, "ask": 1.02, "askVolume": 2}, BTC, ts=1)
    assert (top.bid_price, top.bid_qty, top.ask_price, top.ask_qty) == (101, 100000, 102, 200000)


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"price": math.nan, "amount": 1, "side": "buy"}, "price"),
        ({"price": "abc", "amount": 1, "side": "buy"}, "price"),
        ({"price": -1, "amount": 1, "side": "buy"}, "price"),
        ({"price": 1, "amount": 0, "side": "buy"}, "amount"),
        ({"price": 1, "amount": None, "side": "buy"}, "amount"),
        ({"price": 1, "amount": 1, "side": "up"}, "side"),
        ({"price": "1.001", "amount": 1, "side": "buy"}, "price"),
    ],
)
def test_normalize_bad_trade_names_field_and_value(raw, field) -> None:
    with pytest.raises(NormalizationError, match=field):
        normalize("trade", raw, BTC, ts=1)


def test_normalize_book_delta_allows_zero_size_and_rounds_off_grid_prices_safely() -> None:
    delta = normalize_order_book({"bids": [["1.005", "0"]], "asks": [["1.005", "1"]]}, BTC, ts=1, delta=True)
    assert isinstance(delta, BookDelta)
    assert delta.bids == ((100, 0),) and delta.asks == ((101, 100000),)


def test_normalize_bad_level_names_its_position() -> None:
    with pytest.raises(NormalizationError, match=r"asks\[1\]"):
        normalize("order_book", {"bids": [], "asks": [[1, 1], [2]]}, BTC, ts=1)


def test_normalize_unknown_kind_lists_accepted_kinds() -> None:
    with pytest.raises(NormalizationError, match="accepted"):
        normalize("candles", {}, BTC, ts=1)
