"""Backpack order entry through the real ccxt Backpack class (ed25519-signed requests) against a
local fake whose replies are Backpack's own payloads (fixtures/ccxt/response/backpack.json).

Backpack's ``clientId`` is an unsigned 32-bit integer: our string client ids are mapped by
``ClientIdCodec`` (first 4 bytes of sha256), deterministically, so a retry finds the order."""

from __future__ import annotations

import asyncio
import copy
import hashlib
import itertools
import json
import random
from decimal import Decimal

from connectors.ccxt_feed import CcxtFeed
from connectors.ccxt_gateway import CcxtGateway
from connectors.ccxt_venue import ClientIdCodec, make_exchange
from connectors.errors import Backoff, RetryPolicy
from connectors.markets import TICK_SIZE, instrument_from_market
from connectors.ratelimit import LocalRateLimiter
from connectors.validation import FeedValidator
from tests.connectors.conftest import backpack_markets, case, load_fixture
from tests.connectors.servers.fake_exchange import Recorded, Reply
from trading.events import BookSnapshot, OrderAccepted, PlaceOrder, TimeInForce, TradeTick
from trading.instruments import Side


class FakeBackpack:
    def __init__(self, server) -> None:
        self.server = server
        self.orders: list[dict] = []
        self.faults: list[str] = []
        self._ids = itertools.count(8284661092)
        server.route("POST", "/api/v1/order", self._create)
        server.route("GET", "/api/v1/orders", lambda r: [o for o in self.orders if o["status"] == "New"])
        server.route("GET", "/wapi/v1/history/orders", lambda r: [])
        server.route("GET", "/api/v1/capital", case("response", "backpack", "fetchBalance")["httpResponse"])

    def _create(self, req: Recorded) -> Reply:
        fault = self.faults.pop(0) if self.faults else ""
        if fault == "503":
            return Reply(status=503, raw="busy")
        order = copy.deepcopy(case("response", "backpack", "createOrder", "create spot limit order")["httpResponse"])
        body = req.body
        order.update(
            clientId=body.get("clientId"),
            id=str(next(self._ids)),
            price=body["price"],
            quantity=body["quantity"],
            side=body["side"],
            symbol=body["symbol"],
            postOnly=bool(body.get("postOnly")),
        )
        self.orders.append(order)
        return Reply(body=order, delay_s=0.5 if fault == "timeout_after_accept" else 0.0)


def make_backpack_gateway(fake) -> CcxtGateway:
    ex = make_exchange(
        "backpack",
        api_key="test-key",
        secret=load_fixture("request/backpack.json")["secret"],
        markets=backpack_markets(),
        http_base=fake.http_base,
        timeout_ms=250,
        enable_rate_limit=False,
    )

    async def no_wait(_: float) -> None:
        return None

    return CcxtGateway(
        ex,
        limiter=LocalRateLimiter(rate=1000, burst=1000),
        retry_policy=RetryPolicy(attempts=4, backoff=Backoff(rng=random.Random(3)), sleep=no_wait),
        streaming=False,
        poll_interval_s=5,
    )


def test_backpack_client_id_is_a_deterministic_u32() -> None:
    a, b = ClientIdCodec("backpack"), ClientIdCodec("backpack")
    value = a.encode("mm7-b-42")
    assert value == b.encode("mm7-b-42")  # another process computes the same number
    assert value == int.from_bytes(hashlib.sha256(b"mm7-b-42").digest()[:4], "big")
    assert 0 <= value < 2**32 and isinstance(value, int)
    assert a.decode(value) == "mm7-b-42"
    assert a.encode("mm7-b-43") != value


