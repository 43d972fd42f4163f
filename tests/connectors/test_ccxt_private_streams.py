"""Private websocket streams (Binance ws-api user data) through the real ccxt.pro Binance class:
fills from watch_my_trades and venue cancels from watch_orders, replayed from Binance's own
executionReport frames (fixtures/ccxt/ws/binance.json)."""

from __future__ import annotations

import asyncio
import itertools
import random
from decimal import Decimal

from connectors.ccxt_gateway import CcxtGateway
from connectors.ccxt_venue import make_exchange
from connectors.errors import Backoff, RetryPolicy
from connectors.ratelimit import LocalRateLimiter
from tests.connectors.conftest import binance_markets, case
from tests.connectors.servers.binance_spot import FakeBinanceSpot
from tests.connectors.servers.fake_exchange import Pause
from trading.events import Liquidity, OrderAccepted, OrderCancelled, OrderFilled, PlaceOrder, TimeInForce
from trading.instruments import Side


def streaming_gateway(fake) -> CcxtGateway:
    ex = make_exchange(
        "binance",
        api_key="key",
        secret="secret",
        markets=binance_markets(),
        http_base=fake.http_base,
        timeout_ms=1000,
        enable_rate_limit=False,
    )
    return CcxtGateway(
        ex,
        limiter=LocalRateLimiter(rate=1000, burst=1000),
        retry_policy=RetryPolicy(attempts=2, backoff=Backoff(base_s=0.01, rng=random.Random(2))),
        streaming=True,
        poll_interval_s=30,  # the streams, not the poll, must deliver in this test
    )


async def events_until(gw: CcxtGateway, done, timeout: float = 3.0) -> list:
    out = []

    async def run() -> None:
        async for ev in gw.events():
            out.append(ev)
            if done(ev):
                return

    await asyncio.wait_for(run(), timeout)
    return out


def script(c: dict) -> list:
    """The recorded frames with a pause after the subscription answer (our order goes in then)."""
    return [c["messages"][0], Pause(0.4), *c["messages"][1:]]


async def test_fill_from_watch_my_trades_is_emitted_with_exact_price_and_taker_liquidity(fake) -> None:
    c = case("ws", "binance", "watchMyTrades", "my trades from a filled market buy then a filled market sell")
    ours = c["messages"][1]["event"]
    venue = FakeBinanceSpot(fake).install()
    venue._ids = itertools.count(int(ours["i"]))  # the venue gives our order the recorded order id
    fake.ack_subscribe = False  # the recorded frames carry the ws-api subscription answer
    fake.ws_sessions = [script(c)]
    gw = streaming_gateway(fake)
    await gw.connect()
    try:
        # 0.0002 BTC = 20 lots; the recorded order was a market buy, ours is the limit that became it
        await gw.place("BTC/USDT", PlaceOrder(ours["c"], Side.BUY, 6_381_761, 20, TimeInForce.GTC))
        events = await events_until(gw, lambda e: isinstance(e, OrderFilled))
        await asyncio.sleep(0.1)
    finally:
        await gw.close()
    assert isinstance(events[0], OrderAccepted)
    fill = events[-1]
    assert fill.client_order_id == ours["c"] and fill.trade_id == str(ours["t"])
    assert fill.price == 6_381_761 and fill.qty == 20 and fill.leaves_qty == 0
    assert fill.liquidity is Liquidity.TAKER  # "m": false
    # the fee was paid in BNB (not valued here): the instrument's taker rate is used, 0.1 %
    assert gw.markets._instruments["BTC/USDT"].cash(fill.fee) == Decimal("0.0127635220")
    sent = fake.ws_received[0]
    assert sent["method"] == c["sentMessages"][0]["method"] and sent["params"]["apiKey"] == "key"
    # the second recorded trade belongs to an order that is not ours: not emitted
    assert sum(isinstance(e, OrderFilled) for e in events) == 1


async def test_venue_side_cancel_from_watch_orders_emits_cancelled_once(fake) -> None:
    c = case(
        "ws", "binance", "watchOrders", "BTC/USDT spot post-only limit order remains postOnly through cancellation"
    )
    recorded = c["messages"][1]["event"]
    venue = FakeBinanceSpot(fake).install()
    venue._ids = itertools.count(int(recorded["i"]))
    fake.ack_subscribe = False
    fake.ws_sessions = [script(c)]
    gw = streaming_gateway(fake)
    await gw.connect()
    try:
        await gw.place("BTC/USDT", PlaceOrder(recorded["c"], Side.BUY, 6_300_000, 20, TimeInForce.POST_ONLY))
        events = await events_until(gw, lambda e: isinstance(e, OrderCancelled))
        await asyncio.sleep(0.2)
    finally:
        await gw.close()
    assert [type(e).__name__ for e in events] == ["OrderAccepted", "OrderCancelled"]
    assert events[-1].client_order_id == "post-only-regression" and "canceled" in events[-1].reason
