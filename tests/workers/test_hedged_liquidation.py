"""A hosted hedged bot's PAPER perpetual leg is liquidated (``workers/hedged_liquidation.py``).

The perp-to-perp bot of ``test_hedged_perp_perp`` (maker on ``sim:gamma``, 10x; hedge on
``sim:delta``, 5x isolated, 3000 USDT), real in-process host, Redis and PostgreSQL; the test
publishes both books and prints the trade. Worked numbers:

- a seller takes the maker bid: +2 contracts (0.002 BTC) at 59951.9 on gamma, hedged at once with
  -2 contracts at 59999.9 on delta (taker);
- the short hedge leg's isolated margin is 0.002 x 59999.9 / 5 = 23.99996 USDT; Binance's first
  USD-M bracket (MMR 0.4 %, no deduction) puts its liquidation price at
  (23.99996 + 0.002 x 59999.9) / (0.002 x 1.004) = 143.99976 / 0.002008 = 71713.0279.. and its
  bankruptcy price (margin used up) at 59999.9 + 23.99996 / 0.002 = 71999.88;
- delta's book spikes to a mid of 71800.1 and comes straight back: the leg is closed at 71999.88,
  a loss of 23.99996 USDT (its whole margin), one Fill row ``liq``; the maker's 0.002 BTC long is
  left unhedged and quoting stops, nothing is re-hedged;
- a new owner (another host, the first one gone; delta's book held at the spike) rebuilds the
  hedge leg flat from the fills and the liquidation row, books the loss once, writes no second
  row, keeps quoting stopped and hedges nothing.
"""

from __future__ import annotations

import time
from decimal import Decimal
from fractions import Fraction

import pytest

from tests.workers.helpers import wait_until
from tests.workers.test_hedged_legs import Books, _exposure, _open, _status
from tests.workers.test_hedged_perp_perp import DELTA, GAMMA, PERP, _perp_perp_bot

pytestmark = [pytest.mark.django_db(transaction=True)]

CALM = ([(599_999, 5_000)], [(600_001, 5_000)])  # 59999.9 / 60000.1
SPIKE = ([(718_000, 5_000)], [(718_002, 5_000)])  # mid 71800.1: over the short leg's liquidation price
WB = Decimal("0.002") * Decimal("59999.9") / 5  # 23.99996
LIQ = (Fraction(WB) + Fraction(2, 1000) * Fraction("59999.9")) / (Fraction(2, 1000) * Fraction("1.004"))
BANKRUPTCY = Decimal("71999.88")


def _hedged(redis_client, bot) -> dict:
    return _status(redis_client, bot.pk).get("hedged", {})


def _host():
    """A host that runs bots but no feeds: the test publishes the books itself."""
    from workers.host import Host

    h = Host(ttl_ms=3000, run_feeds=False)
    h.start_thread()
    assert h.started.wait(5)
    return h


def _last_pnl(bot) -> tuple | None:
    """(realized, position) of the bot's newest PnL snapshot."""
    from apps.portfolio.models import PnlSnapshot

    last = PnlSnapshot.objects.filter(bot=bot).order_by("-ts").first()
    return None if last is None else (last.realized, last.position)


def _stop(bot) -> None:
    from apps.bots.models import Bot
    from workers import lifecycle

    Bot.objects.filter(pk=bot.pk).update(desired_state="stopped")
    lifecycle.apply(bot.pk)
    assert wait_until(lambda: Bot.objects.get(pk=bot.pk).actual_state == "stopped", 30)


def _start(bot) -> None:
    from apps.bots.models import Bot
    from apps.bots.services import bot_start
    from workers import supervisor

    bot_start(bot=Bot.objects.get(pk=bot.pk), actor=bot.owner)

    def running() -> bool:
        supervisor.tick()  # (again) once the last owner has let the bot go
        return Bot.objects.get(pk=bot.pk).actual_state == "running"

    assert wait_until(running, 20), (
        Bot.objects.filter(pk=bot.pk).values("desired_state", "actual_state", "state_reason").get()
    )


