"""CcxtGateway driven through the real ccxt Binance class against a local fake Binance spot
REST API whose replies are Binance's own payloads (fixtures/ccxt/response/binance.json)."""

from __future__ import annotations

import asyncio
import random
from decimal import Decimal

import pytest

from connectors.ccxt_gateway import CcxtGateway
from connectors.ccxt_venue import make_exchange
from connectors.errors import AuthFailure, Backoff, RetryPolicy
from connectors.markets import TICK_SIZE, instrument_from_market
from connectors.ratelimit import LocalRateLimiter
from tests.connectors.conftest import binance_markets, case
from tests.connectors.servers.binance_spot import FakeBinanceSpot
from trading.events import (
    CancelOrder,
    Liquidity,
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    PlaceOrder,
    TimeInForce,
)
from trading.instruments import Side
from trading.ports import OrderGateway, OrderStatus

SYMBOL = "BTC/USDT"


def make_gateway(fake, *, attempts: int = 4, timeout_ms: int = 300) -> CcxtGateway:
    ex = make_exchange(
        "binance",
        api_key="test-key",
        secret="test-secret",
        markets=binance_markets(),
        http_base=fake.http_base,
        timeout_ms=timeout_ms,
        enable_rate_limit=False,
    )
    sleeps: list[float] = []

    async def no_wait(s: float) -> None:
        sleeps.append(s)

    policy = RetryPolicy(attempts=attempts, backoff=Backoff(base_s=0.01, rng=random.Random(1)), sleep=no_wait)
    gw = CcxtGateway(
        ex,
        limiter=LocalRateLimiter(rate=1000, burst=1000),
        retry_policy=policy,
        streaming=False,
        poll_interval_s=0.05,
        clock_ns=lambda: 1_700_000_000_000_000_000,
    )
    gw.test_sleeps = sleeps  # type: ignore[attr-defined]
    return gw


def quote(cid: str = "mm1-b-1", side: Side = Side.BUY, price: int = 6_400_000, qty: int = 1000) -> PlaceOrder:
    return PlaceOrder(cid, side, price, qty, TimeInForce.POST_ONLY)


async def drain(gw: CcxtGateway, n: int, timeout: float = 2.0) -> list:
    out = []

    async def run() -> None:
        async for ev in gw.events():
            out.append(ev)
            if len(out) >= n:
                return

    await asyncio.wait_for(run(), timeout)
    return out


@pytest.fixture
async def venue(fake):
    return FakeBinanceSpot(fake).install()


async def test_place_sends_client_id_exact_price_and_size_and_emits_accepted(fake, venue) -> None:
    gw = make_gateway(fake)
    assert isinstance(gw, OrderGateway)
    await gw.connect()
    try:
        await gw.place(SYMBOL, quote())
        (accepted,) = await drain(gw, 1)
    finally:
        await gw.close()
    (req,) = fake.calls("POST", "/api/v3/order")
    sent = req.query or req.body
    assert sent["newClientOrderId"] == "mm1-b-1"
    assert sent["price"] == "64000" and sent["quantity"] == "0.01"  # 6,400,000 ticks; 1000 lots
    assert sent["type"] == "LIMIT_MAKER"  # post-only on Binance spot
    assert isinstance(accepted, OrderAccepted)
    assert accepted.client_order_id == "mm1-b-1" and accepted.venue_order_id == venue.created[0]["orderId"]


@pytest.mark.parametrize("fault", ["timeout_after_accept", "timeout_before_accept", "503", "429", "418"])
async def test_retry_after_a_temporary_failure_never_places_a_duplicate(fake, venue, fault) -> None:
    venue.faults = [fault]
    gw = make_gateway(fake)
    await gw.connect()
    try:
        await gw.place(SYMBOL, quote())
        (accepted,) = await drain(gw, 1)
    finally:
        await gw.close()
    assert isinstance(accepted, OrderAccepted)
    assert [o["clientOrderId"] for o in venue.created] == ["mm1-b-1"]  # exactly one order at the venue
    # the retry looked the order up by client id before sending anything again
    lookups = fake.calls("GET", "/api/v3/order")
    assert lookups and lookups[0].query["origClientOrderId"] == "mm1-b-1"
    posts = fake.calls("POST", "/api/v3/order")
    assert len(posts) == (1 if fault == "timeout_after_accept" else 2)
    assert accepted.venue_order_id == venue.created[0]["orderId"]


