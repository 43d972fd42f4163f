"""A LIVE perpetual bot against the fake Binance USD-M server (real ccxt ``binanceusdm``, real
PostgreSQL and Redis, a host in this process): the funding payments the exchange makes
(``/fapi/v1/income`` ``FUNDING_FEE`` rows in the recorded shape) are booked once each, across
polls and across a take-over by a new host, into the PnL snapshot's funding column and the bot's
page/API figures; a new owner after the host stopped without cleanup reconciles orders, fills
and position with the exchange and carries on; in isolated mode the bot's own liquidation price
after a fill (before the exchange's next read) comes from the position's isolated margin."""

from __future__ import annotations

import re
from decimal import Decimal
from fractions import Fraction

import pytest

from tests.workers.helpers import wait_until
from tests.workers.test_live_perp import RAW, feed_until, make_perp_bot, open_orders, state, stop, usdm  # noqa: F401
from tests.workers.test_live_venue import fake_binance, host  # noqa: F401 - fixtures

pytestmark = [pytest.mark.django_db(transaction=True)]


def booked_funding(bot) -> list[tuple[str, Decimal]]:
    from apps.derivatives.models import FundingPayment

    return list(FundingPayment.objects.filter(bot=bot).order_by("ts").values_list("payment_id", "amount"))


def funding_events(bot) -> list[dict]:
    from apps.bots.models import BotEvent

    return list(BotEvent.objects.filter(bot=bot, kind="funding").order_by("ts").values_list("data", flat=True))


def test_funding_payments_are_read_back_and_booked_once_each_into_the_snapshots_and_the_page(
    host,  # noqa: F811
    fake_binance,  # noqa: F811
    usdm,  # noqa: F811
    redis_client,
):
    from apps.bots.models import Bot
    from apps.dashboard.perp import bot_perp
    from apps.orders.models import Fill
    from apps.portfolio.models import PnlSnapshot
    from tests.apps.bots.factories import api
    from workers import supervisor

    bot = make_perp_bot({"leverage": 5, "margin_mode": "cross"})
    supervisor.tick()
    assert feed_until(redis_client, lambda: len(open_orders(fake_binance, usdm)) >= 2, 30), state(bot)
    buy = next(o for o in open_orders(fake_binance, usdm) if o["side"] == "BUY")
    trade = fake_binance.run(usdm.fill, buy["clientOrderId"], "0.004")
    assert wait_until(lambda: Fill.objects.filter(bot=bot, venue_trade_id=trade["id"]).exists(), 10)
    perp = host.bots[bot.pk].engine.perp

    # A funding time: the long 0.004 pays 0.004 x 59,990 x 0.0125 % = 0.02999500 USDT.
    paid = fake_binance.run(usdm.pay_funding, RAW, "-0.029995")
    assert feed_until(redis_client, lambda: perp.position.funding == Fraction("-0.029995"), 10), perp.position.funding
    assert wait_until(lambda: booked_funding(bot) == [(paid["tranId"], Decimal("-0.029995"))], 5), booked_funding(bot)
    # More reads (every 0.4 s) read the same income row again: still booked once.
    reads = host.bots[bot.pk].venue.perp.reads
    assert feed_until(redis_client, lambda: host.bots[bot.pk].venue.perp.reads >= reads + 3, 10)
    assert perp.position.funding == Fraction("-0.029995") and len(booked_funding(bot)) == 1
    events = funding_events(bot)
    assert (
        len(events) == 1
        and events[0]["payment_id"] == paid["tranId"]
        and Decimal(events[0]["amount"]) == Decimal("-0.029995")
    )
    income = fake_binance.run(fake_binance.server.calls, "GET", "/fapi/v1/income")
    assert income and income[-1].query["incomeType"] == "FUNDING_FEE" and income[-1].query["symbol"] == RAW

    # A payment received next: the total is their sum, in the snapshots, the page and the API.
    received = fake_binance.run(usdm.pay_funding, RAW, "0.01")
    assert feed_until(redis_client, lambda: perp.position.funding == Fraction("-0.019995"), 10)
    # stored by the bot's database writer a moment after it is booked in memory
    assert wait_until(lambda: [p for p, _ in booked_funding(bot)] == [paid["tranId"], received["tranId"]], 5)

    def snapshot():
        return PnlSnapshot.objects.filter(bot=bot, funding=Decimal("-0.019995")).order_by("-ts").first()

    snap = feed_until(redis_client, snapshot, 10)
    assert snap is not None, list(PnlSnapshot.objects.filter(bot=bot).values_list("funding", flat=True)[:5])
    figures = wait_until(lambda: (bot_perp(bot_id=bot.pk) or {}).get("funding") == "-0.01999500", 5)
    assert figures, bot_perp(bot_id=bot.pk)
    owner = Bot.objects.get(pk=bot.pk).owner
    response = api(owner).get(f"/api/v1/bots/{bot.pk}/perp/")
    assert response.status_code == 200 and response.json()["funding"] == "-0.01999500", response.content
    page = _page(owner, bot)
    shown = re.search(r'<th[^>]*>Funding paid</th><td id="perp-funding">(?:<[^>]+>)*(-0\.02\d*)<', page)
    assert shown, page[page.find("Funding") - 200 :][:600]
    stop(bot)


