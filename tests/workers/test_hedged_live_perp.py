"""A hosted hedged bot whose hedge leg is a LIVE USD-M perpetual (issue 19): a live spot maker on
a fake Binance spot server (``tests/connectors/servers/binance_spot.py``) hedged on
``binanceusdm`` ``BTC/USDT:USDT`` on another fake server (``binance_usdm.py``: the real
``/fapi`` paths and recorded payloads), both through the real ccxt classes, each account pointed
at its own server by its API key. The USD-M fake answers an IOC order as a taker fill of its whole
quantity.

Checked: at start the hedge leg's leverage and margin mode are set on the exchange (before any
order), a maker fill of 0.004 BTC is hedged once with an IOC sell of 0.004 contracts on the
perpetual, both fills recorded once on their accounts, the exchange's position (-0.004) is
read back into the leg's status, and a funding payment the exchange makes is booked once on the
hedge leg (event naming the leg, stored payment, the leg's funding figure); a margin-mode switch the exchange cannot take (an open position)
puts the bot in error with nothing applied and nothing sent; a live perpetual leg whose market row carries no
contract is refused at ``hedge_market``."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from tests.workers.helpers import wait_until
from tests.workers.test_hedged_live import _open
from tests.workers.test_live_venue import BINANCE_SPOT_MARKET, FakeBinanceThread

pytestmark = [pytest.mark.django_db(transaction=True)]

SPOT, PERP = "BTC/USDT", "BTC/USDT:USDT"
RAW = "BTCUSDT"
MAKER_VENUE, HEDGE_VENUE = "binance", "binanceusdm"
USDM_MARKET = {"tick_size": "0.1", "lot_size": "0.001", "maker_fee": "0.0002", "taker_fee": "0.0005"}
USDM_CONTRACT = {"kind": "linear", "contract_size": "1", "settle": "USDT", "max_leverage": 125}


def _usdm_takes_ioc(fake: FakeBinanceThread, usdm) -> None:
    """The USD-M fake fills an IOC order at once, wholly, as a taker (the position moves)."""
    create = usdm._create_perp

    def create_and_take(req):
        reply = create(req)
        p = {**req.query, **req.body}
        order = usdm.orders.get(p.get("newClientOrderId", ""))
        if reply.status == 200 and order is not None and order["timeInForce"] == "IOC" and order["status"] == "NEW":
            usdm.fill(order["clientOrderId"], order["origQty"], maker=False)
        return reply

    fake.run(fake.server.route, "POST", "/fapi/v1/order", create_and_take)


@pytest.fixture
def spot_and_usdm(monkeypatch, settings):
    from tests.connectors.conftest import binance_markets
    from tests.connectors.servers.binance_usdm import FakeBinanceUsdm
    from workers import live_venue

    settings.PERP_POLL_MS = 300
    maker, hedge = FakeBinanceThread(), FakeBinanceThread()
    usdm = hedge.run(lambda: FakeBinanceUsdm(hedge.server).install())
    hedge.run(usdm.mark_prices.__setitem__, RAW, "60000.00000000")
    hedge.run(usdm.funding.__setitem__, RAW, ("0.00010000", 1_900_000_000_000))
    _usdm_takes_ioc(hedge, usdm)
    monkeypatch.setenv("MM_LIVE_HTTP_BASE", maker.server.http_base)
    markets = binance_markets()
    real = live_venue.make_exchange
    bases = {"maker-key": maker.server.http_base, "hedge-key": hedge.server.http_base}

    def on_its_server(exchange_id, **kwargs):
        kwargs["http_base"] = bases[kwargs["api_key"]]
        return real(exchange_id, markets=markets, timeout_ms=3000, **kwargs)

    monkeypatch.setattr(live_venue, "make_exchange", on_its_server)
    yield maker, hedge, usdm
    maker.stop()
    hedge.stop()


@pytest.fixture
def live_host(clean_redis, spot_and_usdm):
    from workers.host import Host

    h = Host(ttl_ms=3000, run_feeds=False)
    h.start_thread()
    assert h.started.wait(5)
    yield h
    h.stop()


def _publish(redis_client) -> None:
    """Both books at a 60 000 mid, as the feeds would."""
    from workers import codec, keys

    now = time.time_ns()
    spot = codec.encode_snapshot(now, [(5_999_950, 100_000)], [(6_000_050, 100_000)])  # 59999.50 / 60000.50, 1 BTC
    redis_client.xadd(keys.feed_stream(MAKER_VENUE, SPOT), {"e": spot, "p": now})
    perp = codec.encode_snapshot(now, [(599_995, 1_000)], [(600_005, 1_000)])  # 59999.5 / 60000.5, 1 BTC
    redis_client.xadd(keys.feed_stream(HEDGE_VENUE, PERP), {"e": perp, "p": now})


def feeding(redis_client, predicate, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _publish(redis_client)
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    return predicate()


def _accounts_and_markets(contract: bool = True):
    from apps.accounts.models import User
    from apps.exchanges.models import Market
    from apps.exchanges.services import exchange_account_create

    user = User.objects.create_user(username=f"liveperp{time.time_ns()}", password="pw-12345678")
    maker_account = exchange_account_create(owner=user, label="spot live", kind="live", venue=MAKER_VENUE,
                                            api_key="maker-key", api_secret="maker-secret")  # fmt: skip
    hedge_account = exchange_account_create(owner=user, label="usdm live", kind="live", venue=HEDGE_VENUE,
                                            api_key="hedge-key", api_secret="hedge-secret")  # fmt: skip
    spot, _ = Market.objects.update_or_create(
        venue=MAKER_VENUE, symbol=SPOT, defaults={"base": "BTC", "quote": "USDT", "min_notional": "5",
                                                  **BINANCE_SPOT_MARKET}
    )  # fmt: skip
    perp, _ = Market.objects.update_or_create(
        venue=HEDGE_VENUE, symbol=PERP, defaults={"base": "BTC", "quote": "USDT", "min_notional": "5",
                                                  **USDM_MARKET, **(USDM_CONTRACT if contract else {})}
    )  # fmt: skip
    spot.refresh_from_db()
    perp.refresh_from_db()
    return user, maker_account, hedge_account, spot, perp


def _bot(hedge_perp: dict):
    from apps.bots.services import bot_create

    user, maker_account, hedge_account, spot, perp = _accounts_and_markets()
    return bot_create(
        owner=user,
        name="live spot / live usdm",
        exchange_account=maker_account,
        market=spot,
        strategy="hedged_maker",
        params={"hedge_account": hedge_account.pk, "hedge_market": perp.pk, "order_amount": "0.004",
                "min_profitability": "0.002", "max_unhedged": "0.008", "requote_ticks": 1000,
                "stale_after_ms": 5000, "hedge_perp": hedge_perp},
        risk={"max_position_base": "1"},
    )  # fmt: skip


def _stop(bot) -> None:
    from apps.bots.models import Bot
    from workers import lifecycle

    Bot.objects.filter(pk=bot.pk).update(desired_state="stopped")
    lifecycle.apply(bot.pk)
    assert wait_until(lambda: Bot.objects.get(pk=bot.pk).actual_state in ("stopped", "error"), 30)


def _status(redis_client, bot_id: int) -> dict:
    import json

    from workers import keys

    raw = redis_client.get(keys.bot_status(bot_id))
    return json.loads(raw) if raw else {}


def test_live_spot_maker_fill_is_hedged_once_in_contracts_on_a_live_usdm_perpetual(
    live_host, spot_and_usdm, redis_client
):
    from apps.bots.models import Bot, BotEvent, HedgeFillAttribution
    from apps.bots.services import bot_start
    from apps.derivatives.models import FundingPayment
    from apps.exchanges.models import ExchangeAccount
    from apps.orders.models import Fill
    from workers import supervisor

    maker_fake, hedge_fake, usdm = spot_and_usdm
    bot = _bot({"leverage": 5, "margin_mode": "isolated"})
    hedge_account = ExchangeAccount.objects.get(pk=bot.params["hedge_account"])
    bot_start(bot=bot, actor=bot.owner)
    supervisor.tick()
    prefix = bot.client_id_prefix
    try:
        assert feeding(redis_client, lambda: len(_open(maker_fake)) >= 2, 30), Bot.objects.get(pk=bot.pk).state_reason
        # leverage and margin mode set on the USD-M account at start, before any order
        pos = hedge_fake.run(usdm.position, RAW)
        assert (pos.leverage, pos.margin_type) == (5, "isolated")
        paths = hedge_fake.run(lambda: [(r.method, r.path) for r in hedge_fake.server.requests])
        assert ("POST", "/fapi/v1/order") not in paths
        assert paths.index(("POST", "/fapi/v1/marginType")) < paths.index(("POST", "/fapi/v1/leverage"))
        configured = BotEvent.objects.get(bot=bot, code="perp_configured")
        assert configured.data["leg"] == "hedge" and configured.data["changed"] == [
            "margin_mode isolated",
            "leverage 5",
        ]
        assert configured.data["wallet"] == "10000"

        bid = next(o for o in _open(maker_fake) if o["side"] == "BUY")
        # the perp's bid 59999.5 for 4 contracts x (1 - 0.002) = 59879.501, down to a spot tick
        assert Decimal(bid["price"]) == Decimal("59879.50") and Decimal(bid["origQty"]) == Decimal("0.004")
        trade = maker_fake.run(maker_fake.spot.fill, bid["clientOrderId"], "0.004")
        hedges = Fill.objects.filter(bot=bot, client_order_id__startswith=prefix + "h-")
        assert feeding(redis_client, hedges.exists, 15), list(BotEvent.objects.filter(bot=bot).values_list("message"))
        created = hedge_fake.run(lambda: list(usdm.orders.values()))
        assert len(created) == 1, created  # the hedge, sent once
        order = created[0]
        assert order["clientOrderId"].startswith(prefix + "h-") and order["symbol"] == RAW
        assert (order["side"], order["timeInForce"], Decimal(order["origQty"])) == ("SELL", "IOC", Decimal("0.004"))
        hedge = hedges.get()
        assert (hedge.side, hedge.quantity, hedge.account_id, hedge.liquidity) == (
            "sell", Decimal("0.004"), hedge_account.pk, "taker")  # fmt: skip
        maker = Fill.objects.get(bot=bot, venue_trade_id=trade["id"], account=bot.exchange_account)
        assert (maker.side, maker.quantity) == ("buy", Decimal("0.004"))
        assert hedge_fake.run(lambda: usdm.position(RAW).amount) == Decimal("-0.004")

        def read_back():
            h = _status(redis_client, bot.pk).get("hedged", {}).get("hedge_perp") or {}
            return h if h.get("exchange_position") == "-0.004" and h.get("position_contracts") == "-0.004" else None

        figures = feeding(redis_client, read_back, 10)
        assert figures, _status(redis_client, bot.pk)
        assert figures["leverage"] == 5 and figures["exchange_reads"] >= 1
        assert Decimal(figures["funding_rate"]) == Decimal("0.0001")
        assert Decimal(_status(redis_client, bot.pk)["hedged"]["exposure"]) == 0
        row = feeding(redis_client, lambda: HedgeFillAttribution.objects.filter(bot=bot, open_quantity=0).first(), 10)
        assert row is not None and row.maker_trade_id == trade["id"] and row.hedged_quantity == Decimal("0.004")
        time.sleep(1.0)  # more polls of both venues: no second hedge, no position mismatch
        assert len(hedge_fake.run(lambda: list(usdm.orders))) == 1
        assert Fill.objects.filter(bot=bot).count() == 2
        assert not BotEvent.objects.filter(bot=bot, code="position_mismatch").exists()

        # the exchange pays funding on the short hedge position: booked once on the hedge leg
        payment = hedge_fake.run(usdm.pay_funding, RAW, "0.024")
        received = BotEvent.objects.filter(bot=bot, kind="funding", code="funding_received")
        assert feeding(redis_client, received.exists, 10), list(BotEvent.objects.filter(bot=bot).values_list("code"))
        event = received.get()
        assert event.data["leg"] == "hedge" and event.data["payment_id"] == payment["tranId"]
        assert Decimal(event.data["amount"]) == Decimal("0.024") and event.message.startswith("hedge leg funding at")
        stored = FundingPayment.objects.get(bot=bot)
        assert (stored.account_id, stored.symbol, stored.amount) == (hedge_account.pk, PERP, Decimal("0.024"))

        def funding_booked():
            h = _status(redis_client, bot.pk).get("hedged", {}).get("hedge_perp") or {}
            return h.get("funding") == "0.02400000"

        assert feeding(redis_client, funding_booked, 10), _status(redis_client, bot.pk)
        time.sleep(1.0)  # read again: still one payment
        assert received.count() == 1 and FundingPayment.objects.filter(bot=bot).count() == 1

        # the exchange's liquidation price of the leg's position (the size the leg's fills give)
        # is the one the leg uses and shows; its isolated wallet is taken as the leg's margin
        def figures_told(pos):
            pos.liquidation_price, pos.isolated_wallet = "71650.3", "48.2"

        hedge_fake.run(lambda: figures_told(usdm.position(RAW)))

        def exchange_liquidation():
            h = _status(redis_client, bot.pk).get("hedged", {}).get("hedge_perp") or {}
            return h if h.get("exchange_liquidation_price") == "71650.3" else None

        h = feeding(redis_client, exchange_liquidation, 10)
        assert h, _status(redis_client, bot.pk)
        assert Decimal(h["liquidation_price"]) == Decimal("71650.3")
    finally:
        _stop(bot)
    assert Bot.objects.get(pk=bot.pk).actual_state == "stopped"
    assert _open(maker_fake) == []


def test_a_margin_switch_the_exchange_cannot_take_refuses_the_bot_with_nothing_applied(
    live_host, spot_and_usdm, redis_client
):
    from apps.bots.models import Bot
    from apps.bots.services import bot_start
    from workers import supervisor

    maker_fake, hedge_fake, usdm = spot_and_usdm

    def open_position():  # an open cross position on the exchange: a switch to isolated is refused
        p = usdm.position(RAW)
        p.amount, p.entry = Decimal("0.01"), Decimal("60000")

    hedge_fake.run(open_position)
    bot = _bot({"leverage": 5, "margin_mode": "isolated"})
    bot_start(bot=bot, actor=bot.owner)
    supervisor.tick()
    assert feeding(redis_client, lambda: Bot.objects.get(pk=bot.pk).actual_state == "error", 30)
    reason = Bot.objects.get(pk=bot.pk).state_reason
    assert reason.startswith("hedge leg: hedge_perp: margin_mode: cannot switch BTC/USDT:USDT to isolated"), reason
    assert "accepted: a switch once the position is closed" in reason
    pos = hedge_fake.run(usdm.position, RAW)
    assert (pos.margin_type, pos.leverage) == ("cross", 20)  # nothing applied
    paths = hedge_fake.run(lambda: [(r.method, r.path) for r in hedge_fake.server.requests])
    for path in ("/fapi/v1/leverage", "/fapi/v1/marginType", "/fapi/v1/order"):
        assert ("POST", path) not in paths, path
    assert _open(maker_fake) == []


def test_live_perpetual_leg_settings_and_a_row_without_contract_are_refused_by_field(db):
    from apps.bots import hedged

    user, maker_account, hedge_account, spot, perp = _accounts_and_markets(contract=False)
    params = {"hedge_account": hedge_account.pk, "hedge_market": perp.pk, "order_amount": "0.004",
              "min_profitability": "0.002"}  # fmt: skip
    _config, errors = hedged.validate(params, spot, owner=user, account=maker_account)
    assert "perpetual whose market row has no contract" in errors["hedge_market"][0], errors
    assert errors["hedge_market"][0].startswith(f"{perp.pk!r} is not accepted")

    _u, maker_account, hedge_account, spot, perp = _accounts_and_markets()
    params.update(hedge_account=hedge_account.pk, hedge_market=perp.pk,
                  hedge_perp={"leverage": 5, "wallet": "1000", "funding_rate": "0.0001"})  # fmt: skip
    _config, errors = hedged.validate(params, spot, owner=hedge_account.owner, account=maker_account)
    assert set(errors) == {"hedge_perp.wallet", "hedge_perp.funding_rate"}, errors
    assert "exchange account's balance" in errors["hedge_perp.wallet"][0]
    params["hedge_perp"] = {"leverage": 5, "margin_mode": "isolated"}
    config, errors = hedged.validate(params, spot, owner=hedge_account.owner, account=maker_account)
    assert errors == {} and config.order_lots == 400  # maker lots of 0.00001


def test_a_new_owner_of_a_live_perp_hedge_leg_counts_its_history_once(clean_redis, spot_and_usdm, redis_client):
    """The host running the bot stops (its lease released) after a hedged maker fill and a funding
    payment; the next host takes the bot over: nothing is hedged again, the stored payment is not
    booked twice, and the leg's margin balance is the exchange account's (its wallet, which holds
    the payment, plus the position's unrealized PnL), not the leg's history counted a second time
    on top of the wallet read at start."""
    from apps.bots.models import Bot, BotEvent
    from apps.bots.services import bot_start
    from apps.derivatives.models import FundingPayment
    from apps.orders.models import Fill
    from workers import lifecycle, supervisor
    from workers.host import Host

    maker_fake, hedge_fake, usdm = spot_and_usdm
    bot = _bot({"leverage": 5})
    bot_start(bot=bot, actor=bot.owner)
    prefix = bot.client_id_prefix
    hedges = Fill.objects.filter(bot=bot, client_order_id__startswith=prefix + "h-")
    first = Host(ttl_ms=3000, run_feeds=False)
    first.start_thread()
    assert first.started.wait(5)
    try:
        supervisor.tick()
        assert feeding(redis_client, lambda: len(_open(maker_fake)) >= 2, 30), Bot.objects.get(pk=bot.pk).state_reason
        bid = next(o for o in _open(maker_fake) if o["side"] == "BUY")
        maker_fake.run(maker_fake.spot.fill, bid["clientOrderId"], "0.004")
        assert feeding(redis_client, hedges.exists, 15), "the maker fill was not hedged"
        hedge_fake.run(usdm.pay_funding, RAW, "0.024")
        assert feeding(redis_client, FundingPayment.objects.filter(bot=bot).exists, 10), "the payment was not booked"
    finally:
        first.stop()
    second = Host(ttl_ms=3000, run_feeds=False)
    second.start_thread()
    assert second.started.wait(5)
    try:
        supervisor.tick()

        def taken_over():
            status = _status(redis_client, bot.pk)
            h = status.get("hedged", {}).get("hedge_perp") or {}
            return status.get("owner") == second.host_id and h.get("exchange_reads", 0) >= 2 and h

        figures = feeding(redis_client, taken_over, 30)
        assert figures, _status(redis_client, bot.pk)
        assert figures["position_contracts"] == "-0.004" and figures["exchange_position"] == "-0.004"
        assert figures["funding"] == "0.02400000"  # the stored payment, booked once
        # margin balance = the exchange's wallet (10,000 + the 0.024 payment) + unrealized PnL
        expected = Decimal("10000.024") + Decimal(figures["unrealized"])
        assert abs(Decimal(figures["margin_balance"]) - expected) <= Decimal("0.00000001"), figures
        assert hedges.count() == 1 and len(hedge_fake.run(lambda: list(usdm.orders))) == 1  # not hedged again
        assert FundingPayment.objects.filter(bot=bot).count() == 1
        assert BotEvent.objects.filter(bot=bot, kind="funding").count() == 1
        assert not BotEvent.objects.filter(bot=bot, code="position_mismatch").exists()
    finally:
        Bot.objects.filter(pk=bot.pk).update(desired_state="stopped")
        lifecycle.apply(bot.pk)
        assert wait_until(lambda: Bot.objects.get(pk=bot.pk).actual_state == "stopped", 30)
        second.stop()
