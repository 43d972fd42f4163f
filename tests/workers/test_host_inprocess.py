"""A host in this process (thread) against the real Redis and PostgreSQL: bots quote on the
paper venue, stop leaves no order on the venue."""

from __future__ import annotations

import pytest

from tests.workers.helpers import make_paper_bots, wait_until

pytestmark = [pytest.mark.django_db(transaction=True)]


@pytest.fixture
def host(clean_redis, settings):
    from workers.host import Host

    h = Host(ttl_ms=3000)
    h.start_thread()
    assert h.started.wait(5)
    yield h
    h.stop()


def test_started_paper_bots_quote_on_the_venue_and_stop_leaves_no_open_order(host, redis_client):
    from apps.bots.models import Bot
    from apps.orders.models import Order
    from workers import keys, lifecycle, supervisor

    _user, account, bots = make_paper_bots(2)
    supervisor.tick()
    assert wait_until(lambda: all(Bot.objects.get(pk=b.pk).actual_state == "running" for b in bots), 20)
    k_orders = keys.paper(account.pk, "BTC/USDT", "orders")
    assert wait_until(lambda: redis_client.hlen(k_orders) >= 4, 20), "bots never quoted"
    assert Order.objects.filter(bot__in=bots).count() >= 4
    for bot in bots:
        Bot.objects.filter(pk=bot.pk).update(desired_state="stopped")
        lifecycle.apply(bot.pk)
    assert wait_until(lambda: all(Bot.objects.get(pk=b.pk).actual_state == "stopped" for b in bots), 20)
    assert redis_client.hlen(k_orders) == 0
    assert not Order.objects.filter(bot__in=bots, status__in=["pending_new", "open", "partially_filled"]).exists()