def _page(owner, bot) -> str:
    from django.test import Client

    client = Client()
    client.force_login(owner)
    return client.get(f"/bots/{bot.pk}/").content.decode()


def test_isolated_liquidation_between_the_exchanges_reads_comes_from_the_positions_margin(
    host,  # noqa: F811
    fake_binance,  # noqa: F811
    usdm,  # noqa: F811
    redis_client,
    settings,
):
    """Long 0.004 at 10x isolated, no read of the exchange since the fill: the isolated wallet
    is 0.004 x price / 10 and the liquidation price price x 0.9 / 0.996 (bracket 1, MMR 0.4 %),
    not None as the account's 10,000 USDT wallet would make it."""
    from apps.orders.models import Fill
    from workers import supervisor

    settings.PERP_POLL_MS = 120_000  # no read of the exchange during the test
    bot = make_perp_bot({"leverage": 10, "margin_mode": "isolated"})
    supervisor.tick()
    assert feed_until(redis_client, lambda: len(open_orders(fake_binance, usdm)) >= 2, 30), state(bot)
    buy = next(o for o in open_orders(fake_binance, usdm) if o["side"] == "BUY")
    trade = fake_binance.run(usdm.fill, buy["clientOrderId"], "0.004")
    assert wait_until(lambda: Fill.objects.filter(bot=bot, venue_trade_id=trade["id"]).exists(), 10)
    perp = host.bots[bot.pk].engine.perp
    assert wait_until(lambda: perp.position.net_lots == 4, 5)
    price = Fraction(buy["price"])
    assert host.bots[bot.pk].venue.perp.reads == 0
    assert perp.isolated.wallet == Fraction("0.004") * price / 10
    assert perp.liquidation == price * Fraction("0.9") / Fraction("0.996"), float(perp.liquidation or 0)
    assert abs(float(perp.liquidation) - 54_163) < 100  # the bid near 59,940: about 54,160
    stop(bot)


