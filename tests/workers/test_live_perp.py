"""A LIVE perpetual bot, hosted in this process against the local fake Binance USD-M server
(``tests/connectors/servers/binance_usdm.py``: the real REST paths and recorded payload shapes)
through the real ccxt ``binanceusdm`` class: leverage and margin mode applied at start (or refused,
nothing half-applied), quotes and a fill at the exchange, the exchange's position, mark and funding
read back into perpetual risk and the PnL snapshots, a reduce-only order the exchange refuses, and
the position mismatch incident."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from tests.workers.helpers import wait_until
from tests.workers.test_live_venue import fake_binance, host  # noqa: F401 - fixtures

pytestmark = [pytest.mark.django_db(transaction=True)]

SYMBOL = "BTC/USDT:USDT"
RAW = "BTCUSDT"
USDM_MARKET = {"tick_size": "0.1", "lot_size": "0.001", "maker_fee": "0.0002", "taker_fee": "0.0005"}
MID = 600_000  # 60 000.0 USDT at a 0.1 tick


@pytest.fixture
def usdm(fake_binance, settings):  # noqa: F811
    from tests.connectors.servers.binance_usdm import FakeBinanceUsdm

    settings.PERP_POLL_MS = 400
    fake = fake_binance.run(lambda: FakeBinanceUsdm(fake_binance.server).install())
    fake_binance.run(fake.mark_prices.__setitem__, RAW, "60000.00000000")
    fake_binance.run(fake.funding.__setitem__, RAW, ("0.00012500", 1_900_000_000_000))
    return fake


def open_orders(fake_binance, usdm) -> list[dict]:  # noqa: F811
    return fake_binance.run(lambda: [o for o in usdm.orders.values() if o["status"] in ("NEW", "PARTIALLY_FILLED")])


def publish(redis_client, mid: int = MID) -> None:
    from workers import codec, keys

    now = time.time_ns()
    blob = codec.encode_snapshot(now, [(mid - 5, 1_000)], [(mid + 5, 1_000)])
    redis_client.xadd(keys.feed_stream("binanceusdm", SYMBOL), {"e": blob, "p": now})


def feed_until(redis_client, predicate, timeout: float, mid: int = MID):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        publish(redis_client, mid)
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    return predicate()


def make_perp_bot(perp: dict):
    from apps.accounts.models import User
    from apps.bots.services import bot_create, bot_start
    from apps.exchanges.models import Market
    from apps.exchanges.services import account_balances_store, exchange_account_create

    user = User.objects.create_user(username=f"perp{time.time_ns()}", password="pw-12345678")
    account = exchange_account_create(
        owner=user, label="usdm live", kind="live", venue="binanceusdm", api_key="test-key", api_secret="test-secret"
    )
    # the swap wallet as the account's verification stores it (the new-bot guard judges on it)
    account_balances_store(account=account, balances={"USDT": {"free": "10000", "total": "10000"}})
    market, _ = Market.objects.update_or_create(
        venue="binanceusdm",
        symbol=SYMBOL,
        defaults={"base": "BTC", "quote": "USDT", "min_notional": "5", **USDM_MARKET},
    )
    market.refresh_from_db()  # decimals, not the strings given
    bot = bot_create(
        owner=user,
        name=f"live perp {time.time_ns()}",
        exchange_account=account,
        market=market,
        strategy="fixed_spread",
        params={
            "order_amount": "0.004",
            "bid_spread": "0.001",
            "ask_spread": "0.001",
            "order_levels": 1,
            "refresh_time": "1",
        },
        risk={"max_position_base": "1", "perp": perp},
    )
    bot_start(bot=bot, actor=user)
    return bot


def state(bot) -> tuple[str, str]:
    from apps.bots.models import Bot

    b = Bot.objects.get(pk=bot.pk)
    return b.actual_state, b.state_reason


def stop(bot) -> None:
    from apps.bots.models import Bot
    from workers import lifecycle

    Bot.objects.filter(pk=bot.pk).update(desired_state="stopped")
    lifecycle.apply(bot.pk)
    assert wait_until(lambda: state(bot)[0] == "stopped", 20), state(bot)


def test_a_live_perp_bot_configures_the_exchange_quotes_fills_and_reads_its_position_back(
    host,  # noqa: F811
    fake_binance,  # noqa: F811
    usdm,
    redis_client,
):
    from apps.bots.models import BotEvent
    from apps.orders.models import Fill
    from apps.portfolio.models import PnlSnapshot
    from workers import supervisor

    # The mark price stream refused: the mark and funding come from the poll here
    # (the streamed ones: tests/workers/test_live_perp_mark_stream.py).
    fake_binance.run(setattr, usdm.marks, "accepting", False)
    bot = make_perp_bot({"leverage": 5, "margin_mode": "isolated"})
    stored_at = bot.exchange_account.balances_at
    supervisor.tick()
    assert feed_until(redis_client, lambda: len(open_orders(fake_binance, usdm)) >= 2, 30), state(bot)
    # The balances read at start are stored for the portal's new-bot guards.
    from apps.exchanges.models import ExchangeAccount
    from apps.portfolio.models import Balance

    assert wait_until(lambda: ExchangeAccount.objects.get(pk=bot.exchange_account_id).balances_at > stored_at, 5)
    usdt = Balance.objects.get(account_id=bot.exchange_account_id, asset="USDT")
    assert usdt.total == Decimal("10000") and usdt.free <= usdt.total
    # Set on the exchange at start, from the bot's settings, before the first order.
    pos = fake_binance.run(usdm.position, RAW)
    assert (pos.leverage, pos.margin_type) == (5, "isolated")
    paths = fake_binance.run(lambda: [(r.method, r.path) for r in fake_binance.server.requests])
    first_order = paths.index(("POST", "/fapi/v1/order"))
    assert paths.index(("POST", "/fapi/v1/marginType")) < paths.index(("POST", "/fapi/v1/leverage")) < first_order
    assert wait_until(lambda: BotEvent.objects.filter(bot=bot, code="perp_configured").exists(), 5)
    configured = BotEvent.objects.get(bot=bot, code="perp_configured")
    assert configured.data == {
        "changed": ["margin_mode isolated", "leverage 5"],
        "leverage": 5,
        "margin_mode": "isolated",
        "wallet": "10000",
    }

    # A fill at the exchange: recorded once, and the exchange's position (read back) agrees.
    buy = next(o for o in open_orders(fake_binance, usdm) if o["side"] == "BUY")
    usdm_mark = "59990.00000000"
    fake_binance.run(usdm.mark_prices.__setitem__, RAW, usdm_mark)
    trade = fake_binance.run(usdm.fill, buy["clientOrderId"], "0.004")
    assert wait_until(lambda: Fill.objects.filter(bot=bot, venue_trade_id=trade["id"]).exists(), 10)
    assert fake_binance.run(lambda: usdm.position(RAW).amount) == Decimal("0.004")

    def snapshot_with_position():
        row = PnlSnapshot.objects.filter(bot=bot, position=Decimal("0.004"), mid=Decimal("59990")).order_by("-ts")
        return row.first()

    snap = feed_until(redis_client, snapshot_with_position, 15)
    assert snap is not None, list(PnlSnapshot.objects.filter(bot=bot).values_list("position", "mid")[:5])
    entry = Decimal(buy["price"])
    # long 0.004 from the bid, marked at the exchange's 59,990 (not the book's 60,000)
    assert snap.unrealized == (Decimal("59990") - entry) * Decimal("0.004")
    runner = host.bots[bot.pk]
    perp = runner.engine.perp
    assert perp.funding_rate == Decimal("0.000125") and perp.next_funding_ts == 1_900_000_000_000 * 1_000_000
    assert runner.engine.ctx.funding_rate == pytest.approx(0.000125)
    assert perp.funding_source == "exchange (fetchFundingRate)"
    assert (perp.leverage, perp.position.margin_mode.value) == (5, "isolated")
    assert not BotEvent.objects.filter(bot=bot, code="position_mismatch").exists()
    # The bot page's and the API's perpetual figures (the owner's live status).
    from apps.dashboard.perp import bot_perp

    def perp_figures():
        found = bot_perp(bot_id=bot.pk) or {}
        return found.get("position_contracts") == "0.004" and Decimal(found["mark_price"]) == 59990 and found

    figures = wait_until(perp_figures, 5)
    assert figures, bot_perp(bot_id=bot.pk)
    assert Decimal(figures["mark_price"]) == Decimal("59990") and figures["leverage"] == 5
    assert figures["funding_source"] == "exchange (fetchFundingRate)" and Decimal(figures["funding_rate"]) == Decimal(
        "0.000125"
    )
    assert figures["next_funding"] == "2030-03-17T17:46:40+00:00"

    stop(bot)
    assert open_orders(fake_binance, usdm) == []


@pytest.mark.parametrize(
    ("perp", "position", "expected"),
    [
        (
            {"leverage": 150, "margin_mode": "isolated"},
            None,
            "leverage: 150 is not accepted for BTC/USDT:USDT; accepted: a whole number from 1 to 125",
        ),
        (
            {"leverage": 5, "margin_mode": "isolated"},
            Decimal("0.01"),
            "margin_mode: cannot switch BTC/USDT:USDT to isolated with an open position (0.01 contracts, cross); "
            "accepted: a switch once the position is closed",
        ),
    ],
    ids=["leverage_above_the_market_maximum", "margin_switch_with_an_open_position"],
)
def test_settings_the_exchange_cannot_take_put_the_bot_in_error_with_nothing_applied(
    host,  # noqa: F811
    fake_binance,  # noqa: F811
    usdm,
    redis_client,
    perp,
    position,
    expected,
):
    from apps.bots.models import BotEvent
    from workers import supervisor

    if position is not None:

        def open_position():
            p = usdm.position(RAW)
            p.amount, p.entry = position, Decimal("60000")

        fake_binance.run(open_position)
    bot = make_perp_bot(perp)
    supervisor.tick()
    assert feed_until(redis_client, lambda: state(bot)[0] == "error", 30), state(bot)
    reason = state(bot)[1]
    assert reason.startswith("configuration refused: ") and expected in reason, reason
    event = BotEvent.objects.get(bot=bot, code="perp_refused")
    assert expected in event.message
    # Nothing half-applied: neither setting reached the exchange, no order was sent.
    for path in ("/fapi/v1/leverage", "/fapi/v1/marginType", "/fapi/v1/order"):
        assert fake_binance.run(fake_binance.server.calls, "POST", path) == [], path
    p = fake_binance.run(usdm.position, RAW)
    assert (p.leverage, p.margin_type) == (20, "cross")


def test_a_position_closed_behind_the_bot_is_an_incident_and_its_reduce_only_flatten_is_refused_plainly(
    host,  # noqa: F811
    fake_binance,  # noqa: F811
    usdm,
    redis_client,
    settings,
):
    from apps.bots.models import BotEvent
    from apps.core.models import Incident
    from apps.orders.models import Fill, Order
    from workers import lifecycle, supervisor

    bot = make_perp_bot({"leverage": 5, "margin_mode": "cross"})
    supervisor.tick()
    assert feed_until(redis_client, lambda: len(open_orders(fake_binance, usdm)) >= 2, 30), state(bot)
    buy = next(o for o in open_orders(fake_binance, usdm) if o["side"] == "BUY")
    trade = fake_binance.run(usdm.fill, buy["clientOrderId"], "0.004")
    assert wait_until(lambda: Fill.objects.filter(bot=bot, venue_trade_id=trade["id"]).exists(), 10)
    runner = host.bots[bot.pk]
    assert wait_until(lambda: runner.engine.perp.position.net_lots == 4, 5)

    # The position is closed on the exchange behind the bot's back (e.g. by hand on the website).
    fake_binance.run(lambda: setattr(usdm.position(RAW), "amount", Decimal(0)))
    incident = feed_until(redis_client, lambda: Incident.objects.filter(bot=bot, kind="position_mismatch").first(), 15)
    assert incident is not None, list(BotEvent.objects.filter(bot=bot).values_list("code", "message"))
    assert incident.data == {"ours": "0.004", "venue": "0", "tolerance": "0"}
    assert "our position is 0.004 contracts, the venue's 0" in incident.message
    assert Incident.objects.filter(bot=bot, kind="position_mismatch").count() == 1  # once, not every read
    assert wait_until(lambda: BotEvent.objects.filter(bot=bot, code="position_mismatch").exists(), 5)
    event = BotEvent.objects.get(bot=bot, code="position_mismatch")
    assert event.data == {"booked": "0.004", "exchange": "0.000"}
    # Perpetual risk now uses the exchange's (flat) position.
    assert runner.engine.perp.position.net_lots == 0

    # A kill with flatten sells the booked 0.004 reduce-only: the exchange refuses (-2022), and
    # the order is rejected with a sentence that says why.
    lifecycle.control(redis_client, bot.pk, "kill_flatten")

    def rejected():
        return Order.objects.filter(bot=bot, status="rejected", side="sell").first()

    order = feed_until(redis_client, rejected, 15)
    assert order is not None, list(Order.objects.filter(bot=bot).values_list("client_order_id", "side", "status"))
    sent = fake_binance.run(fake_binance.server.calls, "POST", "/fapi/v1/order")
    flatten = next(r for r in sent if (r.query or r.body).get("newClientOrderId") == order.client_order_id)
    assert (flatten.query or flatten.body)["reduceOnly"] == "true"
    assert order.reason.startswith(
        "reduce_only: sell 0.004 contracts refused by the exchange: it would open or increase the position "
        "instead of reducing it (the exchange's position at the bot's last read: 0 contracts)"
    ), order.reason
    assert "ReduceOnly Order is rejected" in order.reason
    assert fake_binance.run(lambda: usdm.position(RAW).amount) == 0  # nothing was opened


@pytest.mark.parametrize(
    ("perp", "field", "says"),
    [
        ({"leverage": 250}, "perp.leverage", "give a whole number from 1 to 200 (the market's own maximum is checked"),
        ({"margin_mode": "portfolio"}, "perp.margin_mode", "accepted: isolated, cross"),
        ({"wallet": "1000"}, "perp.wallet", "a live bot's wallet is the exchange account's balance; remove it"),
        ({"funding_rate": "0.0001"}, "perp.funding_rate", "reads the funding rate from the exchange"),
        ({"limits": {"min_liquidation_distance": "2"}}, "perp.limits.min_liquidation_distance", "2"),
        ({"hedge": True}, "perp.hedge", "unknown setting; accepted: leverage, margin_mode, position_mode, limits"),
    ],
)
def test_live_perp_settings_are_refused_by_name_when_the_bot_is_created(perp, field, says):
    from apps.bots.services import FieldErrors

    with pytest.raises(FieldErrors) as caught:
        make_perp_bot(perp)
    errors = caught.value.errors["risk"]
    assert list(errors) == [field], errors
    assert says in errors[field][0], errors[field]


def test_live_perp_bot_without_perp_settings_keeps_the_exchange_settings():
    """No ``risk.perp``: the bot is created (the exchange's leverage and margin mode stay)."""
    bot = make_perp_bot({})
    assert bot.risk["perp"] == {}


def test_the_exchange_mark_near_liquidation_pauses_quoting_while_the_book_is_far_from_it(
    host,  # noqa: F811
    fake_binance,  # noqa: F811
    usdm,
    redis_client,
):
    """Long 0.004 at 10x isolated: liquidation near 54,200. The book stays at 60,000 (a mark
    from it would be 10 % away); the exchange's mark of 56,000 is within the 5 % minimum
    distance, so the bot pauses quoting, and quotes again once the exchange marks at 60,000."""
    from apps.bots.models import BotEvent
    from apps.orders.models import Fill
    from workers import supervisor

    bot = make_perp_bot({"leverage": 10, "margin_mode": "isolated", "limits": {"min_liquidation_distance": "0.05"}})
    supervisor.tick()
    assert feed_until(redis_client, lambda: len(open_orders(fake_binance, usdm)) >= 2, 30), state(bot)
    buy = next(o for o in open_orders(fake_binance, usdm) if o["side"] == "BUY")
    trade = fake_binance.run(usdm.fill, buy["clientOrderId"], "0.004")
    assert wait_until(lambda: Fill.objects.filter(bot=bot, venue_trade_id=trade["id"]).exists(), 10)
    perp = host.bots[bot.pk].engine.perp
    # The exchange's liquidation price of the position (Binance: isolated wallet = the initial
    # margin, 0.004 x ~59,940 / 10, maintenance at 0.4 %) is the one risk uses.
    fake_binance.run(lambda: setattr(usdm.position(RAW), "liquidation_price", "54200.00000000"))
    assert wait_until(lambda: perp.position.net_lots == 4 and perp.liquidation == 54_200, 5), perp.liquidation
    assert not perp.too_close

    fake_binance.run(usdm.mark_prices.__setitem__, RAW, "56000.00000000")

    def paused():
        return BotEvent.objects.filter(bot=bot, kind="risk", code="liquidation_distance").first()

    breach = feed_until(redis_client, paused, 15)
    assert breach is not None, list(BotEvent.objects.filter(bot=bot).values_list("code", "message"))
    assert perp.too_close and perp.mark == 56_000
    assert "from the liquidation price" in breach.message and "limit 5.00%" in breach.message
    assert feed_until(redis_client, lambda: open_orders(fake_binance, usdm) == [], 10), "still quoting while paused"

    fake_binance.run(usdm.mark_prices.__setitem__, RAW, "60000.00000000")
    assert feed_until(redis_client, lambda: len(open_orders(fake_binance, usdm)) >= 1, 15), "never resumed"
    assert not perp.too_close
    stop(bot)
