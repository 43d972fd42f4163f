"""The metrics endpoint during a running paper bot on a real Celery worker: the bot's counters
move between two scrapes, the host's and the feed's figures are there, and a scrape without the
token (or from outside the allowed networks) is refused."""

from __future__ import annotations

import re

import pytest

from tests.workers.helpers import make_paper_bots, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
TOKEN = "metrics-test-token-0123456789"


def scrape(client) -> str:
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200, response.content
    return response.content.decode()


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of ``name`` whose labels include ``labels`` (None when absent)."""
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line[len(name) : line.rindex("}") + 1]))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_scrape_during_a_running_paper_bot_shows_its_counters_moving(workers, client, settings):
    from workers import supervisor

    settings.METRICS_TOKEN = TOKEN
    settings.METRICS_ALLOWED_NETWORKS = []
    _user, _account, bots = make_paper_bots(1, spread="0.00003")
    bot = str(bots[0].pk)
    supervisor.tick()
    workers.start("m1")

    def placed() -> float:
        return sample(scrape(client), "mm_bot_orders_placed_total", bot=bot) or 0

    assert wait_until(lambda: placed() > 0, 60), "the bot's placed orders never showed in a scrape"
    first = scrape(client)
    assert wait_until(lambda: placed() > sample(first, "mm_bot_orders_placed_total", bot=bot), 30)
    later = scrape(client)
    labels = {"bot": bot, "strategy": "fixed_spread", "venue": "sim:alpha", "market": "BTC/USDT"}
    assert sample(later, "mm_bot_orders_placed_total", **labels) > sample(first, "mm_bot_orders_placed_total", **labels)
    assert sample(later, "mm_bot_running_seconds_total", bot=bot) > sample(
        first, "mm_bot_running_seconds_total", bot=bot
    )
    assert sample(later, "mm_bot_requote_latency_seconds_count", bot=bot) > 0
    assert sample(later, "mm_bot_order_entry_latency_seconds_count", bot=bot) > 0
    assert sample(later, "mm_bot_takeovers_total", bot=bot) == 1
    assert sample(later, "mm_bot_lease_renewals_total", bot=bot) > 0
    assert sample(later, "mm_bot_running", bot=bot) == 1
    assert sample(later, "mm_feed_messages_total", venue="sim:alpha", market="BTC/USDT") > 0
    assert sample(later, "mm_feed_book_synced", venue="sim:alpha", market="BTC/USDT") == 1
    assert sample(later, "mm_feed_staleness_seconds", venue="sim:alpha", market="BTC/USDT") < 10
    assert any(line.startswith("mm_host_loop_lag_seconds{") for line in later.splitlines())
    assert sample(later, "mm_process_up", kind="bots") >= 1
    assert sample(later, "mm_http_requests_total", view="metrics", status="2xx") >= 2


def test_unauthenticated_scrapes_are_refused(client, settings):
    settings.METRICS_TOKEN = TOKEN
    settings.METRICS_ALLOWED_NETWORKS = []
    assert client.get("/metrics").status_code == 403
    refused = client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong-token-0123456789")
    assert refused.status_code == 403
    assert "METRICS_TOKEN" in refused.json()["detail"]
    # A network setting lets the test client's address (127.0.0.1) in, and only it.
    settings.METRICS_ALLOWED_NETWORKS = ["10.0.0.0/8"]
    assert client.get("/metrics").status_code == 403
    settings.METRICS_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    assert client.get("/metrics").status_code == 200
    # Neither set: nobody, not even with a token-looking header.
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_NETWORKS = []
    denied = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert denied.status_code == 403 and "not exposed" in denied.json()["detail"]
