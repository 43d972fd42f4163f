"""Hosted hedged bot (paper, an in-process host on the real Redis and PostgreSQL, two sim venues)
with a faulty hedge venue (the paper venue's fault injection, workers/paper_faults.py, on the
hedge leg only): it answers 429, or its orders time out. In each case maker quoting stops at
once, the hedge is retried within the budget, an incident names the exposure left, and every
maker fill ends up hedged exactly once (never left unhedged silently, never hedged twice)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.workers.helpers import wait_until
from tests.workers.test_hedged_host import make_hedged_bot

pytestmark = [pytest.mark.django_db(transaction=True)]


def _legs(bot) -> tuple[list, list]:
    from apps.orders.models import Fill

    fills = list(Fill.objects.filter(bot=bot).order_by("ts", "id"))
    prefix = bot.client_id_prefix
    return ([f for f in fills if f.client_order_id.startswith(prefix + "m-")],
            [f for f in fills if f.client_order_id.startswith(prefix + "h-")])  # fmt: skip


def _signed(fills) -> Decimal:
    return sum((f.quantity if f.side == "buy" else -f.quantity for f in fills), Decimal(0))


def _first_order(hedges) -> Decimal:
    """The signed quantity of the first hedge order that filled (an IOC walking several levels
    fills in several trades)."""
    return _signed([f for f in hedges if f.client_order_id == hedges[0].client_order_id])


def _hedges_the_exposure(first: Decimal, exposure: Decimal) -> bool:
    """The first hedge that filled once the venue answered again works off the exposure the
    incident named: the opposite side, at most that much (all of it in one order, or part when
    the hedge book's depth ends and the next order takes the rest; that the legs then net to
    zero, hedged once, is checked by ``_stop_and_check_hedged_once``)."""
    return first != 0 and (first < 0) == (exposure > 0) and abs(first) <= abs(exposure)


def _hedge_leg(host, bot):
    assert wait_until(lambda: bot.pk in host.bots and "hedge" in getattr(host.bots[bot.pk].hedged, "legs", {}), 20)
    return host.bots[bot.pk].hedged.legs["hedge"]


def _faulty_until_first_failure(host, redis_client, bot, faults, failure_code: str):
    """Run the bot with ``faults`` on its hedge venue until a maker fill's hedge fails
    (``failure_code`` noted); check that maker quoting stopped and the incident names the
    exposure; then clear the faults. Returns the exposure the incident named."""
    from apps.bots.models import BotEvent
    from apps.core.models import Incident
    from workers import keys

    leg = _hedge_leg(host, bot)
    leg.venue.faults = faults
    failed = BotEvent.objects.filter(bot=bot, code=failure_code)
    assert wait_until(failed.exists, 120), list(BotEvent.objects.filter(bot=bot).values_list("code", "message"))
    stopped = BotEvent.objects.filter(bot=bot, kind="risk", code="hedge_quoting_stopped")
    assert wait_until(stopped.exists, 10)
    incidents = Incident.objects.filter(bot=bot, kind="hedge", data__code="quoting_stopped").order_by("id")
    incident = wait_until(incidents.first, 10)
    assert incident is not None and "exposure left" in incident.message and incident.data["asset"] == "BTC"
    exposure = Decimal(str(incident.data["exposure"]))
    if exposure != 0:
        # maker quoting stopped: every maker quote off the venue while the exposure waits
        k_maker = keys.paper(bot.exchange_account_id, "BTC/USDT", "orders")
        assert wait_until(lambda: redis_client.hlen(k_maker) == 0, 5), "maker quotes left resting"
    # (0: the maker's own opposite fill netted the exposure before its hedge failed, and the
    # incident says so; the caller then checks the legs net to zero, hedged once)
    maker, _hedges = _legs(bot)
    assert maker, "a hedge failed before any maker fill"
    leg.venue.faults = None
    return exposure, incident


def _stop_and_check_hedged_once(host, bot, budget: int, faulted: bool = True):
    from apps.bots.models import Bot, BotEvent
    from workers import lifecycle

    if faulted:  # flat again by a retry within the budget, and quoting resumed by itself
        hedged = BotEvent.objects.filter(bot=bot, code="quoting_resumed", message__startswith="flat again")
        assert wait_until(hedged.exists, 30), list(BotEvent.objects.filter(bot=bot).values_list("code", "message"))
        retries = list(BotEvent.objects.filter(bot=bot, code="hedge_retry").values_list("message", flat=True))
        assert retries and all(int(m.split()[1]) <= budget for m in retries), retries  # "retry n of budget"
    assert not BotEvent.objects.filter(bot=bot, code="hedge_hedge_budget_exhausted").exists()
    # pause (maker quotes off, hedging goes on) so that no maker fill lands just before the stop
    # (a stop does not flatten: it would say the exposure left)
    Bot.objects.filter(pk=bot.pk).update(desired_state="paused")
    lifecycle.apply(bot.pk)
    assert wait_until(lambda: Bot.objects.get(pk=bot.pk).actual_state == "paused", 15)
    assert wait_until(lambda: sum(map(_signed, _legs(bot))) == 0, 15), [
        (f.client_order_id, f.side, f.quantity) for leg in _legs(bot) for f in leg
    ]
    Bot.objects.filter(pk=bot.pk).update(desired_state="stopped")
    lifecycle.apply(bot.pk)
    assert wait_until(lambda: Bot.objects.get(pk=bot.pk).actual_state == "stopped", 30)
    host.drain_writers(10)
    maker, hedges = _legs(bot)
    assert_hedged_once(bot, maker, hedges)
    return maker, hedges


def assert_hedged_once(bot, maker, hedges) -> None:
    """Each maker fill covered exactly once: the legs net to zero, and the per-fill attribution
    pairs every maker fill with hedge fills (or an opposite maker fill netted against it) for
    its whole quantity, with no hedge quantity left over (a hedge sent twice would be)."""
    from apps.bots.models import HedgeFillAttribution

    assert _signed(maker) + _signed(hedges) == 0, (maker, hedges)
    rows = {r.maker_trade_id: r for r in HedgeFillAttribution.objects.filter(bot=bot)}
    assert set(rows) == {f.venue_trade_id for f in maker}
    for row in rows.values():
        assert row.open_quantity == 0 and row.hedged_quantity + row.netted_quantity == row.quantity, row.__dict__
    assert sum(r.hedged_quantity for r in rows.values()) == sum(f.quantity for f in hedges)


def test_hedge_venue_answering_429_stops_quoting_and_the_hedge_is_retried_within_the_budget(host, redis_client):
    from apps.bots.models import BotEvent
    from apps.orders.models import Order
    from workers.paper_faults import PaperFaults

    _user, bot, _mm, hedge_market = make_hedged_bot(
        "sim:h4-maker", "sim:h4-hedge", retry_budget=5, retry_backoff_ms=500
    )
    from workers import supervisor

    supervisor.tick()
    exposure, incident = _faulty_until_first_failure(
        host, redis_client, bot, PaperFaults(error=1.0, status=429, seed=4), "hedge_failed"
    )
    first = BotEvent.objects.filter(bot=bot, code="hedge_failed").order_by("ts").first()
    assert "429 Too Many Requests" in first.message, first.message
    assert "exposure left" in incident.message
    if exposure == 0:  # netted by the maker's own fills: nothing waits for a hedge
        _stop_and_check_hedged_once(host, bot, budget=5, faulted=False)
        return
    _maker, hedges = _stop_and_check_hedged_once(host, bot, budget=5)
    # the first hedge after the faults is the exposure the incident named (one order, maybe several fills)
    assert _hedges_the_exposure(_first_order(hedges), exposure), (_first_order(hedges), exposure)
    # the hedge orders the 429s refused never reached the venue: rejected, none left open
    refused = Order.objects.filter(bot=bot, market=hedge_market, status="rejected")
    assert refused.exists()
    assert not Order.objects.filter(bot=bot, status__in=["pending_new", "open", "partially_filled"]).exists()


def test_hedge_orders_timing_out_stop_quoting_and_the_hedge_is_retried_within_the_budget(host, redis_client):
    """The hedge venue never answers (its orders lost on the way: no answer, no error): each
    hedge times out at ``hedge_timeout_ms``, its cancel finds nothing, it counts as failed and is
    retried; once the venue answers again the exposure is hedged, once."""
    from apps.bots.models import BotEvent
    from workers import supervisor
    from workers.paper_faults import PaperFaults

    _user, bot, _mm, _hm = make_hedged_bot(
        "sim:h5-maker", "sim:h5-hedge", retry_budget=5, retry_backoff_ms=300, hedge_timeout_ms=400
    )
    supervisor.tick()
    exposure, _incident = _faulty_until_first_failure(
        host, redis_client, bot, PaperFaults(drop=1.0, seed=5), "hedge_failed"
    )
    timeout = BotEvent.objects.filter(bot=bot, code="hedge_timeout").first()
    assert timeout is not None and "unanswered or unfilled after 400 ms" in timeout.message
    failures = list(BotEvent.objects.filter(bot=bot, code="hedge_failed").values_list("message", flat=True))
    assert "unknown_order" in failures[0], failures  # its cancel found nothing at the venue: not filled
    if exposure == 0:  # netted by the maker's own fills: nothing waits for a hedge
        _stop_and_check_hedged_once(host, bot, budget=5, faulted=False)
        return
    _maker, hedges = _stop_and_check_hedged_once(host, bot, budget=5)
    assert _hedges_the_exposure(_first_order(hedges), exposure), (_first_order(hedges), exposure)


def test_a_hedge_whose_answer_is_lost_is_found_by_its_client_id_and_not_sent_twice(host, redis_client):
    """The hedge venue takes every hedge but its answer is lost (a timeout after the order
    arrived): the loop looks the order up by client id before anything else, so each maker fill
    is hedged once, never twice."""
    from workers import keys, supervisor
    from workers.paper_faults import PaperFaults

    _user, bot, _mm, hedge_market = make_hedged_bot("sim:h6-maker", "sim:h6-hedge")
    supervisor.tick()
    _hedge_leg(host, bot).venue.faults = PaperFaults(timeout=1.0, seed=6)
    prefix = bot.client_id_prefix
    k_trades = keys.paper(bot.params["hedge_account"], hedge_market.symbol, "trades")
    assert wait_until(lambda: redis_client.llen(k_trades) >= 2, 120), "no hedge in 120 s"
    maker, hedges = _stop_and_check_hedged_once(host, bot, budget=3, faulted=False)
    assert maker and hedges
    assert hedges and all(f.client_order_id.startswith(prefix + "h-") for f in hedges)
    assert len({f.client_order_id for f in hedges}) == len(hedges)  # each hedge order filled once (IOC)
