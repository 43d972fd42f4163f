"""OrderTracker: venue trades and order updates -> our order events, each exactly once."""

from __future__ import annotations

from connectors.ccxt_orders import OrderTracker
from connectors.ccxt_venue import ClientIdCodec
from connectors.markets import TICK_SIZE, instrument_from_market
from tests.connectors.conftest import binance_markets, case
from trading.events import Liquidity, OrderCancelled, OrderFilled, PlaceOrder, TimeInForce
from trading.instruments import Side

LTC = instrument_from_market(binance_markets()["LTC/USDT"], precision_mode=TICK_SIZE)


def tracker() -> tuple[OrderTracker, list]:
    out: list = []
    return OrderTracker(ClientIdCodec("binance"), lambda: 42, out.append), out


def recorded_trade() -> dict:
    (parsed,) = case("response", "binance", "fetchMyTrades", "Spot private trade")["parsedResponse"]
    return parsed


def test_the_same_trade_from_stream_and_poll_is_one_fill() -> None:
    t, out = tracker()
    trade = recorded_trade()  # sell 0.2 LTC at 69.63 on order 3784695242
    tracked = t.track("LTC/USDT", PlaceOrder("mm-s-1", Side.SELL, 6963, 300, TimeInForce.GTC))
    t.set_venue_id(tracked, trade["order"])
    t.on_trade(LTC, trade)
    t.on_trade(LTC, dict(trade))
    (fill,) = out
    assert isinstance(fill, OrderFilled)
    assert (fill.client_order_id, fill.qty, fill.leaves_qty) == ("mm-s-1", 200, 100)  # lot 0.001 LTC
    assert fill.liquidity is Liquidity.TAKER  # isMaker false


def test_trades_of_orders_that_are_not_ours_are_ignored() -> None:
    t, out = tracker()
    t.on_trade(LTC, recorded_trade())
    assert out == []


def test_post_only_fill_without_liquidity_flag_counts_as_maker() -> None:
    t, out = tracker()
    trade = {**recorded_trade(), "takerOrMaker": None}
    tracked = t.track("LTC/USDT", PlaceOrder("mm-s-1", Side.SELL, 6963, 200, TimeInForce.POST_ONLY))
    t.set_venue_id(tracked, trade["order"])
    t.on_trade(LTC, trade)
    assert out[0].liquidity is Liquidity.MAKER and out[0].is_final


def test_venue_cancel_is_reported_once_and_not_after_our_own_cancel() -> None:
    t, out = tracker()
    t.track("LTC/USDT", PlaceOrder("mm-b-1", Side.BUY, 5000, 100))
    t.track("LTC/USDT", PlaceOrder("mm-b-2", Side.BUY, 5000, 100))
    t.on_order({"clientOrderId": "mm-b-1", "status": "expired"})
    t.on_order({"clientOrderId": "mm-b-1", "status": "expired"})
    t.cancelled("mm-b-2", "requote")
    t.on_order({"clientOrderId": "mm-b-2", "status": "canceled"})
    assert [(type(e), e.client_order_id) for e in out] == [(OrderCancelled, "mm-b-1"), (OrderCancelled, "mm-b-2")]
    assert t.working("LTC/USDT") == []


def test_finished_orders_and_trade_ids_are_forgotten_after_the_memory_bound() -> None:
    out: list = []
    t = OrderTracker(ClientIdCodec("binance"), lambda: 1, out.append, keep_done=2, keep_trade_ids=2)
    for i in range(5):
        t.track("LTC/USDT", PlaceOrder(f"mm-{i}", Side.BUY, 5000, 100))
        t.cancelled(f"mm-{i}", "requote")
    assert sorted(t.orders) == ["mm-3", "mm-4"]
    t.track("LTC/USDT", PlaceOrder("mm-live", Side.BUY, 5000, 100))
    assert "mm-live" in t.orders and len(out) == 5
