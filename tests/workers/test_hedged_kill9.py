"""Take-over of a hosted hedged bot after ``kill -9`` of its host process, between a maker fill
and its hedge: real Celery worker processes (as tests/workers/test_failover.py), real Redis and
PostgreSQL, two sim venues. The first host's hedge places spend 60 s in flight (the paper fault
injection, ``MM_PAPER_FAULTS=delay_ms=60000,account=<hedge account>``: the hedge leg only), so
when a maker fill is on the maker venue its hedge has not reached the hedge venue; the host is
then killed with SIGKILL. The next owner finds the fill unhedged (even with its database row
never written: it is recorded from the venue's trade log) and hedges it exactly once."""

from __future__ import annotations

import json
import time
from decimal import Decimal

import pytest

from tests.workers.helpers import wait_until
from tests.workers.test_hedged_host import make_hedged_bot

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def _trades(redis_client, key: str, prefix: str) -> list[dict]:
    return [t for t in (json.loads(b) for b in redis_client.lrange(key, 0, -1)) if t["cid"].startswith(prefix)]


def test_kill9_between_a_maker_fill_and_its_hedge_the_new_owner_hedges_it_once(workers, redis_client):
    from apps.bots.models import Bot, BotEvent
    from apps.orders.models import Fill
    from workers import keys, lifecycle, records, supervisor

    _user, bot, maker_market, hedge_market = make_hedged_bot("sim:hz-maker", "sim:hz-hedge")
    bot.refresh_from_db()
    prefix = bot.client_id_prefix
    hedge_account = bot.params["hedge_account"]
    mi, hi = records.market_instrument(maker_market), records.market_instrument(hedge_market)
    k_maker_trades = keys.paper(bot.exchange_account_id, maker_market.symbol, "trades")
    k_hedge_trades = keys.paper(hedge_account, hedge_market.symbol, "trades")
    supervisor.tick()
    first = workers.start("hz1", MM_PAPER_FAULTS=f"delay_ms=60000,account={hedge_account}")
    lease = keys.bot_lease(bot.pk)
    assert wait_until(lambda: redis_client.get(lease) is not None, 60), "the first host never claimed the bot"
    assert f":{first.pid}:" in f":{redis_client.get(lease).decode()}"
    first_token = int(redis_client.get(lease).decode().rsplit(":", 1)[1])
    # a maker fill on the maker venue; its hedge is in flight inside the first host
    assert wait_until(lambda: _trades(redis_client, k_maker_trades, prefix + "m-"), 180), "no maker fill in 180 s"
    time.sleep(1.0)  # the hedge has left the kernel and waits in the first host's venue call
    made = _trades(redis_client, k_maker_trades, prefix + "m-")
    exposure = sum(t["side"] * t["qty"] for t in made)  # maker lots, long if positive
    assert exposure != 0
    assert not _trades(redis_client, k_hedge_trades, prefix + "h-"), "hedged before the kill"
    workers.kill9(first)
    killed_ns = time.time_ns()
    # As if the host died before its database writer ran: the maker fills only in the venue's log.
    written = Fill.objects.filter(bot=bot, client_order_id__startswith=prefix + "m-").delete()[0]
    print(f"maker fills at the kill: {len(made)} (exposure {exposure} lots), {written} rows removed from the database")
    # the trader pauses the bot: the new owner then hedges but does not quote, so the only trade
    # after the take-over is the hedge of what the dead owner left
    Bot.objects.filter(pk=bot.pk).update(desired_state="paused")
    second = workers.start("hz2")
    assert wait_until(lambda: f":{second.pid}:" in f":{(redis_client.get(lease) or b'').decode()}", 60), (
        "not taken over"
    )
    supervisor.tick()
    hedged = lambda: _trades(redis_client, k_hedge_trades, prefix + "h-")  # noqa: E731
    assert wait_until(lambda: sum(t["side"] * t["qty"] for t in hedged()) == -exposure, 60), hedged()
    time.sleep(3.0)  # more timers of the new owner: nothing more is hedged
    hedges = hedged()
    assert sum(t["side"] * t["qty"] for t in hedges) == -exposure
    assert sum(t["qty"] for t in hedges) == abs(exposure), hedges  # one direction: hedged once, not twice
    assert all(t["ts"] > killed_ns for t in hedges)  # nothing of the dead owner's hedge reached the venue
    assert _trades(redis_client, k_maker_trades, prefix + "m-") == made  # paused: no new maker fill
    # the hedge orders were placed by the new owner only (fencing token above the dead owner's)
    places = [f for _id, f in redis_client.xrange(keys.place_log())
              if int(f[b"bot"]) == bot.pk and f[b"cid"].decode().startswith(prefix + "h-") and f[b"action"] == b"place"]  # fmt: skip
    assert places and all(int(f[b"token"]) > first_token for f in places), places
    take_over = BotEvent.objects.filter(bot=bot, code="take_over").order_by("-ts").first()
    assert take_over is not None and f"exposure {float(mi.quantity(exposure)):g}" in take_over.message
    Bot.objects.filter(pk=bot.pk).update(desired_state="stopped")
    lifecycle.apply(bot.pk)
    assert wait_until(lambda: Bot.objects.get(pk=bot.pk).actual_state == "stopped", 30)
    # every venue trade of both legs is in the database once (the dead owner's maker fills recorded
    # by the take-over), and the legs net to zero
    fills = list(Fill.objects.filter(bot=bot))
    assert sorted(f.venue_trade_id for f in fills) == sorted(t["id"] for t in [*made, *hedges])
    maker = [f for f in fills if f.client_order_id.startswith(prefix + "m-")]
    hedge = [f for f in fills if f.client_order_id.startswith(prefix + "h-")]
    assert sum((f.quantity if f.side == "buy" else -f.quantity for f in maker), Decimal(0)) == mi.quantity(exposure)
    assert sum((f.quantity if f.side == "buy" else -f.quantity for f in hedge), Decimal(0)) == -hi.quantity(
        hi.lots(mi.quantity(exposure))
    )