def test_an_isolated_short_hedge_leg_spiked_through_its_liquidation_price_is_closed_once(clean_redis, redis_client):
    from apps.bots.models import BotEvent
    from apps.core.models import Incident
    from apps.notifications.models import Delivery
    from apps.notifications.services import channel_create, rule_create
    from apps.orders.models import Fill, Order
    from trading.contracts import to_decimal
    from trading.instruments import Side
    from workers import supervisor

    bot = _perp_perp_bot()
    channel = channel_create(owner=bot.owner, kind="email", name="mail", config={"address": "trader@example.com"})
    rule_create(owner=bot.owner, event_kind="risk_breach", channels=[channel])
    hedge_account = bot.params["hedge_account"]
    prefix = bot.client_id_prefix
    books = Books(redis_client)
    books.books = {(GAMMA, PERP): ([(599_900, 5_000)], [(600_100, 5_000)]), (DELTA, PERP): CALM}
    hedge_orders = Order.objects.filter(bot=bot, client_order_id__startswith=prefix + "h-")
    liq_rows = Fill.objects.filter(bot=bot, liquidity="liq")
    hosts = [_host()]
    try:
        _start(bot)
        assert wait_until(lambda: _open(bot, "buy") and _open(bot, "sell"), 20), "the bot never quoted"
        books.trade(GAMMA, PERP, 599_519, 2, Side.SELL)
        assert wait_until(lambda: hedge_orders.filter(status="filled").count() == 1, 15), "no hedge"

        def hedge_perp():
            h = _hedged(redis_client, bot).get("hedge_perp") or {}
            return h if h.get("position_contracts") == "-0.002" and h.get("liquidation_price") else None

        before = wait_until(hedge_perp, 10)
        assert before, _hedged(redis_client, bot)
        assert Decimal(before["liquidation_price"]) == to_decimal(LIQ, 8)  # 71713.0279..

        # the spike and the recovery, back to back (the bot may see only the recovered book)
        books.books[(DELTA, PERP)] = SPIKE
        books.publish()
        books.books[(DELTA, PERP)] = CALM
        books.publish()
        assert wait_until(liq_rows.exists, 10), list(BotEvent.objects.filter(bot=bot).values_list("code", "message"))
        row = liq_rows.get()
        assert row.venue_trade_id.startswith("liquidation-") and row.venue_trade_id.endswith("-hedge")
        assert (row.client_order_id, row.account_id, row.side) == ("", hedge_account, "buy")  # the short closed
        assert (row.price, row.quantity, row.fee) == (BANKRUPTCY, Decimal("0.002"), Decimal(0))
        assert row.realized_pnl == -WB  # the leg's whole margin

        incident = Incident.objects.filter(bot=bot, kind="liquidation")
        assert wait_until(incident.exists, 10)
        inc = incident.get()
        assert inc.data["leg"] == "hedge" and inc.data["trade_id"] == row.venue_trade_id
        assert Decimal(inc.data["mark"]) == Decimal("71800.1")  # the spike's mid, not the recovered book's
        assert Decimal(inc.data["liquidation_price"]) == to_decimal(LIQ, 8)
        assert Decimal(inc.data["bankruptcy_price"]) == BANKRUPTCY and Decimal(inc.data["pnl"]) == -WB
        assert Decimal(inc.data["exposure"]) == Decimal("0.002")
        assert "hedge leg (sim:delta BTC/USDT:USDT, isolated)" in inc.message
        assert "exposure 0.002 BTC left unhedged" in inc.message
        delivery = Delivery.objects.filter(channel=channel, event_kind="risk_breach",
                                           dedupe_key__startswith=f"liquidation:{bot.pk}:")  # fmt: skip
        assert wait_until(delivery.exists, 10)
        assert "hedge leg" in delivery.get().payload["body"] and "resume quoting" in delivery.get().payload["body"]

        # quoting stopped (quotes cancelled), the hedge leg flat and its loss booked, the maker's
        # 0.002 BTC left unhedged and not hedged again
        assert wait_until(lambda: _hedged(redis_client, bot).get("halted") == "liquidated", 5)
        assert wait_until(lambda: not _open(bot, "buy") and not _open(bot, "sell"), 10), "quoting did not stop"
        assert wait_until(lambda: _exposure(redis_client, bot.pk) == Decimal("0.002"), 5)
        after = _hedged(redis_client, bot)["hedge_perp"]
        assert after["position_contracts"] == "0" and after["liquidation_price"] is None
        assert BotEvent.objects.filter(bot=bot, code="liquidated", kind="hedge").exists()
        assert not Incident.objects.filter(bot=bot, kind="hedge").exists()  # one incident, the liquidation's
        time.sleep(1.5)
        assert hedge_orders.count() == 1 and liq_rows.count() == 1
        # the leg's loss in the hedged PnL snapshots (each second)
        assert wait_until(lambda: _last_pnl(bot) == (-WB, Decimal("0.002")), 10), _last_pnl(bot)  # the maker's long

        # the owner goes away (its lease released, the bot still wanted) with delta's book back at
        # the spike; another host takes over: nothing left to liquidate, nothing hedged
        books.books[(DELTA, PERP)] = SPIKE
        hosts.pop().stop()
        hosts.append(_host())
        take_overs = BotEvent.objects.filter(bot=bot, code="take_over")
        assert wait_until(lambda: supervisor.tick() and take_overs.count() == 2, 20), "no take-over"
        hold = BotEvent.objects.filter(bot=bot, code="liquidated_hold")
        assert wait_until(hold.exists, 10)
        assert "the hedge leg was liquidated" in hold.get().message
        take_over = take_overs.order_by("-ts").first()
        assert "maker position 2 lots, hedge position 0 lots, exposure 0.002" in take_over.message

        def flat_leg():
            h = _hedged(redis_client, bot)
            return h if (h.get("hedge_perp") or {}).get("position_contracts") == "0" else None

        status = wait_until(flat_leg, 10)
        assert status and status["halted"] == "liquidated" and Decimal(status["exposure"]) == Decimal("0.002")
        time.sleep(2.0)
        assert liq_rows.count() == 1 and hedge_orders.count() == 1  # not liquidated twice, not re-hedged
        assert not _open(bot, "buy") and not _open(bot, "sell")
        _stop(bot)
        hosts.pop().stop()  # its writers drained
        assert _last_pnl(bot) == (-WB, Decimal("0.002"))  # the loss booked once
    finally:
        books.close()
        for host in hosts:
            host.stop()