def test_a_new_owner_after_the_host_stopped_without_cleanup_reconciles_with_the_exchange_and_carries_on(
    host,  # noqa: F811
    fake_binance,  # noqa: F811
    usdm,  # noqa: F811
    redis_client,
):
    """The owner's host stops without cancelling anything (its loop ends, the orders stay on the
    exchange); while no one owns the bot the exchange fills the rest of its bid and part of its
    ask and pays funding; a second host takes the bot over: it adopts the open order, records
    each missed fill once, books each funding payment once, holds the exchange's position and
    quotes on, and a fill after the take-over is booked too."""
    from apps.bots.models import BotEvent
    from apps.core.models import Incident
    from apps.orders.models import Fill
    from workers import supervisor
    from workers.host import Host

    bot = make_perp_bot({"leverage": 5, "margin_mode": "cross"})
    supervisor.tick()
    assert feed_until(redis_client, lambda: len(open_orders(fake_binance, usdm)) >= 2, 30), state(bot)
    buy = next(o for o in open_orders(fake_binance, usdm) if o["side"] == "BUY")
    first = fake_binance.run(usdm.fill, buy["clientOrderId"], "0.002")
    assert wait_until(lambda: Fill.objects.filter(bot=bot, venue_trade_id=first["id"]).exists(), 10)
    old = host.bots[bot.pk]
    assert wait_until(lambda: old.engine.perp.position.net_lots == 2, 5)
    paid = fake_binance.run(usdm.pay_funding, RAW, "-0.015")
    assert feed_until(redis_client, lambda: booked_funding(bot) == [(paid["tranId"], Decimal("-0.015"))], 10)

    def both_sides():
        return {o["side"] for o in open_orders(fake_binance, usdm)} == {"BUY", "SELL"}

    assert feed_until(redis_client, both_sides, 10)
    host.stop()  # the loop ends: no cancel is sent, the orders stay on the exchange
    standing = open_orders(fake_binance, usdm)
    left = {o["clientOrderId"] for o in standing}
    bid = next((o for o in standing if o["side"] == "BUY"), None)
    ask = next((o for o in standing if o["side"] == "SELL"), None)
    assert bid is not None or ask is not None, standing  # (a requote may have been under way)
    # While no one owns the bot: its bid fills, a part of its ask, and funding is paid.
    unowned = []
    if bid is not None:
        rest = Decimal(bid["origQty"]) - Decimal(bid["executedQty"])
        unowned.append(fake_binance.run(usdm.fill, bid["clientOrderId"], f"{rest:f}"))
    if ask is not None:
        unowned.append(fake_binance.run(usdm.fill, ask["clientOrderId"], "0.001"))
    paid_unowned = fake_binance.run(usdm.pay_funding, RAW, "-0.01")
    exchange_lots = fake_binance.run(lambda: usdm.position(RAW).amount)

    other = Host(ttl_ms=3000, run_feeds=False)
    other.start_thread()
    assert other.started.wait(5)
    try:
        supervisor.tick()

        def new_owner_event():  # the second owner's take-over (the first one's was at its start)
            events = list(BotEvent.objects.filter(bot=bot, code="take_over").order_by("ts"))
            return events[1] if len(events) == 2 and bot.pk in other.bots else None

        event = feed_until(redis_client, new_owner_event, 30)
        assert event is not None, list(BotEvent.objects.filter(bot=bot).values_list("code", "message"))
        runner = other.bots[bot.pk]
        assert event.data["adopted"] == ([] if ask is None else [ask["clientOrderId"]]), event.data
        assert sorted(event.data["missed_fills"]) == sorted(t["id"] for t in unowned), event.data
        # Each exchange trade is one fill row.
        rows = list(Fill.objects.filter(bot=bot).values_list("venue_trade_id", flat=True))
        assert sorted(rows) == sorted([first["id"], *(t["id"] for t in unowned)]), rows
        # Position equal to the exchange's, funding booked once each (the one paid while unowned too).
        perp = runner.engine.perp
        assert perp.position.contracts(perp.position.net_lots) == Fraction(exchange_lots)
        assert wait_until(lambda: perp.position.funding == Fraction("-0.025"), 10), perp.position.funding
        assert wait_until(lambda: len(booked_funding(bot)) == 2, 5), booked_funding(bot)
        assert [p for p, _ in booked_funding(bot)] == [paid["tranId"], paid_unowned["tranId"]]
        assert len(funding_events(bot)) == 2
        # Reads of the exchange agree with the booked position: no mismatch.
        reads = runner.venue.perp.reads
        assert feed_until(redis_client, lambda: runner.venue.perp.reads >= reads + 2, 10)
        assert not Incident.objects.filter(bot=bot, kind="position_mismatch").exists()
        assert perp.position.funding == Fraction("-0.025") and len(booked_funding(bot)) == 2
        # Its margin balance is the exchange's wallet (which holds the funding, realized PnL and
        # fees booked before) plus the unrealized PnL, not the bot's history counted twice.
        wallet = fake_binance.run(lambda: usdm.wallet["USDT"])
        assert perp.margin_balance() == Fraction(wallet) + perp.position.unrealized(perp.mark)

        # It carries on: quotes again (the rest of the adopted ask stays), and a new fill is booked.
        def new_bid():
            return next(
                (o for o in open_orders(fake_binance, usdm) if o["side"] == "BUY" and o["clientOrderId"] not in left),
                None,
            )

        quote = feed_until(redis_client, new_bid, 20)
        assert quote is not None, open_orders(fake_binance, usdm)
        fourth = fake_binance.run(usdm.fill, quote["clientOrderId"], "0.001")
        assert wait_until(lambda: Fill.objects.filter(bot=bot, venue_trade_id=fourth["id"]).count() == 1, 10)
        after = fake_binance.run(lambda: usdm.position(RAW).amount)
        assert after == exchange_lots + Decimal("0.001")
        assert wait_until(lambda: perp.position.contracts(perp.position.net_lots) == Fraction(after), 5)
        assert Fill.objects.filter(bot=bot).count() == 2 + len(unowned)
        tokens = [
            int(e.message.rsplit(" ", 1)[1]) for e in BotEvent.objects.filter(bot=bot, code="owner").order_by("ts")
        ]
        assert len(tokens) == 2 and tokens[0] < tokens[1], tokens
    finally:
        other.stop()