async def test_persistent_outage_spends_the_budget_and_reports_unknown_state(fake, venue) -> None:
    venue.faults = ["503"] * 10
    gw = make_gateway(fake, attempts=3)
    await gw.connect()
    try:
        await gw.place(SYMBOL, quote())
        (rejected,) = await drain(gw, 1)
    finally:
        await gw.close()
    assert isinstance(rejected, OrderRejected) and rejected.code == "unknown_state"
    assert "unknown" in rejected.reason
    assert len(fake.calls("POST", "/api/v3/order")) == 3
    assert venue.created == []


async def test_insufficient_funds_becomes_rejected_with_the_exchange_reason_and_no_retry(fake, venue) -> None:
    venue.faults = ["insufficient"]
    gw = make_gateway(fake)
    await gw.connect()
    try:
        await gw.place(SYMBOL, quote())
        (rejected,) = await drain(gw, 1)
    finally:
        await gw.close()
    assert isinstance(rejected, OrderRejected)
    assert "insufficient balance" in rejected.reason and rejected.code == "InsufficientFunds"
    assert len(fake.calls("POST", "/api/v3/order")) == 1


async def test_authentication_failure_raises_auth_failure_with_a_clear_message(fake, venue) -> None:
    venue.faults = ["auth"]
    gw = make_gateway(fake)
    await gw.connect()
    try:
        with pytest.raises(AuthFailure) as info:
            await gw.place(SYMBOL, quote())
    finally:
        await gw.close()
    message = str(info.value)
    assert "binance" in message and "Invalid API-key" in message and "restart the bot" in message
    assert len(fake.calls("POST", "/api/v3/order")) == 1


async def test_fills_from_polling_carry_exact_price_size_fee_and_leaves(fake, venue) -> None:
    gw = make_gateway(fake)
    await gw.connect()
    try:
        await gw.place(SYMBOL, quote(qty=2000))
        venue.fill("mm1-b-1", "0.00500000")
        venue.fill("mm1-b-1", "0.01500000")
        events = await drain(gw, 3)
        await asyncio.sleep(0.15)  # more polls: fills must not repeat
    finally:
        await gw.close()
    accepted, fill1, fill2 = events
    assert isinstance(accepted, OrderAccepted)
    assert isinstance(fill1, OrderFilled) and isinstance(fill2, OrderFilled)
    assert (fill1.qty, fill1.leaves_qty, fill2.qty, fill2.leaves_qty) == (500, 1500, 1500, 0)
    assert fill1.price == 6_400_000 and fill1.side is Side.BUY
    assert fill1.liquidity is Liquidity.MAKER
    # fee 0.1 % of 64000 * 0.005 = 0.32 USDT, exactly, in cash units
    btc = instrument_from_market(binance_markets()[SYMBOL], precision_mode=TICK_SIZE)
    assert btc.cash(fill1.fee) == Decimal("0.32")
    assert fill1.trade_id == venue.trades[0]["id"]


async def test_cancel_by_venue_id_emits_cancelled_and_cancel_all_uses_prefix(fake, venue) -> None:
    gw = make_gateway(fake)
    await gw.connect()
    try:
        await gw.place(SYMBOL, quote("mm1-b-1"))
        await gw.place(SYMBOL, quote("mm1-s-2", Side.SELL, 6_410_000))
        await gw.place(SYMBOL, quote("other-b-3", price=6_300_000))
        await gw.cancel(SYMBOL, CancelOrder("mm1-b-1"))
        count = await gw.cancel_all(SYMBOL, "mm1-")
        events = await drain(gw, 5)
    finally:
        await gw.close()
    cancelled = [e.client_order_id for e in events if isinstance(e, OrderCancelled)]
    assert cancelled == ["mm1-b-1", "mm1-s-2"]
    assert count == 1
    assert venue.orders["other-b-3"]["status"] == "NEW"


