"""Hosted hedged bots with a perpetual hedge leg (issue 19): a spot maker on
``replay:binance-spot`` BTC/USDT (lots of 0.00001 BTC) hedged on ``replay:binance-usdm``'s
BTC/USDT:USDT perpetual (contracts of 1 BTC in lots of 0.001), both paper, run by a real
in-process host on the real Redis and PostgreSQL.

The feeds are this test's: it publishes both books on the feed streams (as a feed would) and
prints trades at the maker's quote, so the fills and the contract rounding are exact:

- a maker fill of 0.0013 BTC is hedged at once with 1 contract (1.3 rounded to the lot); the
  0.0003 BTC that lot rounding leaves is carried as unhedged exposure (the status says so);
- the residue counts against ``max_unhedged`` (0.002 = one order): once the hedge book moves and
  the bid is requoted, no new bid is placed (0.0003 + 0.002 > 0.002) while the ask is;
- a maker sell of 0.002 is hedged with 2 contracts (1.7 rounded), leaving +0.0003;
- a funding time stored for the perpetual passes while the hedge leg holds a position: the
  payment is a bot event naming the leg, and the PnL snapshots' ``funding`` column carries it;
  the last snapshot's position is the net base of both legs (the residue).
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tests.workers.helpers import wait_until

pytestmark = [pytest.mark.django_db(transaction=True)]

SPOT, USDM = "replay:binance-spot", "replay:binance-usdm"
PERP = "BTC/USDT:USDT"
FUNDING_RATE = Decimal("0.0005")


@pytest.fixture
def quiet_host(clean_redis):
    """A host that runs bots but no feeds: the test publishes the books itself."""
    from workers.host import Host

    h = Host(ttl_ms=3000, run_feeds=False)
    h.start_thread()
    assert h.started.wait(5)
    yield h
    h.stop()


class Books:
    """Publishes both venues' books every 0.2 s on their feed streams (a thread)."""

    def __init__(self, redis_client) -> None:
        self.redis = redis_client
        # (venue, symbol) -> (bids, asks) in integer ticks / lots of each market
        self.books = {
            (SPOT, "BTC/USDT"): ([(5_995_000, 100_000)], [(6_005_000, 100_000)]),  # 59950 / 60050, 1 BTC
            (USDM, PERP): ([(599_999, 5_000)], [(600_001, 5_000)]),  # 59999.9 / 60000.1, 5 BTC
        }
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def publish(self) -> None:
        from workers import codec, keys

        for (venue, symbol), (bids, asks) in list(self.books.items()):
            now = time.time_ns()
            self.redis.xadd(keys.feed_stream(venue, symbol), {"e": codec.encode_snapshot(now, bids, asks), "p": now})

    def trade(self, venue: str, symbol: str, price: int, qty: int, aggressor) -> None:
        from trading.events import TradeTick
        from workers import codec, keys

        now = time.time_ns()
        blob = codec.encode_trade(TradeTick(now, price, qty, aggressor, f"t{now}"))
        self.redis.xadd(keys.feed_stream(venue, symbol), {"e": blob, "p": now})

    def _run(self) -> None:
        while not self.stop.is_set():
            self.publish()
            time.sleep(0.2)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(2)


def _market(venue: str, symbol: str, tick: str, lot: str, taker: str):
    from apps.exchanges.models import Market
    from tests.workers.helpers import contract_fields

    market, _ = Market.objects.update_or_create(
        venue=venue,
        symbol=symbol,
        defaults={"base": "BTC", "quote": "USDT", "tick_size": tick, "lot_size": lot, "min_notional": "0",
                  "maker_fee": "0", "taker_fee": taker, "active": True, **contract_fields(venue, symbol)},
    )  # fmt: skip
    market.refresh_from_db()
    return market


def _status(redis_client, bot_id: int) -> dict:
    import json

    from workers import keys

    raw = redis_client.get(keys.bot_status(bot_id))
    return json.loads(raw) if raw else {}


def _exposure(redis_client, bot_id: int) -> Decimal | None:
    value = _status(redis_client, bot_id).get("hedged", {}).get("exposure")
    return None if value is None else Decimal(value)


def _open(bot, side: str):
    from apps.orders.models import Order

    return list(
        Order.objects.filter(bot=bot, side=side, status__in=["open", "partially_filled"],
                             client_order_id__startswith=bot.client_id_prefix + "m-")
    )  # fmt: skip


