"""Bots on a LIVE Binance account, run by a host in this process against a local fake Binance
spot server that speaks the real REST protocol with recorded payloads
(``tests/connectors/servers/binance_spot.py``). ``MM_LIVE_HTTP_BASE`` points the ccxt exchange at
it; markets come from the recorded ccxt file (the fake has no exchangeInfo)."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from tests.workers.helpers import wait_until

pytestmark = [pytest.mark.django_db(transaction=True)]

SYMBOL = "BTC/USDT"
MID_TICKS = 6_000_000  # 60 000.00 USDT with a 0.01 tick


class FakeBinanceThread:
    """The fake Binance server on its own event loop and thread (the host has another loop)."""

    def __init__(self) -> None:
        from tests.connectors.servers.binance_spot import FakeBinanceSpot
        from tests.connectors.servers.fake_exchange import FakeExchange

        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fake-binance", daemon=True)
        self.thread.start()
        self.server = self.call(FakeExchange().start())
        self.spot = FakeBinanceSpot(self.server).install()

    def call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def run(self, fn, *args, **kwargs):
        """Run ``fn`` on the server's loop (its state is only touched there)."""

        async def wrapped():
            return fn(*args, **kwargs)

        return self.call(wrapped())

    def open_orders(self) -> list[dict]:
        return self.run(lambda: [o for o in self.spot.orders.values() if o["status"] in ("NEW", "PARTIALLY_FILLED")])

    def stop(self) -> None:
        self.call(self.server.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture
def fake_binance(monkeypatch):
    from tests.connectors.conftest import binance_markets
    from workers import live_venue

    fake = FakeBinanceThread()
    monkeypatch.setenv("MM_LIVE_HTTP_BASE", fake.server.http_base)
    markets = binance_markets()
    real = live_venue.make_exchange

    def with_recorded_markets(exchange_id, **kwargs):
        return real(exchange_id, markets=markets, timeout_ms=3000, **kwargs)

    monkeypatch.setattr(live_venue, "make_exchange", with_recorded_markets)
    yield fake
    fake.stop()


@pytest.fixture
def host(clean_redis, fake_binance):
    from workers.host import Host

    h = Host(ttl_ms=3000, run_feeds=False)
    h.start_thread()
    assert h.started.wait(5)
    yield h
    h.stop()


BINANCE_SPOT_MARKET = {"tick_size": "0.01", "lot_size": "0.00001", "maker_fee": "0.001", "taker_fee": "0.001"}


def make_live_bot(
    spread: str = "0.001",
    *,
    venue: str = "binance",
    symbol: str = SYMBOL,
    market: dict = BINANCE_SPOT_MARKET,
    balances: dict | None = None,
):
    """A user, a live account on ``venue`` (encrypted keys) and one fixed-spread bot, started;
    ``balances`` (``{asset: total}``) stored as if the account had been verified (a perpetual bot
    needs them: apps.bots.guards)."""
    from apps.accounts.models import User
    from apps.bots.services import bot_create, bot_start
    from apps.exchanges.models import Market
    from apps.exchanges.services import exchange_account_create

    user = User.objects.create_user(username=f"live{time.time_ns()}", password="pw-12345678")
    account = exchange_account_create(
        owner=user, label=f"{venue} live", kind="live", venue=venue, api_key="test-key", api_secret="test-secret"
    )
    if balances:
        from apps.exchanges.services import account_balances_store

        account_balances_store(account=account, balances={a: {"free": t, "total": t} for a, t in balances.items()})
    market, _ = Market.objects.update_or_create(
        venue=venue, symbol=symbol, defaults={"base": "BTC", "quote": "USDT", "min_notional": "5", **market}
    )
    market.refresh_from_db()  # decimals, not the strings given
    bot = bot_create(
        owner=user,
        name=f"live bot {time.time_ns()}",
        exchange_account=account,
        market=market,
        strategy="fixed_spread",
        params={
            "order_amount": "0.01",
            "bid_spread": spread,
            "ask_spread": spread,
            "order_levels": 1,
            "refresh_time": "1",
        },
        risk={"max_position_base": "5"},
    )
    bot_start(bot=bot, actor=user)
    return user, account, bot


def publish_book(redis_client, mid: int = MID_TICKS) -> None:
    """A top-of-book snapshot on the feed stream the bot loop reads (what a feed would publish)."""
    from workers import codec, keys

    now = time.time_ns()
    blob = codec.encode_snapshot(now, [(mid - 50, 100_000)], [(mid + 50, 100_000)])
    redis_client.xadd(keys.feed_stream("binance", SYMBOL), {"e": blob, "p": now})


def feed_until(redis_client, predicate, timeout: float, mid: int = MID_TICKS):
    """Publish the book every 0.3 s until ``predicate()`` holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        publish_book(redis_client, mid)
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    return predicate()


def bot_state(bot) -> str:
    from apps.bots.models import Bot

    return Bot.objects.get(pk=bot.pk).actual_state


def test_live_bot_quotes_with_our_client_ids_records_a_fill_once_and_stop_leaves_nothing_open(
    host, fake_binance, redis_client
):
    from apps.orders.models import Fill, Order
    from workers import lifecycle, supervisor

    _user, _account, bot = make_live_bot()
    supervisor.tick()
    assert feed_until(redis_client, lambda: len(fake_binance.open_orders()) >= 2, 20), "the bot never quoted"
    prefix = f"{bot.client_id_prefix or f'mm{bot.pk}'}-"
    orders = fake_binance.open_orders()
    assert all(o["clientOrderId"].startswith(prefix) for o in orders)
    created = fake_binance.run(lambda: [o["clientOrderId"] for o in fake_binance.spot.created])
    assert len(created) == len(set(created)), "a client id was sent twice"
    assert set(created) <= set(Order.objects.filter(bot=bot).values_list("client_order_id", flat=True))
    assert wait_until(lambda: Order.objects.filter(bot=bot, status="open").count() >= 2, 10)

    buy = next(o for o in orders if o["side"] == "BUY")
    trade = fake_binance.run(fake_binance.spot.fill, buy["clientOrderId"], "0.004")
    assert wait_until(lambda: Fill.objects.filter(bot=bot, venue_trade_id=trade["id"]).exists(), 10), (
        "fill not recorded"
    )
    fill = Fill.objects.get(bot=bot, venue_trade_id=trade["id"])
    assert (fill.client_order_id, fill.side, str(fill.quantity.normalize())) == (buy["clientOrderId"], "buy", "0.004")
    time.sleep(1.0)  # several more polls return the same trade: still one row
    assert Fill.objects.filter(bot=bot, venue_trade_id=trade["id"]).count() == 1

    from apps.bots.models import Bot

    Bot.objects.filter(pk=bot.pk).update(desired_state="stopped")
    lifecycle.apply(bot.pk)
    assert wait_until(lambda: bot_state(bot) == "stopped", 20), bot_state(bot)
    assert fake_binance.open_orders() == []
    assert not Order.objects.filter(bot=bot, status__in=["pending_new", "open", "partially_filled"]).exists()
    assert Fill.objects.filter(bot=bot).count() == 1


def test_refused_api_key_puts_the_bot_in_error_with_the_exchange_message(host, fake_binance, redis_client):
    from apps.bots.models import Bot, BotEvent
    from tests.connectors.servers.fake_exchange import Reply

    # A wrong key: Binance answers every signed request with 401 / -2015 (the first one the bot
    # makes is the take-over's open-orders read). Only before any successful signed call does
    # ccxt take -2015 as a refused key; later it reads it as a temporary ban (DDoSProtection).
    refused = Reply(status=401, body={"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."})
    for method, path in (("GET", "/api/v3/openOrders"), ("GET", "/api/v3/myTrades"), ("POST", "/api/v3/order")):
        fake_binance.run(fake_binance.server.route, method, path, refused)
    _user, _account, bot = make_live_bot()
    from workers import supervisor

    supervisor.tick()
    assert feed_until(redis_client, lambda: bot_state(bot) == "error", 20), list(
        BotEvent.objects.filter(bot=bot).values_list("code", "message")
    )
    reason = Bot.objects.get(pk=bot.pk).state_reason
    assert "refused the API key" in reason and "Invalid API-key" in reason, reason
    assert "test-secret" not in reason
    assert BotEvent.objects.filter(bot=bot, code="auth_failed").exists()
    assert fake_binance.open_orders() == []  # nothing was accepted


def test_lost_lease_stops_sending_at_once(host, fake_binance, redis_client):
    from apps.bots.models import BotEvent
    from workers import keys, supervisor

    _user, _account, bot = make_live_bot()
    supervisor.tick()
    assert feed_until(redis_client, lambda: len(fake_binance.open_orders()) >= 2, 20), "the bot never quoted"
    redis_client.set(keys.bot_lease(bot.pk), b"another-host", px=60_000)  # someone else owns it now
    sent_before = fake_binance.run(lambda: len(fake_binance.spot.created))
    cancelled_before = fake_binance.run(
        lambda: sum(o["status"] == "CANCELED" for o in fake_binance.spot.orders.values())
    )
    # A moved market makes the strategy requote: the cancel/place must not reach the exchange.
    feed_until(redis_client, lambda: BotEvent.objects.filter(bot=bot, code="lease_lost").exists(), 10, MID_TICKS + 5000)
    assert BotEvent.objects.filter(bot=bot, code="lease_lost").exists()
    time.sleep(0.5)
    assert fake_binance.run(lambda: len(fake_binance.spot.created)) == sent_before
    cancelled = fake_binance.run(lambda: sum(o["status"] == "CANCELED" for o in fake_binance.spot.orders.values()))
    assert cancelled == cancelled_before


async def test_take_over_attributes_a_trade_of_an_order_this_process_never_tracked_to_our_client_id():
    """An order that filled while no one owned the bot: Binance's trade rows carry only the
    venue order id; the new owner's venue looks the order up once and finds our client id."""
    from connectors.ccxt_venue import make_exchange
    from tests.connectors.conftest import binance_markets
    from tests.connectors.servers.binance_spot import FakeBinanceSpot
    from tests.connectors.servers.fake_exchange import FakeExchange, Reply
    from trading.events import PlaceOrder, TimeInForce
    from trading.instruments import Side
    from workers.live_venue import LiveVenue, build_gateway

    server = await FakeExchange().start()
    spot = FakeBinanceSpot(server).install()

    def fetch_by_any_id(req):  # the real API also answers GET /api/v3/order?orderId=...
        q = req.query
        order = next((o for o in spot.orders.values() if o["orderId"] == q.get("orderId")), None)
        order = order or spot.orders.get(q.get("origClientOrderId", ""))
        if order is None:
            return Reply(status=400, body={"code": -2013, "msg": "Order does not exist."})
        return Reply(body=spot._as_query_order(order))

    server.route("GET", "/api/v3/order", fetch_by_any_id)
    markets = binance_markets()

    def exchange(exchange_id, **kwargs):
        kwargs.update(http_base=server.http_base, streaming=False)
        return make_exchange(exchange_id, markets=markets, **kwargs)

    creds = ("test-key", "test-secret", "")
    first = build_gateway("binance", creds, account_id=1, exchange_factory=exchange)
    second = build_gateway("binance", creds, account_id=1, exchange_factory=exchange)
    try:
        inst = await first.instrument(SYMBOL)
        await first.place(SYMBOL, PlaceOrder("mm7-0", Side.SELL, 6_001_000, 1000, TimeInForce.GTC))
        await first.place(SYMBOL, PlaceOrder("other-0", Side.BUY, 5_999_000, 1000, TimeInForce.GTC))
        ours = spot.fill("mm7-0", "0.01")
        spot.fill("other-0", "0.01")  # another bot's order on the same account: not ours
        venue = LiveVenue(
            None,
            second,
            instrument=inst,
            bot_id=7,
            prefix="mm7",
            lease_key="",
            lease_value="",
            token=1,
            deliver=lambda event: None,
        )
        (fill,) = await venue.fetch_my_trades(0)
        assert (fill.trade_id, fill.client_order_id, fill.side, fill.price, fill.qty) == (
            ours["id"],
            "mm7-0",
            Side.SELL,
            6_001_000,
            1000,
        )
        assert fill.fee == inst.cash_units(inst.price(6_001_000) * inst.quantity(1000) / 1000)  # 0.1 % in USDT
        lookups = len(server.calls("GET", "/api/v3/order"))
        await venue.fetch_my_trades(0)
        assert len(server.calls("GET", "/api/v3/order")) == lookups, "an order is looked up once"
    finally:
        await first.close()
        await second.close()
        await server.stop()


def _order_of(spot, req):
    """The fake's order a cancel/lookup request names (by client id or by exchange id)."""
    q = req.query
    if "origClientOrderId" in q:
        return spot.orders.get(q["origClientOrderId"])
    return next((o for o in spot.orders.values() if o["orderId"] == q.get("orderId")), None)


def test_an_order_that_fills_while_the_stop_cancels_it_is_recorded_filled_with_its_fill(
    host, fake_binance, redis_client
):
    from apps.bots.models import Bot
    from apps.orders.models import Fill, Order
    from workers import lifecycle, supervisor

    _user, _account, bot = make_live_bot()
    supervisor.tick()
    assert feed_until(redis_client, lambda: len(fake_binance.open_orders()) >= 2, 20), "the bot never quoted"
    spot = fake_binance.spot
    filled: list[tuple[str, str]] = []

    def fill_then_cancel(req):  # the exchange matched the bid just before our cancel reached it
        order = _order_of(spot, req)
        if order is not None and order["side"] == "BUY" and order["status"] == "NEW" and not filled:
            trade = spot.fill(order["clientOrderId"], order["origQty"])
            filled.append((order["clientOrderId"], trade["id"]))
        return spot._cancel(req)

    fake_binance.run(fake_binance.server.route, "DELETE", "/api/v3/order", fill_then_cancel)
    Bot.objects.filter(pk=bot.pk).update(desired_state="stopped")
    lifecycle.apply(bot.pk)
    assert wait_until(lambda: bot_state(bot) == "stopped", 25), bot_state(bot)
    assert filled, "the stop sent no cancel for the bid"
    cid, trade_id = filled[0]
    assert Fill.objects.filter(bot=bot, venue_trade_id=trade_id).count() == 1, "the fill made while cancelling was lost"
    order = Order.objects.get(client_order_id=cid)
    assert order.status == "filled", (order.status, order.reason)
    assert order.filled_quantity == order.quantity
    others = Order.objects.filter(bot=bot).exclude(client_order_id=cid)
    assert others.exists() and set(others.values_list("status", flat=True)) == {"cancelled"}
    assert fake_binance.open_orders() == []


def test_kill_with_flatten_records_the_fill_of_its_taker_order(host, fake_binance, redis_client):
    from apps.bots.models import Bot
    from apps.orders.models import Fill, Order
    from workers import lifecycle, supervisor

    _user, _account, bot = make_live_bot()
    supervisor.tick()
    assert feed_until(redis_client, lambda: len(fake_binance.open_orders()) >= 2, 20), "the bot never quoted"
    buy = next(o for o in fake_binance.open_orders() if o["side"] == "BUY")
    trade = fake_binance.run(fake_binance.spot.fill, buy["clientOrderId"], "0.004")
    assert wait_until(lambda: Fill.objects.filter(bot=bot, venue_trade_id=trade["id"]).exists(), 10)
    time.sleep(0.5)  # the engine has the position too (same event)
    spot = fake_binance.spot
    create = spot._create

    def ioc_fills_at_once(req):  # an IOC through the touch takes liquidity immediately
        reply = create(req)
        p = req.query or req.body
        if p.get("timeInForce") == "IOC" and p["newClientOrderId"] in spot.orders:
            spot.fill(p["newClientOrderId"], p["quantity"], maker=False)
        return reply

    fake_binance.run(fake_binance.server.route, "POST", "/api/v3/order", ioc_fills_at_once)
    Bot.objects.filter(pk=bot.pk).update(desired_state="stopped")
    lifecycle.apply(bot.pk, kill=True, flatten=True)
    assert wait_until(lambda: bot_state(bot) == "stopped", 25), bot_state(bot)
    flatten = Order.objects.filter(bot=bot, side="sell", time_in_force__iexact="ioc")
    assert flatten.count() == 1, list(Order.objects.filter(bot=bot).values("side", "status", "reason"))
    order = flatten.get()
    fills = Fill.objects.filter(bot=bot, client_order_id=order.client_order_id)
    assert fills.count() == 1, "the flatten order's fill was not recorded"
    fill = fills.get()
    assert (fill.side, str(fill.quantity.normalize()), fill.liquidity) == ("sell", "0.004", "taker")
    assert order.status == "filled", (order.status, order.reason)


def test_a_refused_key_is_masked_in_the_reason_the_event_and_the_log(host, fake_binance, redis_client, caplog):
    from apps.bots.models import Bot, BotEvent
    from tests.connectors.servers.fake_exchange import Reply
    from workers import supervisor

    # An exchange that echoes the key it refused (some do): the key must not reach our records.
    refused = Reply(status=401, body={"code": -2015, "msg": "Invalid API-key test-key, IP, or permissions."})
    for method, path in (("GET", "/api/v3/openOrders"), ("GET", "/api/v3/myTrades"), ("POST", "/api/v3/order")):
        fake_binance.run(fake_binance.server.route, method, path, refused)
    _user, _account, bot = make_live_bot()
    supervisor.tick()
    assert feed_until(redis_client, lambda: bot_state(bot) == "error", 20)
    reason = Bot.objects.get(pk=bot.pk).state_reason
    assert "refused the API key" in reason and "Invalid API-key" in reason, reason
    assert "test-key" not in reason and "test-secret" not in reason, reason
    messages = list(BotEvent.objects.filter(bot=bot, code="auth_failed").values_list("message", flat=True))
    assert messages and not any("test-key" in m for m in messages), messages
    assert not any("test-key" in r.getMessage() for r in caplog.records if r.name.startswith("workers"))


def test_a_live_stop_the_exchange_did_not_confirm_is_retried_by_the_supervisor(
    host, fake_binance, redis_client, monkeypatch
):
    from apps.bots.models import Bot
    from apps.orders.models import Order
    from tests.connectors.servers.fake_exchange import Reply
    from workers import bot_control, lifecycle, records, supervisor

    monkeypatch.setattr(bot_control, "STOP_CONFIRM_TIMEOUT_S", 1.0)
    _user, _account, bot = make_live_bot()
    supervisor.tick()
    assert feed_until(redis_client, lambda: len(fake_binance.open_orders()) >= 2, 20), "the bot never quoted"
    busy = Reply(status=503, raw="<html>busy</html>")
    fake_binance.run(fake_binance.server.route, "DELETE", "/api/v3/order", busy)  # cancels fail for now
    Bot.objects.filter(pk=bot.pk).update(desired_state="stopped")
    lifecycle.apply(bot.pk)
    assert wait_until(lambda: bot_state(bot) == "error", 30), bot_state(bot)
    assert Bot.objects.get(pk=bot.pk).state_reason.startswith(records.STOP_UNCONFIRMED)
    assert len(fake_binance.open_orders()) >= 2
    supervisor.tick()  # still refused: stays in error, nothing lost
    assert bot_state(bot) == "error"
    fake_binance.run(fake_binance.server.route, "DELETE", "/api/v3/order", fake_binance.spot._cancel)
    supervisor.tick()  # the exchange answers again: the retry cancels and closes the rows
    assert bot_state(bot) == "stopped", Bot.objects.get(pk=bot.pk).state_reason
    assert fake_binance.open_orders() == []
    assert not Order.objects.filter(bot=bot, status__in=["pending_new", "open", "partially_filled"]).exists()
    assert Order.objects.filter(bot=bot, status="cancelled").count() >= 2
