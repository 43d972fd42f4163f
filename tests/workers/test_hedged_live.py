"""A hosted hedged bot whose two legs are LIVE ccxt accounts (issue 19), each on its own local
fake Binance spot server (``tests/connectors/servers/binance_spot.py``: the real REST protocol
with recorded payloads): the maker on ``binance``, the hedge on ``binanceus`` (ccxt's Binance.US,
the same ``/api/v3`` protocol). ``MM_LIVE_HTTP_BASE`` turns the gateways to polling; each
account's exchange is pointed at its own server by its API key. The hedge server answers an IOC
order as a taker fill of its whole quantity (a venue whose book holds the size).

Checked: the maker quotes on its venue with the maker leg's client ids; a fill there (from the
venue's trade list, polled) makes the hedge at once on the other venue, with the hedge leg's
ids, for the same quantity on the other side; both fills are recorded once on their accounts;
the attribution row pairs them; a stop leaves nothing open on either venue."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from tests.workers.helpers import wait_until
from tests.workers.test_live_venue import BINANCE_SPOT_MARKET, FakeBinanceThread

pytestmark = [pytest.mark.django_db(transaction=True)]

SYMBOL = "BTC/USDT"
MAKER_VENUE, HEDGE_VENUE = "binance", "binanceus"


def _taker_fills_ioc(fake: FakeBinanceThread) -> None:
    """The fake venue fills an IOC order at once, wholly, as a taker."""
    spot = fake.spot
    create = spot._create

    def create_and_take(req):
        reply = create(req)
        p = req.query or req.body
        order = spot.orders.get(p.get("newClientOrderId", ""))
        if reply.status == 200 and order is not None and order["timeInForce"] == "IOC" and order["status"] == "NEW":
            spot.fill(order["clientOrderId"], order["origQty"], maker=False)
        return reply

    fake.run(fake.server.route, "POST", "/api/v3/order", create_and_take)


@pytest.fixture
def two_fakes(monkeypatch):
    from tests.connectors.conftest import binance_markets
    from workers import live_venue

    maker, hedge = FakeBinanceThread(), FakeBinanceThread()
    _taker_fills_ioc(hedge)
    monkeypatch.setenv("MM_LIVE_HTTP_BASE", maker.server.http_base)
    markets = binance_markets()
    real = live_venue.make_exchange
    bases = {"maker-key": maker.server.http_base, "hedge-key": hedge.server.http_base}

    def on_its_server(exchange_id, **kwargs):
        kwargs["http_base"] = bases[kwargs["api_key"]]
        return real(exchange_id, markets=markets, timeout_ms=3000, **kwargs)

    monkeypatch.setattr(live_venue, "make_exchange", on_its_server)
    yield maker, hedge
    maker.stop()
    hedge.stop()


@pytest.fixture
def live_host(clean_redis, two_fakes):
    from workers.host import Host

    h = Host(ttl_ms=3000, run_feeds=False)
    h.start_thread()
    assert h.started.wait(5)
    yield h
    h.stop()


def _publish_books(redis_client) -> None:
    """Both venues' books (60 000 mid, 1 BTC a side) on the feed streams, as feeds would."""
    from workers import codec, keys

    for venue in (MAKER_VENUE, HEDGE_VENUE):
        now = time.time_ns()
        blob = codec.encode_snapshot(now, [(5_999_950, 100_000)], [(6_000_050, 100_000)])
        redis_client.xadd(keys.feed_stream(venue, SYMBOL), {"e": blob, "p": now})


