"""Deleting a bot keeps its orders and fills as they were (with its id): no row of them is
rewritten (on TimescaleDB an UPDATE of compressed fills decompresses them, see
docs/timescaledb.md), and every page, API and admin view reading them still answers, scoped
by account as before."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from apps.orders.models import Fill, Order
from tests.apps.bots.factories import api, make_account, make_bot, place_order
from tests.apps.dashboard.conftest import client_for
from tests.apps.marketdata.admin_pages import assert_admin_pages

pytestmark = pytest.mark.django_db


def _history(bot, n: int) -> None:
    now = timezone.now()
    for i in range(n):
        cid = f"{bot.client_id_prefix}-{i}"
        place_order(bot, cid)
        Fill.objects.create(
            ts=now - timedelta(minutes=i),
            account_id=bot.exchange_account_id,
            bot_id=bot.pk,
            order=Order.objects.get(client_order_id=cid),
            client_order_id=cid,
            venue_trade_id=f"T{bot.pk}-{i}",
            side="buy",
            price=Decimal("65000.10"),
            quantity=Decimal("0.0020"),
            fee=Decimal("0.01"),
            fee_currency="USDT",
        )


def test_deleting_a_bot_rewrites_none_of_its_orders_and_fills_and_every_reader_still_answers(
    trader, other_trader, operator, sent_tasks
):
    account = make_account(trader)
    gone = make_bot(trader, name="gone", account=account)
    kept = make_bot(trader, name="kept", account=account)
    _history(gone, 5)
    _history(kept, 2)
    strangers = make_bot(other_trader, name="theirs", account=make_account(other_trader, label="bob"))
    _history(strangers, 1)
    gone_id = gone.pk

    with CaptureQueriesContext(connection) as queries:
        assert api(trader).delete(f"/api/v1/bots/{gone_id}/").status_code == 204
    writes = [q["sql"] for q in queries.captured_queries if q["sql"].startswith(("UPDATE", "DELETE"))]
    assert not [sql for sql in writes if "orders_fill" in sql or "orders_order" in sql], writes

    # History kept as it was, with the deleted bot's id.
    assert Fill.objects.filter(bot_id=gone_id).count() == 5
    assert Order.objects.filter(bot_id=gone_id).count() == 5

    client = api(trader)
    fills = client.get("/api/v1/fills/")
    assert fills.status_code == 200
    rows = fills.json()["results"]
    assert sorted(r["bot"] for r in rows) == sorted([kept.pk] * 2 + [gone_id] * 5)
    assert client.get("/api/v1/fills/", {"bot": gone_id}).json()["count"] == 5
    orders = client.get("/api/v1/orders/")
    assert orders.status_code == 200 and orders.json()["count"] == 7
    one = Fill.objects.filter(bot_id=gone_id).first()
    assert client.get(f"/api/v1/fills/{one.pk}/").json()["bot"] == gone_id
    assert client.get(f"/api/v1/bots/{gone_id}/").status_code == 404
    assert client.get(f"/api/v1/bots/{gone_id}/analytics/").status_code == 404
    assert client.get(f"/api/v1/bots/{kept.pk}/analytics/").status_code == 200
    assert client.get(f"/api/v1/bots/{kept.pk}/pnl/").status_code == 200

    # User scoping still holds: fills and orders belong to the account's owner only.
    theirs = api(other_trader)
    assert [r["bot"] for r in theirs.get("/api/v1/fills/").json()["results"]] == [strangers.pk]
    assert theirs.get("/api/v1/fills/", {"bot": gone_id}).json()["count"] == 0
    assert theirs.get(f"/api/v1/fills/{one.pk}/").status_code == 404
    assert theirs.get("/api/v1/orders/").json()["count"] == 1

    # Pages and admin.
    pages = client_for(trader)
    for url in (reverse("overview"), reverse("bot-detail", args=[kept.pk]), reverse("bot-quality", args=[kept.pk])):
        assert pages.get(url).status_code == 200, url
    assert pages.get(reverse("bot-detail", args=[gone_id])).status_code == 404
    assert client_for(operator).get(reverse("operators")).status_code == 200
    assert_admin_pages(Fill, one, operator=operator, outsiders=[trader])
    assert_admin_pages(Order, Order.objects.filter(bot_id=gone_id).first(), operator=operator, outsiders=[trader])