def _spot_perp_bot(name: str, *, hedge_usdt: str, leverage: int):
    """A hedged bot quoting BTC/USDT on the spot replay venue, hedged on the USD-M perpetual
    (paper accounts: 1 BTC and 100,000 USDT on the maker, ``hedge_usdt`` on the hedge)."""
    from apps.accounts.models import User
    from apps.bots.services import bot_create
    from apps.exchanges.services import exchange_account_create

    spot = _market(SPOT, "BTC/USDT", "0.01", "0.00001", "0")
    perp = _market(USDM, PERP, "0.1", "0.001", "0.0005")
    user = User.objects.create_user(username=f"hedger{time.time_ns()}", password="pw-12345678")
    maker_account = exchange_account_create(owner=user, label="spot", venue=SPOT,
                                            paper_balances={"BTC": "1", "USDT": "100000"})  # fmt: skip
    hedge_account = exchange_account_create(owner=user, label="usdm", venue=USDM, paper_balances={"USDT": hedge_usdt})
    return bot_create(
        owner=user,
        name=name,
        exchange_account=maker_account,
        market=spot,
        strategy="hedged_maker",
        params={"hedge_account": hedge_account.pk, "hedge_market": perp.pk, "order_amount": "0.002",
                "min_profitability": "0.0005", "max_unhedged": "0.002", "requote_ticks": 0,
                "stale_after_ms": 5000, "hedge_perp": {"leverage": leverage}},
        risk={"max_position_base": "1"},
    )  # fmt: skip


def test_spot_maker_hedged_in_usdm_contracts_carries_the_rounding_residue_and_books_funding(quiet_host, redis_client):
    from apps.bots.models import Bot, BotEvent
    from apps.bots.services import bot_start
    from apps.derivatives.models import FundingRate
    from apps.orders.models import Fill
    from apps.portfolio.models import PnlSnapshot
    from trading.instruments import Side
    from workers import lifecycle, supervisor

    funding_at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=40)
    FundingRate.objects.create(venue=USDM, symbol=PERP, ts=funding_at, rate=FUNDING_RATE)
    bot = _spot_perp_bot("spot-perp", hedge_usdt="10000", leverage=10)
    from apps.exchanges.models import ExchangeAccount

    user, hedge_account = bot.owner, ExchangeAccount.objects.get(pk=bot.params["hedge_account"])
    books = Books(redis_client)
    try:
        bot_start(bot=bot, actor=user)
        supervisor.tick()
        assert wait_until(lambda: Bot.objects.get(pk=bot.pk).actual_state == "running", 20)
        assert wait_until(lambda: _open(bot, "buy") and _open(bot, "sell"), 20), "the bot never quoted"
        bid = _open(bot, "buy")[0]
        # maker bid = the perp's bid walked for 2 contracts x (1 - 0.0005), down to a spot tick
        assert bid.price == Decimal("59969.90") and bid.quantity == Decimal("0.002")
        prefix = bot.client_id_prefix
        hedges = Fill.objects.filter(bot=bot, client_order_id__startswith=prefix + "h-")

        # 1. 0.0013 BTC sold into our bid: hedged at once with 1 contract; 0.0003 carried
        books.trade(SPOT, "BTC/USDT", 5_996_990, 130, Side.SELL)
        assert wait_until(lambda: hedges.count() == 1, 15), "no hedge for the maker fill"
        hedge = hedges.get()
        assert (hedge.side, hedge.quantity, hedge.account_id) == ("sell", Decimal("0.001"), hedge_account.pk)
        assert hedge.price == Decimal("59999.9") and hedge.liquidity == "taker"
        assert wait_until(lambda: _exposure(redis_client, bot.pk) == Decimal("0.0003"), 10)
        status = _status(redis_client, bot.pk)["hedged"]
        assert Decimal(status["hedge"]["position"]) == Decimal("-0.001")
        assert status["hedge_perp"]["position_contracts"] == "-0.001" and status["hedge_perp"]["leverage"] == 10

        # 2. the hedge book moves: the bid is requoted, but 0.0003 + 0.002 is above the 0.002
        # limit, so no new bid; the ask (0.0003 - 0.002 within the limit) is requoted
        asks_before = {o.client_order_id for o in _open(bot, "sell")}
        books.books[(USDM, PERP)] = ([(600_099, 5_000)], [(600_101, 5_000)])  # 60009.9 / 60010.1
        assert wait_until(lambda: not _open(bot, "buy"), 10), "the partly filled bid was not cancelled"
        assert wait_until(lambda: {o.client_order_id for o in _open(bot, "sell")} - asks_before, 10)
        time.sleep(1.5)
        assert not _open(bot, "buy"), "a bid was placed beyond the unhedged limit"
        ask = _open(bot, "sell")[0]
        assert ask.price == Decimal("60040.11")  # 60010.1 x 1.0005, up to a spot tick

        # 3. a buyer takes our whole ask: 0.002 sold, hedged with 2 contracts (1.7 rounded)
        books.trade(SPOT, "BTC/USDT", 6_004_011, 200, Side.BUY)
        assert wait_until(lambda: hedges.count() == 2, 15), "no hedge for the maker sell"
        second = hedges.order_by("ts", "id").last()
        assert (second.side, second.quantity, second.price) == ("buy", Decimal("0.002"), Decimal("60010.1"))
        assert wait_until(lambda: _exposure(redis_client, bot.pk) == Decimal("0.0003"), 10)

        # 4. the stored funding time passes with the hedge leg long 0.001 contract: paid
        funding = BotEvent.objects.filter(bot=bot, kind="funding")
        remaining = (funding_at - datetime.now(UTC)).total_seconds()
        assert remaining > 0, "the fills took longer than the funding time: the test's timing is off"
        assert wait_until(funding.exists, remaining + 15), "no funding event"
        event = funding.get()
        assert event.code == "funding_paid" and event.data["leg"] == "hedge"
        assert event.data["position_contracts"] == "0.001"
        mark = Decimal(event.data["mark"])
        assert mark == Decimal("60010")  # the perp's mid
        assert Decimal(event.data["amount"]) == -Decimal("0.001") * mark * FUNDING_RATE  # -0.030005 USDT
    finally:
        Bot.objects.filter(pk=bot.pk).update(desired_state="stopped")
        lifecycle.apply(bot.pk)
        assert wait_until(lambda: Bot.objects.get(pk=bot.pk).actual_state == "stopped", 30)
        books.close()
    quiet_host.drain_writers(10)

    maker = Fill.objects.filter(bot=bot, client_order_id__startswith=prefix + "m-")
    assert sorted((f.side, f.quantity) for f in maker) == [("buy", Decimal("0.0013")), ("sell", Decimal("0.002"))]
    last = PnlSnapshot.objects.filter(bot=bot).order_by("-ts").first()
    # the net base of both legs: +0.0013 - 0.002 (spot) - 0.001 + 0.002 (perp) = the residue
    assert last.position == Decimal("0.0003")
    assert last.funding == Decimal("-0.030005")
    # fees: the spot maker pays none; the perp's taker fees 0.05 % of 59.9999 and 120.0202 USDT
    assert last.fees == Decimal("0.02999995") + Decimal("0.0600101")