async def test_backpack_order_body_matches_ccxt_request_fixture_plus_integer_client_id(fake) -> None:
    venue = FakeBackpack(fake)
    gw = make_backpack_gateway(fake)
    await gw.connect()
    try:
        # ETH/USDC tick 0.01, lot 0.0001: 400,000 ticks = 4000, 10 lots = 0.001
        await gw.place("ETH/USDC", PlaceOrder("mm7-b-42", Side.BUY, 400_000, 10, TimeInForce.GTC))
        (accepted,) = [e async for e in _take(gw, 1)]
    finally:
        await gw.close()
    expected = next(
        c
        for c in load_fixture("request/backpack.json")["methods"]["createOrder"]
        if c["description"] == "create spot limit order"
    )
    sent = fake.calls("POST", "/api/v1/order")[0].body
    assert {k: v for k, v in sent.items() if k != "clientId"} == json.loads(expected["output"])
    assert sent["clientId"] == ClientIdCodec("backpack").encode("mm7-b-42")
    assert isinstance(accepted, OrderAccepted) and accepted.client_order_id == "mm7-b-42"
    assert accepted.venue_order_id == venue.orders[0]["id"]
    headers = fake.calls("POST", "/api/v1/order")[0].headers
    assert headers["X-API-Key"] == "test-key" and headers["X-Signature"]


async def test_backpack_timeout_after_accept_is_adopted_from_open_orders_not_resent(fake) -> None:
    venue = FakeBackpack(fake)
    venue.faults = ["timeout_after_accept"]
    gw = make_backpack_gateway(fake)
    await gw.connect()
    try:
        await gw.place("ETH/USDC", PlaceOrder("mm7-b-43", Side.BUY, 400_000, 10))
        (accepted,) = [e async for e in _take(gw, 1)]
        balances = await gw.fetch_balances()
    finally:
        await gw.close()
    assert len(venue.orders) == 1 and len(fake.calls("POST", "/api/v1/order")) == 1
    assert fake.calls("GET", "/api/v1/orders")  # looked up by client id among open orders
    assert accepted.venue_order_id == venue.orders[0]["id"]
    assert balances["USDC"] == Decimal("112.847976936") and balances["ETH"] == Decimal("0.0019918")


async def _take(gw: CcxtGateway, n: int):
    it = gw.events().__aiter__()
    for _ in range(n):
        yield await asyncio.wait_for(it.__anext__(), 2)


async def test_backpack_public_feed_by_rest_polling_normalizes_recorded_trades(fake) -> None:
    trades = case("response", "backpack", "fetchTrades", "+since +limit")
    # Backpack publishes no depth payload in the recorded set: a small book in its documented
    # format (strings, lastUpdateId, microsecond timestamp) around the recorded trade prices
    depth = {
        "asks": [["1626.30", "0.5000"], ["1626.40", "1.2000"]],
        "bids": [["1626.10", "0.7000"], ["1626.00", "2.0000"]],
        "lastUpdateId": "1094211046",
        "timestamp": 1781067802000000,
    }
    fake.route("GET", "/api/v1/depth", depth)
    fake.route("GET", "/api/v1/trades", trades["httpResponse"])
    ex = make_exchange("backpack", streaming=False, markets=backpack_markets(), http_base=fake.http_base)
    inst = instrument_from_market(backpack_markets()["ETH/USDC"], precision_mode=TICK_SIZE, venue="backpack")
    feed = CcxtFeed(
        ex,
        inst,
        poll_interval_s=0.02,
        clock_ns=lambda: 1781067802500 * 1_000_000,
        validator=FeedValidator(inst, max_staleness_ns=10**12),
    )
    await feed.connect()
    got = []
    try:
        async for ev in feed.events():
            got.append(ev)
            if sum(isinstance(e, TradeTick) for e in got) == len(trades["httpResponse"]):
                break
    finally:
        await feed.close()
    book = next(e for e in got if isinstance(e, BookSnapshot))
    assert book.bids[0] == (162_610, 7_000) and book.asks[0] == (162_630, 5_000)  # tick 0.01, lot 0.0001
    assert book.sequence == 1094211046 and book.venue_ts == 1781067802000 * 1_000_000
    ticks = sorted((e for e in got if isinstance(e, TradeTick)), key=lambda e: e.trade_id)
    expected = sorted(trades["parsedResponse"], key=lambda t: t["id"])
    assert [t.trade_id for t in ticks] == [t["id"] for t in expected]
    for tick, parsed in zip(ticks, expected, strict=True):
        raw = parsed["info"]
        assert inst.price(tick.price) == Decimal(raw["price"]) and inst.quantity(tick.qty) == Decimal(raw["quantity"])
        assert tick.aggressor is (Side.SELL if raw["isBuyerMaker"] else Side.BUY)
