"""Normalization of ccxt's own parsed results (fixtures' parsedResponse) into trading types."""

from __future__ import annotations

from decimal import Decimal

import pytest

from connectors import ccxt_normalize as norm
from connectors.markets import TICK_SIZE, instrument_from_market
from tests.connectors.conftest import backpack_markets, binance_markets, case
from trading.instruments import Instrument, Side
from trading.ports import OrderStatus

T = 1_700_000_000_000_000_000


def inst(symbol: str, markets=binance_markets):
    return instrument_from_market(markets()[symbol], precision_mode=TICK_SIZE)


def test_rest_order_book_converts_every_level_exactly_from_ccxt_floats() -> None:
    c = case("response", "binance", "fetchOrderBook", "swap orderbook")
    book = norm.book_snapshot(inst("BTC/USDT:USDT"), c["parsedResponse"], T, depth=None)
    raw = c["httpResponse"]
    i = inst("BTC/USDT:USDT")
    assert book.bids == tuple((i.ticks(p), i.lots(q)) for p, q in raw["bids"])
    assert book.asks == tuple((i.ticks(p), i.lots(q)) for p, q in raw["asks"])
    assert book.sequence == int(raw["lastUpdateId"])


def test_closed_order_report_matches_ccxt_parse() -> None:
    c = case("response", "binance", "fetchOrder", "Fetch spot closed order")
    parsed = c["parsedResponse"]
    report = norm.order_report(inst("LTC/USDT"), parsed)
    assert report.status is OrderStatus.FILLED and parsed["status"] == "closed"
    assert report.client_order_id == parsed["clientOrderId"]
    assert report.venue_order_id == parsed["id"] == c["httpResponse"]["orderId"]
    assert report.side is Side.SELL
    assert inst("LTC/USDT").quantity(report.filled_qty) == Decimal(c["httpResponse"]["executedQty"])
    # ccxt gives a filled market order the average price: cummulativeQuoteQty / executedQty
    raw = c["httpResponse"]
    assert inst("LTC/USDT").price(report.price) == Decimal(raw["cummulativeQuoteQty"]) / Decimal(raw["executedQty"])


def test_open_limit_order_report_matches_raw_strings() -> None:
    c = case("response", "binance", "fetchOpenOrders", "Fetch spot open orders")
    (parsed,), (raw,) = c["parsedResponse"], c["httpResponse"]
    i = inst("LTC/USDT")
    report = norm.order_report(i, parsed)
    assert report.status is OrderStatus.OPEN
    assert i.price(report.price) == Decimal(raw["price"]) and i.quantity(report.qty) == Decimal(raw["origQty"])


def test_my_trade_fill_report_keeps_exact_fee_and_liquidity() -> None:
    c = case("response", "binance", "fetchMyTrades", "Spot private trade")
    (parsed,), (raw,) = c["parsedResponse"], c["httpResponse"]
    i = inst("LTC/USDT")
    fill = norm.fill_report(i, parsed, client_order_id="mm-1")
    assert fill.trade_id == raw["id"] and fill.venue_order_id == raw["orderId"]
    assert i.price(fill.price) == Decimal(raw["price"]) and i.quantity(fill.qty) == Decimal(raw["qty"])
    assert fill.fee == Decimal(raw["commission"]) and fill.fee_currency == raw["commissionAsset"]
    assert fill.maker is raw["isMaker"] and fill.side is Side.SELL  # isBuyer false
    assert fill.ts == int(raw["time"]) * 1_000_000
    # a quote-currency fee converts to cash units exactly
    assert i.cash(norm.fee_cash_units(i, fill)) == Decimal(raw["commission"])


def test_backpack_fill_with_base_currency_fee_is_valued_at_the_fill_price() -> None:
    c = case("response", "backpack", "fetchMyTrades", "fetch users trades with since and limit parameters")
    (parsed,), (raw,) = c["parsedResponse"], c["httpResponse"]
    i = inst("ETH/USDC", backpack_markets)
    fill = norm.fill_report(i, parsed)
    assert fill.fee == Decimal(raw["fee"]) and fill.fee_currency == "ETH"
    assert i.cash(norm.fee_cash_units(i, fill)) == Decimal(raw["fee"]) * Decimal(raw["price"])


