"""A LIVE perpetual bot takes the exchange's position from its stream (ccxt ``watchPositions`` on
the fake Binance USD-M user-data stream: listen key, websocket, ``ACCOUNT_UPDATE`` frames) as
it arrives, between REST polls, and keeps working on the poll while the stream is down."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from tests.workers.helpers import wait_until
from tests.workers.test_live_perp import RAW, feed_until, make_perp_bot, open_orders, state, usdm  # noqa: F401
from tests.workers.test_live_venue import fake_binance, host  # noqa: F401 - fixtures

pytestmark = [pytest.mark.django_db(transaction=True)]


def live_perp(host, bot):  # noqa: F811
    runner = host.bots.get(bot.pk)
    return getattr(getattr(runner, "venue", None), "perp", None)


def quoting(fake_binance, usdm, redis_client, bot, host):  # noqa: F811
    from workers import supervisor

    supervisor.tick()
    assert feed_until(redis_client, lambda: len(open_orders(fake_binance, usdm)) >= 2, 30), state(bot)
    perp = wait_until(lambda: live_perp(host, bot), 5)
    assert perp is not None and perp.stream is not None
    return perp


def exchange_contracts(perp) -> Decimal:
    return sum((r.contracts for r in perp.reports), Decimal(0))


def test_the_stream_shows_a_fill_and_a_position_closed_behind_the_bot_before_any_poll(
    host,  # noqa: F811
    fake_binance,  # noqa: F811
    usdm,  # noqa: F811
    redis_client,
    settings,
):
    """The poll is a minute apart: only the stream can tell the bot anything in this test."""
    from apps.core.models import Incident
    from apps.orders.models import Fill

    settings.PERP_POLL_MS = 60_000
    settings.PERP_STREAM_CONFIRM_MS = 2_000
    bot = make_perp_bot({"leverage": 5, "margin_mode": "cross"})
    perp = quoting(fake_binance, usdm, redis_client, bot, host)
    stream = usdm.stream
    assert wait_until(lambda: fake_binance.run(lambda: len(stream.sockets)) == 1, 10)
    assert fake_binance.run(fake_binance.server.calls, "POST", "/fapi/v1/listenKey")  # ccxt's own listen key

    buy = next(o for o in open_orders(fake_binance, usdm) if o["side"] == "BUY")
    trade = fake_binance.run(usdm.fill, buy["clientOrderId"], "0.004")
    assert wait_until(lambda: exchange_contracts(perp) == Decimal("0.004"), 5), perp.reports
    assert perp.reads == 0 and perp.stream.updates >= 1  # no poll yet: the stream said it
    report = perp.reports[0]
    assert report.entry_price == Decimal(buy["price"]) and report.position_side == "both"
    assert wait_until(lambda: Fill.objects.filter(bot=bot, venue_trade_id=trade["id"]).exists(), 10)
    assert wait_until(lambda: perp.runner.engine.perp.position.net_lots == 4, 5)
    # The exchange counted the fill before the bot booked it: that is no difference.
    time.sleep(2.5)  # past PERP_STREAM_CONFIRM_MS
    assert perp.adopted == 0 and not Incident.objects.filter(bot=bot).exists()
    reads = perp.reads

    # Closed behind the bot's back: the stream shows it, a read soon after confirms it.
    fake_binance.run(usdm.move_position, RAW, "0")
    incident = feed_until(redis_client, lambda: Incident.objects.filter(bot=bot, kind="position_mismatch").first(), 15)
    assert incident is not None
    assert incident.data == {"ours": "0.004", "venue": "0", "tolerance": "0"}
    assert perp.reads == reads + 1  # the one read the stream asked for, not the minute poll
    assert perp.runner.engine.perp.position.net_lots == 0 and perp.adopted == 1


def test_a_dropped_stream_leaves_the_poll_working_and_the_stream_is_used_again_once_back(
    host,  # noqa: F811
    fake_binance,  # noqa: F811
    usdm,  # noqa: F811
    redis_client,
    settings,
):
    from apps.core.models import Incident
    from apps.orders.models import Fill

    settings.PERP_POLL_MS = 1_000
    settings.PERP_STREAM_CONFIRM_MS = 1_000
    bot = make_perp_bot({"leverage": 5, "margin_mode": "cross"})
    perp = quoting(fake_binance, usdm, redis_client, bot, host)
    stream = usdm.stream
    assert wait_until(lambda: fake_binance.run(lambda: len(stream.sockets)) == 1, 10)

    # The stream drops and cannot come back.
    fake_binance.run(setattr, stream, "accepting", False)
    fake_binance.call(stream.drop())
    assert wait_until(lambda: perp.stream.failures >= 1 and not perp.stream.up, 10)
    updates = perp.stream.updates
    buy = next(o for o in open_orders(fake_binance, usdm) if o["side"] == "BUY")
    trade = fake_binance.run(usdm.fill, buy["clientOrderId"], "0.004")
    assert wait_until(lambda: Fill.objects.filter(bot=bot, venue_trade_id=trade["id"]).exists(), 10)
    assert wait_until(lambda: exchange_contracts(perp) == Decimal("0.004"), 5)  # from the poll
    fake_binance.run(usdm.move_position, RAW, "0")
    incident = feed_until(redis_client, lambda: Incident.objects.filter(bot=bot, kind="position_mismatch").first(), 15)
    assert incident is not None and incident.data["venue"] == "0"
    assert perp.stream.updates == updates and fake_binance.run(lambda: stream.refused) >= 1
    assert state(bot)[0] == "running"
    assert feed_until(redis_client, lambda: len(open_orders(fake_binance, usdm)) >= 2, 15), "stopped quoting"

    # Back: the stream reconnects and its updates are taken again.
    settings.PERP_POLL_MS = 60_000  # the poll sleeping through what follows
    fake_binance.run(setattr, stream, "accepting", True)
    assert wait_until(lambda: fake_binance.run(lambda: len(stream.sockets)) == 1, 40), perp.stream.last_error
    fake_binance.run(usdm.move_position, RAW, "0.002", "60000")
    assert wait_until(lambda: exchange_contracts(perp) == Decimal("0.002"), 5), perp.reports
    assert perp.stream.up and perp.stream.updates == updates + 1