def test_a_hedge_the_perp_legs_margin_cannot_carry_is_refused_before_it_is_sent(quiet_host, redis_client):
    """The hedge leg's paper account holds 5 USDT at 1x: hedging a 0.0013 BTC maker fill with 1
    contract (0.001 BTC, ~60 USDT of notional) needs ~60 USDT of initial margin. The leg's
    pre-trade margin check refuses it before anything reaches the venue; the hedger treats it as a
    refused hedge: quoting stops, the retry is refused too, and the incident names the exposure
    left. Nothing is hedged silently, nothing is sent."""
    from apps.bots.models import Bot, BotEvent
    from apps.bots.services import bot_start
    from apps.core.models import Incident
    from apps.orders.models import Fill, Order
    from trading.instruments import Side
    from workers import lifecycle, supervisor

    bot = _spot_perp_bot("thin margin", hedge_usdt="5", leverage=1)
    user = bot.owner
    books = Books(redis_client)
    prefix = bot.client_id_prefix
    try:
        bot_start(bot=bot, actor=user)
        supervisor.tick()
        assert wait_until(lambda: _open(bot, "buy") and _open(bot, "sell"), 20), "the bot never quoted"
        # the hedge leg's mark is known once the bot's status has been written (every second)
        assert wait_until(lambda: _status(redis_client, bot.pk).get("hedged", {}).get("hedge_perp"), 10)
        time.sleep(1.1)
        books.trade(SPOT, "BTC/USDT", 5_996_990, 130, Side.SELL)
        failed = BotEvent.objects.filter(bot=bot, code="hedge_failed")
        assert wait_until(failed.exists, 15), list(BotEvent.objects.filter(bot=bot).values_list("code", "message"))
        message = failed.first().message
        assert "insufficient_margin" in message and "free margin" in message, message
        assert "pre-trade margin check" in message
        incident = Incident.objects.filter(bot=bot, kind="hedge")
        assert wait_until(incident.exists, 10)
        assert "0.0013" in incident.first().message  # the exposure left
        assert wait_until(lambda: not _open(bot, "buy") and not _open(bot, "sell"), 10), "quoting did not stop"
        time.sleep(1.0)
        # nothing was sent to the hedge venue: no hedge order row, no hedge fill
        assert not Order.objects.filter(bot=bot, client_order_id__startswith=prefix + "h-").exists()
        assert not Fill.objects.filter(bot=bot, client_order_id__startswith=prefix + "h-").exists()
        assert _exposure(redis_client, bot.pk) == Decimal("0.0013")
    finally:
        books.close()
        Bot.objects.filter(pk=bot.pk).update(desired_state="stopped")
        lifecycle.apply(bot.pk)
        assert wait_until(lambda: Bot.objects.get(pk=bot.pk).actual_state == "stopped", 30)