def _feeding(redis_client, predicate, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _publish_books(redis_client)
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    return predicate()


def _open(fake: FakeBinanceThread) -> list[dict]:
    return fake.open_orders()


def _live_hedged_bot():
    """A hedged bot whose maker and hedge legs are live accounts on the two fake servers."""
    from apps.accounts.models import User
    from apps.bots.services import bot_create
    from apps.exchanges.models import Market
    from apps.exchanges.services import exchange_account_create

    user = User.objects.create_user(username=f"livehedger{time.time_ns()}", password="pw-12345678")
    accounts, markets = {}, {}
    for leg, venue in (("maker", MAKER_VENUE), ("hedge", HEDGE_VENUE)):
        accounts[leg] = exchange_account_create(owner=user, label=f"{leg} live", kind="live", venue=venue,
                                                api_key=f"{leg}-key", api_secret=f"{leg}-secret")  # fmt: skip
        markets[leg], _ = Market.objects.update_or_create(
            venue=venue, symbol=SYMBOL, defaults={"base": "BTC", "quote": "USDT", "min_notional": "5",
                                                  **BINANCE_SPOT_MARKET}
        )  # fmt: skip
        markets[leg].refresh_from_db()
    bot = bot_create(
        owner=user,
        name="live hedged",
        exchange_account=accounts["maker"],
        market=markets["maker"],
        strategy="hedged_maker",
        params={"hedge_account": accounts["hedge"].pk, "hedge_market": markets["hedge"].pk, "order_amount": "0.01",
                "min_profitability": "0.002", "max_unhedged": "0.02", "requote_ticks": 1000,
                "stale_after_ms": 5000},
        risk={"max_position_base": "1"},
    )  # fmt: skip
    return bot


def test_live_maker_fill_is_hedged_at_once_on_the_other_live_venue(live_host, two_fakes, redis_client):
    from apps.bots.models import Bot, HedgeFillAttribution
    from apps.bots.services import bot_start
    from apps.exchanges.models import ExchangeAccount, Market
    from apps.orders.models import Fill, Order
    from workers import lifecycle, supervisor

    maker_fake, hedge_fake = two_fakes
    bot = _live_hedged_bot()
    user = bot.owner
    accounts = {"maker": bot.exchange_account, "hedge": ExchangeAccount.objects.get(pk=bot.params["hedge_account"])}
    markets = {"maker": bot.market, "hedge": Market.objects.get(pk=bot.params["hedge_market"])}
    bot_start(bot=bot, actor=user)
    supervisor.tick()
    prefix = bot.client_id_prefix
    try:
        assert _feeding(redis_client, lambda: len(_open(maker_fake)) >= 2, 30), "the bot never quoted"
        assert Bot.objects.get(pk=bot.pk).actual_state == "running"
        quotes = _open(maker_fake)
        assert all(o["clientOrderId"].startswith(prefix + "m-") for o in quotes)
        assert _open(hedge_fake) == [] and hedge_fake.run(lambda: list(hedge_fake.spot.created)) == []
        bid = next(o for o in quotes if o["side"] == "BUY")
        # 60 000 - 0.005 on the hedge bid 59 999.50: 59 879.50 (0.2 % below, down to a tick)
        assert Decimal(bid["price"]) == Decimal("59879.50")

        trade = maker_fake.run(maker_fake.spot.fill, bid["clientOrderId"], "0.004")
        hedges = Fill.objects.filter(bot=bot, client_order_id__startswith=prefix + "h-")
        assert _feeding(redis_client, hedges.exists, 15), "the maker fill was not hedged"
        created = hedge_fake.run(lambda: list(hedge_fake.spot.created))
        assert len(created) == 1, created  # one hedge, sent once
        order = created[0]
        assert order["clientOrderId"].startswith(prefix + "h-")
        assert (order["side"], order["timeInForce"], Decimal(order["origQty"])) == ("SELL", "IOC", Decimal("0.004"))
        hedge = hedges.get()
        assert (hedge.side, hedge.quantity, hedge.account_id) == ("sell", Decimal("0.004"), accounts["hedge"].pk)
        assert hedge.liquidity == "taker"
        maker = Fill.objects.get(bot=bot, venue_trade_id=trade["id"], account=accounts["maker"])
        assert (maker.side, maker.quantity, maker.client_order_id) == ("buy", Decimal("0.004"), bid["clientOrderId"])
        # the hedge order's row is on the hedge account's market
        assert Order.objects.get(client_order_id=order["clientOrderId"]).market_id == markets["hedge"].pk
        row = _feeding(redis_client, lambda: HedgeFillAttribution.objects.filter(bot=bot).first(), 10)
        assert row is not None and row.maker_trade_id == trade["id"]
        assert row.hedged_quantity == Decimal("0.004") and row.open_quantity == 0
        assert row.hedge_vwap == Decimal(order["price"]) and row.hedge_latency_ms is not None
        time.sleep(1.0)  # more polls return the same trades: still one row each, no second hedge
        assert Fill.objects.filter(bot=bot).count() == 2
        assert len(hedge_fake.run(lambda: list(hedge_fake.spot.created))) == 1
    finally:
        Bot.objects.filter(pk=bot.pk).update(desired_state="stopped")
        lifecycle.apply(bot.pk)
        assert wait_until(lambda: Bot.objects.get(pk=bot.pk).actual_state == "stopped", 30), Bot.objects.get(
            pk=bot.pk
        ).actual_state
    assert _open(maker_fake) == [] and _open(hedge_fake) == []
    assert not Order.objects.filter(bot=bot, status__in=["pending_new", "open", "partially_filled"]).exists()


def test_stopping_a_live_hedged_bot_without_an_owner_cancels_both_legs_on_their_exchanges(
    clean_redis, two_fakes, redis_client
):
    """Its host stopped (leases released, the maker's quotes left resting on the exchange, and
    an order of the hedge leg too, as a dead owner's limit hedge would be): the stop with no owner
    cancels each live leg's orders on its own exchange, found by the leg's client-id family."""
    from apps.bots.models import Bot
    from apps.bots.services import bot_start
    from apps.orders.models import Order
    from workers import lifecycle, supervisor
    from workers.host import Host

    maker_fake, hedge_fake = two_fakes
    bot = _live_hedged_bot()
    bot_start(bot=bot, actor=bot.owner)
    prefix = bot.client_id_prefix
    h = Host(ttl_ms=3000, run_feeds=False)
    h.start_thread()
    assert h.started.wait(5)
    try:
        supervisor.tick()
        assert _feeding(redis_client, lambda: len(_open(maker_fake)) >= 2, 30), "the bot never quoted"
    finally:
        h.stop()
    resting = _open(maker_fake)
    assert resting and all(o["clientOrderId"].startswith(prefix + "m-") for o in resting)
    left = dict(resting[0], clientOrderId=f"{prefix}h-9", orderId="987654321")
    hedge_fake.run(lambda: hedge_fake.spot.orders.__setitem__(left["clientOrderId"], left))
    assert [o["clientOrderId"] for o in _open(hedge_fake)] == [f"{prefix}h-9"]
    Bot.objects.filter(pk=bot.pk).update(desired_state="stopped")
    assert lifecycle.apply(bot.pk) == "stop (unowned)"
    assert _open(maker_fake) == [] and _open(hedge_fake) == []
    assert Bot.objects.get(pk=bot.pk).actual_state == "stopped"
    assert not Order.objects.filter(bot=bot, status__in=["pending_new", "open", "partially_filled"]).exists()