def test_balances_keep_non_zero_totals_exactly() -> None:
    c = case("response", "binance", "fetchBalance", "Spot balance")
    assert norm.balances(c["parsedResponse"]) == {"LTC": Decimal("0.919741"), "ETH": Decimal("0.02229833")}


@pytest.mark.parametrize(
    ("price", "reason"),
    [
        (float("nan"), "nan"),
        (float("inf"), "nan"),
        (0.0, "non_positive_price"),
        (-1.0, "non_positive_price"),
        (64000.005, "off_tick"),
        ("abc", "malformed"),
        (None, "missing_field"),
        (True, "malformed"),
    ],
)
def test_bad_prices_are_refused_with_a_reason_code(price, reason) -> None:
    with pytest.raises(norm.RejectedMessage) as info:
        norm.price_ticks(inst("BTC/USDT"), price)
    assert info.value.reason == reason


def test_crossed_and_unsorted_books_are_refused() -> None:
    i = inst("BTC/USDT")
    with pytest.raises(norm.RejectedMessage, match="crossed"):
        norm.book_snapshot(i, {"bids": [[100.0, 1.0]], "asks": [[99.99, 1.0]]}, T)
    with pytest.raises(norm.RejectedMessage, match="unsorted"):
        norm.book_snapshot(i, {"bids": [[99.0, 1.0], [100.0, 1.0]], "asks": []}, T)


def test_float_prices_go_through_repr_not_binary_expansion() -> None:
    # 0.1 + 0.2 style binary noise must not leak: 64000.1 is exactly 6,400,010 ticks
    assert norm.price_ticks(inst("BTC/USDT"), 64000.1) == 6_400_010
    assert norm.qty_lots(inst("BTC/USDT"), 0.00003) == 3


@pytest.mark.parametrize(
    ("raw", "field", "reason"),
    [
        ({"price": float("nan"), "amount": 1, "side": "buy"}, "trade.price", "nan"),
        ({"price": "abc", "amount": 1, "side": "buy"}, "trade.price", "malformed"),
        ({"price": -1, "amount": 1, "side": "buy"}, "trade.price", "non_positive_price"),
        ({"price": 1, "amount": 0, "side": "buy"}, "trade.amount", None),
        ({"price": 1, "amount": None, "side": "buy"}, "trade.amount", "missing_field"),
        ({"price": 1, "amount": 1, "side": "up"}, "trade.side", "malformed"),
        ({"price": "1.001", "amount": 1, "side": "buy"}, "trade.price", None),
        ({"price": "1e400", "amount": 1, "side": "buy"}, "trade.price", "out_of_range"),
        ({"price": 1, "amount": "1e30", "side": "buy"}, "trade.amount", "out_of_range"),
    ],
)
def test_bad_public_trade_is_refused_naming_its_field(raw, field, reason) -> None:
    btc = Instrument.create(symbol="BTC/USDT", tick_size="0.01", lot_size="0.00001")
    with pytest.raises(norm.RejectedMessage) as exc:
        norm.trade_tick(btc, raw, T)
    assert field in exc.value.detail
    if reason is not None:
        assert exc.value.reason == reason


def test_public_trade_converts_exactly() -> None:
    btc = Instrument.create(symbol="BTC/USDT", tick_size="0.01", lot_size="0.00001")
    tick = norm.trade_tick(btc, {"price": "100.5", "amount": 0.001, "side": "sell", "id": 42, "timestamp": 7}, T)
    assert (tick.price, tick.qty, tick.aggressor, tick.trade_id, tick.venue_ts) == (
        10050,
        100,
        Side.SELL,
        "42",
        7_000_000,
    )