async def test_fetch_order_open_orders_and_balances_read_real_payloads(fake, venue) -> None:
    gw = make_gateway(fake)
    await gw.connect()
    try:
        await gw.place(SYMBOL, quote())
        report = await gw.fetch_order(SYMBOL, "mm1-b-1")
        missing = await gw.fetch_order(SYMBOL, "never-sent")
        open_orders = await gw.fetch_open_orders(SYMBOL)
        balances = await gw.fetch_balances()
    finally:
        await gw.close()
    assert report is not None and report.status is OrderStatus.OPEN
    assert (report.price, report.qty, report.filled_qty) == (6_400_000, 1000, 0)
    assert missing is None
    assert [o.client_order_id for o in open_orders] == ["mm1-b-1"]
    raw = case("response", "binance", "fetchBalance", "Spot balance")["httpResponse"]["balances"]
    expected = {b["asset"]: Decimal(b["free"]) + Decimal(b["locked"]) for b in raw if Decimal(b["free"]) > 0}
    assert balances == expected


async def test_order_in_unknown_state_is_adopted_by_the_next_poll_and_its_fills_are_not_lost(fake, venue) -> None:
    venue.faults = ["timeout_after_accept", "503", "503"]  # placed, but no answer ...
    venue.lookup_faults = ["503", "503"]  # ... and the lookups fail too, until the budget is spent
    gw = make_gateway(fake, attempts=3)
    await gw.connect()
    try:
        await gw.place(SYMBOL, quote(qty=1000))
        (unknown,) = await drain(gw, 1)
        assert isinstance(unknown, OrderRejected) and unknown.code == "unknown_state"
        assert len(venue.created) == 1  # it did reach the venue, once
        venue.fill("mm1-b-1", "0.01000000")
        late = await drain(gw, 2)
    finally:
        await gw.close()
    assert isinstance(late[0], OrderAccepted) and late[0].venue_order_id == venue.created[0]["orderId"]
    assert isinstance(late[1], OrderFilled) and (late[1].qty, late[1].leaves_qty) == (1000, 0)
    assert len(venue.created) == 1


async def test_cancel_of_an_order_the_venue_no_longer_has_reports_cancelled_once(fake, venue) -> None:
    gw = make_gateway(fake)
    await gw.connect()
    try:
        await gw.place(SYMBOL, quote())
        venue.orders["mm1-b-1"]["status"] = "CANCELED"  # expired at the venue meanwhile
        await gw.cancel(SYMBOL, CancelOrder("mm1-b-1"))
        await gw.cancel(SYMBOL, CancelOrder("mm1-b-1"))
        events = await drain(gw, 2)
        await asyncio.sleep(0.1)
    finally:
        await gw.close()
    assert [type(e).__name__ for e in events] == ["OrderAccepted", "OrderCancelled"]
    assert sum(isinstance(e, OrderCancelled) for e in drain_now(gw)) == 0


async def test_invalid_client_id_or_unknown_symbol_is_rejected_without_a_request(fake, venue) -> None:
    gw = make_gateway(fake)
    await gw.connect()
    try:
        await gw.place(SYMBOL, quote("has spaces and is far too long for binance ids!!"))
        await gw.place("NOPE/USDT", quote("mm1-b-9"))
        bad_id, bad_symbol = await drain(gw, 2)
    finally:
        await gw.close()
    assert isinstance(bad_id, OrderRejected) and "1-36 characters" in bad_id.reason
    assert isinstance(bad_symbol, OrderRejected) and "NOPE/USDT" in bad_symbol.reason
    assert fake.calls("POST", "/api/v3/order") == []


def drain_now(gw: CcxtGateway) -> list:
    q = gw._queue._queue
    out = []
    while not q.empty():
        out.append(q.get_nowait())  # includes the end-of-stream marker, which is no event
    return out


async def test_every_rest_call_takes_from_the_account_rate_limiter_first(fake, venue) -> None:
    class CountingLimiter:
        def __init__(self) -> None:
            self.acquired = 0

        async def acquire(self, cost: float = 1) -> None:
            self.acquired += cost

    venue.faults = ["429"]
    gw = make_gateway(fake)
    gw.limiter = CountingLimiter()
    await gw.connect()
    try:
        await gw.place(SYMBOL, quote())
        await gw.fetch_open_orders(SYMBOL)
        await gw.fetch_balances()
    finally:
        await gw.close()
    # load markets, the refused create, the lookup, the create, open orders, balance
    assert gw.limiter.acquired == len(fake.requests) + 1 == 6
