"""The arbitrage scan on a real Celery worker: books in Redis as the feeds publish them ->
opportunities recorded, paper-executed for a user who asked for it, and notified."""

from __future__ import annotations

import json
import time

import pytest
from celery import current_app

from apps.arbitrage.models import Opportunity
from apps.arbitrage.services import arbitrage_settings_update
from apps.exchanges.models import Market
from connectors.sim import hosted_feed, sim_mid
from tests.workers.h10_worker import celery_worker_fixture, wait_for  # noqa: F401 (fixture)
from tests.workers.helpers import ensure_market
from workers import keys

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def _markets():
    for venue in ("sim:alpha", "sim:beta"):
        ensure_market(venue)


def _diverged_books(redis):
    """Publish both venues' books as they were at a moment they were > 25 bps apart."""
    from apps.arbitrage.tracker import market_instrument

    t = 1_763_700_000.0
    while abs(sim_mid("sim:alpha", t) - sim_mid("sim:beta", t)) / sim_mid("sim:beta", t) < 0.0025:
        t += 1.0
    for venue in ("sim:alpha", "sim:beta"):
        inst = market_instrument(Market.objects.get(venue=venue, symbol="BTC/USDT"))
        snap = hosted_feed(venue, inst).book_at(int(t * 1e9))
        payload = {
            "type": "book",
            "venue": venue,
            "symbol": "BTC/USDT",
            "ts": time.time_ns(),
            "bids": [[str(inst.price(p)), str(inst.quantity(q))] for p, q in snap.bids],
            "asks": [[str(inst.price(p)), str(inst.quantity(q))] for p, q in snap.asks],
        }
        redis.set(keys.feed_book(venue, "BTC/USDT"), json.dumps(payload), ex=60)


def test_scan_task_records_and_paper_executes_opportunities(celery_worker, clean_redis):
    from apps.accounts.services import user_create

    _markets()
    user = user_create(username="arb-user", password="x", role="trader", check_password=False)
    arbitrage_settings_update(user=user, paper_execute=True)
    celery_worker(queues="default")

    def publish_and_scan():
        # books are fresh only while the feeds keep publishing: publish again before each scan
        _diverged_books(clean_redis)
        current_app.send_task("workers.arbitrage.scan")
        time.sleep(1.5)
        return Opportunity.objects.filter(executed=True).first()

    executed = wait_for(publish_and_scan, timeout=60)
    assert executed is not None, list(Opportunity.objects.values())
    assert executed.net_edge_bps > 0 and executed.realized_profit is not None
    assert {executed.buy_venue, executed.sell_venue} == {"sim:alpha", "sim:beta"}
    # the scan keeps the sim feeds wanted so the supervisor runs them without a bot
    assert clean_redis.get(keys.feed_interest("sim:beta", "BTC/USDT")) == b"sim:beta|BTC/USDT"
