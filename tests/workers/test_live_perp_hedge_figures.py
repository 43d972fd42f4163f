"""A LIVE hedge-mode perpetual bot against the fake Binance USD-M server through the real ccxt
``binanceusdm``: each leg's liquidation price and isolated wallet are the exchange's
(``positionRisk`` per leg), the liquidation-distance guard watches the exchange's figure (ours
would not pause here), a material difference from ours is a bot event, and a funding payment
(Binance's FUNDING_FEE row, no position side) is booked per leg by the legs' signed notional:
the long leg pays, the short leg receives."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest

from tests.workers.helpers import wait_until
from tests.workers.test_live_perp import RAW, feed_until, make_perp_bot, open_orders, state, stop, usdm  # noqa: F401
from tests.workers.test_live_venue import fake_binance, host  # noqa: F401 - fixtures

pytestmark = [pytest.mark.django_db(transaction=True)]


def events(bot, code: str) -> list:
    from apps.bots.models import BotEvent

    return list(BotEvent.objects.filter(bot=bot, code=code).order_by("ts"))


def test_a_hedge_bot_uses_the_exchanges_leg_figures_and_books_funding_per_leg(
    host,  # noqa: F811
    fake_binance,  # noqa: F811
    usdm,  # noqa: F811
    redis_client,
):
    from apps.orders.models import Fill
    from workers import supervisor

    bot = make_perp_bot(
        {
            "leverage": 5,
            "margin_mode": "isolated",
            "position_mode": "hedge",
            "limits": {"min_liquidation_distance": "0.05"},
        }
    )
    supervisor.tick()
    assert feed_until(redis_client, lambda: len(open_orders(fake_binance, usdm)) >= 2, 30), state(bot)
    runner = host.bots[bot.pk]
    perp, live = runner.engine.perp, runner.venue.perp
    # ccxt's own listen-key request (watchPositions' user-data stream) spent the account's budget
    assert wait_until(lambda: runner.venue.gateway.exchange.listen_key_requests >= 1, 10)

    orders = {o["side"]: o for o in open_orders(fake_binance, usdm)}
    buy = fake_binance.run(usdm.fill, orders["BUY"]["clientOrderId"], "0.004")
    sell = fake_binance.run(usdm.fill, orders["SELL"]["clientOrderId"], "0.002")
    assert wait_until(lambda: Fill.objects.filter(bot=bot, venue_trade_id__in=[buy["id"], sell["id"]]).count() == 2, 10)
    assert feed_until(
        redis_client, lambda: (perp.position.legs["long"].lots, perp.position.legs["short"].lots) == (4, -2), 10
    )
    own_long = perp.leg_liquidations["long"][1]
    assert 48_000 < own_long < 48_300  # 5x isolated: wallet 0.004 x ~60,000 / 5, MMR 0.4 %

    # Binance's figures for each leg (its own arithmetic; the fake is told them)
    fake_binance.run(usdm.set_leg_figures, RAW, "LONG", "50000.00000000", "48.50000000")
    fake_binance.run(usdm.set_leg_figures, RAW, "SHORT", "70000.50000000", "24.25000000")

    def exchange_figures():
        return perp.leg_sources.get("long") == "exchange" and perp.leg_sources.get("short") == "exchange"

    assert feed_until(redis_client, exchange_figures, 15), (perp.leg_sources, perp.venue_legs)
    assert perp.leg_liquidations["long"] == (1, Fraction(50_000))
    assert perp.leg_liquidations["short"] == (-1, Fraction("70000.5"))
    legs = perp.snapshot()["legs"]
    assert legs["long"]["liquidation_price"] == legs["long"]["exchange_liquidation_price"] == "50000.00000000"
    assert legs["long"]["exchange_isolated_wallet"] == "48.50000000"
    assert legs["short"]["exchange_liquidation_price"] == "70000.50000000"
    assert legs["short"]["exchange_isolated_wallet"] == "24.25000000"
    from apps.dashboard.perp import bot_perp

    def published():  # the bot's live status, which the page and GET .../perp/ read
        long = (((bot_perp(bot_id=bot.pk) or {}).get("legs")) or {}).get("long") or {}
        return long.get("exchange_liquidation_price") == "50000.00000000" and long

    shown = wait_until(published, 5)
    assert shown and shown["liquidation_source"] == "exchange" and shown["exchange_isolated_wallet"] == "48.50000000"

    # ours differs by more than 0.5 %: one event per leg, naming both figures
    said = feed_until(redis_client, lambda: len(events(bot, "liquidation_disagree")) >= 2, 10)
    assert said, [e.message for e in events(bot, "liquidation_disagree")]
    by_leg = {e.data["leg"]: e for e in events(bot, "liquidation_disagree")}
    assert by_leg["long"].data["exchange"] == "50000.00000000"
    assert Decimal(by_leg["long"].data["own"]) == Decimal(f"{float(own_long):.8f}")
    assert "the exchange's liquidation price of the long leg is 50000" in by_leg["long"].message
    reads = live.reads
    feed_until(redis_client, lambda: live.reads >= reads + 2, 10)
    assert len(events(bot, "liquidation_disagree")) == 2  # not repeated at every read

    # mark 52,000: 3.8 % from the exchange's 50,000 (pause at 5 %), 7.3 % from ours: it pauses
    fake_binance.call(usdm.set_mark(RAW, "52000.00000000"))
    assert feed_until(redis_client, lambda: perp.too_close, 15), (perp.mark, perp.liquidation)
    # the breach's bot event goes through the host's database writer: wait for it
    breach = wait_until(lambda: events(bot, "liquidation_distance"), 10)
    assert breach and "from the liquidation price 50000" in breach[-1].message
    fake_binance.call(usdm.set_mark(RAW, "60000.00000000"))
    assert feed_until(redis_client, lambda: not perp.too_close, 15)

    # Funding: one FUNDING_FEE row, no position side, -0.012 USDT on net long 0.002 (long 0.004 /
    # short 0.002): split by signed notional, the long leg pays 0.024 and the short receives 0.012
    fake_binance.run(usdm.pay_funding, RAW, "-0.01200000")
    paid = feed_until(redis_client, lambda: events(bot, "funding_paid"), 15)
    assert paid, [e.code for e in events(bot, "funding_received")]
    assert paid[0].data["legs"] == {"long": "-0.02400000", "short": "0.01200000"}
    assert "the long leg paid 0.024; the short leg received 0.012" in paid[0].message
    assert perp.leg_funding == {"long": Fraction("-0.024"), "short": Fraction("0.012")}
    assert perp.position.funding == Fraction("-0.012")
    legs = perp.snapshot()["legs"]
    assert (legs["long"]["funding"], legs["short"]["funding"]) == ("-0.02400000", "0.01200000")
    stop(bot)


def test_the_stream_gives_each_legs_isolated_wallet_between_polls(
    host,  # noqa: F811
    fake_binance,  # noqa: F811
    usdm,  # noqa: F811
    redis_client,
    settings,
):
    """The poll a minute apart: the first read after take-over, then only the user-data stream
    (``ACCOUNT_UPDATE`` with both legs, ``iw`` each) moves the legs' exchange figures."""
    from workers import supervisor

    settings.PERP_POLL_MS = 60_000
    bot = make_perp_bot({"leverage": 5, "margin_mode": "isolated", "position_mode": "hedge"})
    supervisor.tick()
    assert feed_until(redis_client, lambda: len(open_orders(fake_binance, usdm)) >= 2, 30), state(bot)
    runner = host.bots[bot.pk]
    perp, live = runner.engine.perp, runner.venue.perp
    assert wait_until(lambda: live.stream is not None and live.stream.up is not None, 5)
    reads = live.reads
    fake_binance.run(usdm.set_leg_figures, RAW, "LONG", "0", "48.10000000")
    fake_binance.run(usdm.set_leg_figures, RAW, "SHORT", "0", "12.05000000")
    orders = {o["side"]: o for o in open_orders(fake_binance, usdm)}
    fake_binance.run(usdm.fill, orders["BUY"]["clientOrderId"], "0.004")
    fake_binance.run(usdm.fill, orders["SELL"]["clientOrderId"], "0.002")

    def streamed():
        legs = perp.venue_legs
        return (
            legs.get("long") is not None
            and legs.get("short") is not None
            and (legs["long"].lots, legs["short"].lots) == (4, -2)
            and (perp.position.legs["long"].lots, perp.position.legs["short"].lots) == (4, -2)
        )

    assert feed_until(redis_client, streamed, 15), perp.venue_legs
    assert live.reads == reads  # no poll read in between: the stream gave them
    assert perp.venue_legs["long"].isolated_wallet == Fraction("48.1")
    assert perp.venue_legs["short"].isolated_wallet == Fraction("12.05")
    # no liquidation price streamed ("0": none): ours, on the exchange's wallet of each leg
    from trading.margin import liquidation_price

    pos = perp.position
    long = pos.legs["long"]
    expected = liquidation_price(
        perp.spec, perp.table, Fraction("48.1"), [(pos.contracts(long.lots), long.entry(False))]
    )
    assert perp.leg_liquidations["long"] == (1, expected) and perp.leg_sources["long"] == "own"
    legs = perp.snapshot()["legs"]
    assert legs["long"]["exchange_isolated_wallet"] == "48.10000000"
    assert legs["short"]["exchange_isolated_wallet"] == "12.05000000"
    stop(bot)
