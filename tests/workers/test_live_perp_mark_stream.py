"""A LIVE perpetual bot takes the mark price, funding rate and next funding time from the
exchange's mark price stream (ccxt ``watchMarkPrice`` on the fake Binance USD-M market stream,
``markPriceUpdate`` frames) as they arrive; the poll gives them while the stream is down or quiet,
and an absurd frame is dropped with its reason counted."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest

from tests.workers.helpers import wait_until
from tests.workers.test_live_perp import RAW, feed_until, make_perp_bot, open_orders, state, usdm  # noqa: F401
from tests.workers.test_live_perp_stream import quoting
from tests.workers.test_live_venue import fake_binance, host  # noqa: F401 - fixtures
from workers.perp_live import FUNDING_SOURCE
from workers.perp_mark_stream import STREAM_SOURCE

pytestmark = [pytest.mark.django_db(transaction=True)]

NEXT_MS = 1_900_000_028_800


def events(bot, code: str) -> list:
    from apps.bots.models import BotEvent

    return list(BotEvent.objects.filter(bot=bot, code=code).order_by("ts"))


def streaming(fake_binance, usdm, redis_client, bot, host):  # noqa: F811
    perp = quoting(fake_binance, usdm, redis_client, bot, host)
    assert perp.marks is not None
    assert wait_until(lambda: perp.marks.trusted, 10), perp.marks.last_error
    assert wait_until(lambda: events(bot, "mark_stream_live"), 5)
    return perp


def test_a_mark_and_funding_change_reach_risk_and_the_strategy_through_the_stream(
    host,  # noqa: F811
    fake_binance,  # noqa: F811
    usdm,  # noqa: F811
    redis_client,
    settings,
):
    """The poll is a minute apart: only the stream can move the mark and the funding here."""
    settings.PERP_POLL_MS = 60_000
    bot = make_perp_bot({"leverage": 5, "margin_mode": "isolated"})  # a liquidation price near enough
    perp = streaming(fake_binance, usdm, redis_client, bot, host)
    risk = perp.runner.engine.perp
    assert risk.funding_source == STREAM_SOURCE
    buy = next(o for o in open_orders(fake_binance, usdm) if o["side"] == "BUY")
    fake_binance.run(usdm.fill, buy["clientOrderId"], "0.004")
    assert wait_until(lambda: risk.position.net_lots == 4, 10)
    entry = Fraction(buy["price"])

    fake_binance.call(usdm.set_mark(RAW, "58000.00000000", ("0.00050000", NEXT_MS)))
    assert wait_until(lambda: risk.mark == 58000, 5), risk.mark
    snap = risk.snapshot()
    assert Decimal(snap["unrealized"]) == Decimal("0.004") * (Decimal(58000) - Decimal(buy["price"]))
    assert Fraction(snap["mark_price"]) == 58000
    liq = risk.liquidation
    assert liq is not None and 40000 < liq < 58000
    assert snap["liquidation_distance"] == float(abs(58000 - liq) / 58000)
    assert risk.position.unrealized(risk.mark) == Fraction(4, 1000) * (58000 - entry)
    ctx = perp.runner.engine.ctx
    assert feed_until(redis_client, lambda: ctx.funding_rate == 0.0005, 10), ctx.funding_rate
    assert ctx.next_funding_ts == NEXT_MS * 1_000_000
    assert perp.reads == 0  # no poll: the stream said it all

    # The bot page's perp card (its owner's live status) shows the streamed figures.
    from apps.dashboard.perp import bot_perp

    def card():
        figures = bot_perp(bot_id=bot.pk)
        return figures if figures and Decimal(figures["mark_price"] or 0) == 58000 else None

    figures = feed_until(redis_client, card, 15)
    assert figures, bot_perp(bot_id=bot.pk)
    assert figures["funding_source"] == STREAM_SOURCE and Decimal(figures["funding_rate"]) == Decimal("0.0005")


def test_absurd_mark_frames_are_dropped_and_counted_and_a_stream_gone_quiet_falls_back_to_the_poll(
    host,  # noqa: F811
    fake_binance,  # noqa: F811
    usdm,  # noqa: F811
    redis_client,
    settings,
):
    settings.PERP_POLL_MS = 60_000
    settings.PERP_MARK_STALE_MS = 2_000
    bot = make_perp_bot({"leverage": 5, "margin_mode": "cross"})
    perp = streaming(fake_binance, usdm, redis_client, bot, host)
    marks, risk = perp.marks, perp.runner.engine.perp
    fake_binance.call(usdm.set_mark(RAW, "60100.00000000"))
    assert wait_until(lambda: risk.mark == 60100, 5)
    stream = usdm.marks
    fake_binance.run(setattr, stream, "silent", True)  # only the frames below

    def frame(**fields) -> str:
        import json

        return json.dumps({**fake_binance.run(stream.frame, RAW), **fields})

    # one at a time: ccxt hands a watcher the newest update only, so frames sent faster than the
    # loop takes them would replace each other before they are counted
    for n, bad in enumerate(({"p": "-5"}, {"p": "abc"}, {"p": "1e400"}, {"r": "abc"}), 1):
        fake_binance.call(stream.push_raw(RAW, frame(**bad)))
        assert wait_until(lambda n=n: sum(marks.dropped.values()) == n, 5), (bad, marks.dropped)
    assert wait_until(lambda: marks.dropped["bad_mark"] == 3 and marks.dropped["bad_funding_rate"] == 1, 5), (
        marks.dropped
    )
    assert risk.mark == 60100 and marks.trusted and perp.marks._task is not None and not perp.marks._task.done()
    fake_binance.call(stream.push_raw(RAW, frame(p="60200.00000000")))
    assert wait_until(lambda: risk.mark == 60200, 5)  # the loop goes on

    # A bare 1e400 number is not JSON ccxt can read: its connection stops delivering, the stream
    # goes quiet, is no longer trusted (said in the event log), the poll reads the mark at once,
    # and the connection is reset and subscribed again.
    fake_binance.run(usdm.mark_prices.__setitem__, RAW, "60300.00000000")
    fake_binance.call(stream.push_raw(RAW, frame(p="__INF__").replace('"__INF__"', "1e400")))
    assert wait_until(lambda: events(bot, "mark_stream_stale"), 10), marks.last_error
    (stale,) = events(bot, "mark_stream_stale")
    assert "no mark price update for 2 s" in stale.message and "fetchFundingRate" in stale.message
    assert wait_until(lambda: perp.reads >= 1 and risk.mark == 60300, 5), (perp.reads, risk.mark)
    assert marks.stale == 1 and state(bot)[0] == "running"
    fake_binance.run(setattr, stream, "silent", False)
    assert wait_until(lambda: marks.trusted and len(events(bot, "mark_stream_live")) == 2, 15), marks.last_error
    assert fake_binance.run(lambda: stream.connections) == 2


def test_a_dropped_stream_hands_the_mark_and_funding_to_the_poll_until_it_is_back(
    host,  # noqa: F811
    fake_binance,  # noqa: F811
    usdm,  # noqa: F811
    redis_client,
    settings,
):
    settings.PERP_POLL_MS = 1_000
    bot = make_perp_bot({"leverage": 5, "margin_mode": "cross"})
    perp = streaming(fake_binance, usdm, redis_client, bot, host)
    marks, risk = perp.marks, perp.runner.engine.perp
    stream = usdm.marks

    fake_binance.run(setattr, stream, "accepting", False)
    fake_binance.call(stream.drop())
    assert wait_until(lambda: not marks.trusted and marks.failures >= 1, 10)
    assert wait_until(lambda: events(bot, "mark_stream_down"), 5)
    assert "read by the poll" in events(bot, "mark_stream_down")[0].message
    assert risk.funding_source == FUNDING_SOURCE
    # Only REST knows the new figures now.
    fake_binance.run(usdm.mark_prices.__setitem__, RAW, "61000.00000000")
    fake_binance.run(usdm.funding.__setitem__, RAW, ("-0.00020000", NEXT_MS))
    assert wait_until(lambda: risk.mark == 61000, 10), risk.mark
    ctx = perp.runner.engine.ctx
    assert feed_until(redis_client, lambda: ctx.funding_rate == -0.0002, 10), ctx.funding_rate
    assert ctx.next_funding_ts == NEXT_MS * 1_000_000
    assert fake_binance.run(lambda: stream.refused) >= 1 and state(bot)[0] == "running"

    # Back: the stream's figures are used again and the poll leaves them alone.
    settings.PERP_POLL_MS = 60_000
    fake_binance.run(setattr, stream, "accepting", True)
    assert wait_until(lambda: marks.trusted, 40), marks.last_error
    assert risk.funding_source == STREAM_SOURCE
    assert wait_until(lambda: len(events(bot, "mark_stream_live")) == 2, 5)
    fake_binance.call(usdm.set_mark(RAW, "61500.00000000"))
    assert wait_until(lambda: risk.mark == 61500, 5)
