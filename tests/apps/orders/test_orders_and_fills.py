"""Orders move only forward and are never lost; fills are recorded once; API filters and cancel."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from apps.orders.models import Fill, Order
from apps.orders.services import fill_record, fills_bulk_record, order_upsert_from_event
from tests.apps.bots.factories import T0, api, make_bot

pytestmark = pytest.mark.django_db


def _new(bot, cid="mm1x-0001", **extra):
    values = {
        "account_id": bot.exchange_account_id,
        "client_order_id": cid,
        "status": "pending_new",
        "market_id": bot.market_id,
        "bot_id": bot.pk,
        "side": "buy",
        "price": "65000.10",
        "quantity": "0.0020",
    }
    values.update(extra)
    return order_upsert_from_event(**values)


def test_order_is_created_pending_before_the_place_and_moves_forward_only(trader):
    bot = make_bot(trader)
    order, created = _new(bot)
    assert created and order.status == "pending_new" and order.price == Decimal("65000.10")
    acct, cid = bot.exchange_account_id, order.client_order_id
    order_upsert_from_event(account_id=acct, client_order_id=cid, status="open", venue_order_id="V1")
    order_upsert_from_event(
        account_id=acct,
        client_order_id=cid,
        status="partially_filled",
        filled_quantity="0.0010",
        average_price="65000.1",
    )
    # A stale "open" report arriving late changes nothing.
    order, created = order_upsert_from_event(account_id=acct, client_order_id=cid, status="open")
    assert not created and order.status == "partially_filled" and order.filled_quantity == Decimal("0.0010")
    order_upsert_from_event(
        account_id=acct,
        client_order_id=cid,
        status="partially_filled",
        filled_quantity="0.0020",
        average_price="65000.1",
    )
    order = Order.objects.get(client_order_id=cid)
    assert order.status == "filled" and order.closed_at is not None and order.venue_order_id == "V1"
    # A closed order never reopens and the fill never shrinks.
    order_upsert_from_event(account_id=acct, client_order_id=cid, status="cancelled", filled_quantity="0.0005")
    order = Order.objects.get(client_order_id=cid)
    assert order.status == "filled" and order.filled_quantity == Decimal("0.0020")
    assert Order.objects.count() == 1


def test_an_unknown_order_without_its_market_is_refused_clearly(trader):
    bot = make_bot(trader)
    with pytest.raises(Exception, match="market_id"):
        order_upsert_from_event(account_id=bot.exchange_account_id, client_order_id="ghost", status="open")


def test_a_duplicate_fill_report_is_ignored(trader):
    bot = make_bot(trader)
    order, _ = _new(bot)
    values = {
        "account_id": bot.exchange_account_id,
        "venue_trade_id": "T-1",
        "ts": T0,
        "side": "buy",
        "price": "65000.10",
        "quantity": "0.0010",
        "fee": "0.0065",
        "fee_currency": "USDT",
        "client_order_id": order.client_order_id,
    }
    fill, created = fill_record(**values)
    assert created and fill.order_id == order.pk and fill.bot_id == bot.pk
    again, created_again = fill_record(**values)
    assert not created_again and again.pk == fill.pk and Fill.objects.count() == 1


def test_bulk_fills_skip_duplicates_and_count_only_new_ones(trader):
    bot = make_bot(trader)
    rows = [
        {
            "account_id": bot.exchange_account_id,
            "bot_id": bot.pk,
            "venue_trade_id": f"T-{i}",
            "ts": T0 + timedelta(seconds=i),
            "side": "sell" if i % 2 else "buy",
            "price": Decimal("65000") + i,
            "quantity": Decimal("0.001"),
            "fee": Decimal("0.01"),
            "fee_currency": "USDT",
            "liquidity": "maker",
        }
        for i in range(100)
    ]
    assert fills_bulk_record(rows) == 100
    assert fills_bulk_record([*rows[50:], {**rows[0], "venue_trade_id": "T-new"}]) == 1
    assert Fill.objects.count() == 101
    assert Fill.objects.get(venue_trade_id="T-7").price == Decimal("65007")


def test_bad_fill_is_refused_naming_the_field(trader):
    bot = make_bot(trader)
    with pytest.raises(Exception, match="quantity"):
        fill_record(account_id=bot.exchange_account_id, venue_trade_id="T", ts=T0, side="buy", price="1", quantity="-1")


def test_orders_api_filters_by_status_side_and_bot_and_cancels_through_the_worker(
    trader, sent_tasks, django_capture_on_commit_callbacks
):
    bot = make_bot(trader)
    _new(bot, "a-1", side="buy")
    _new(bot, "a-2", side="sell", price="65010")
    order_upsert_from_event(account_id=bot.exchange_account_id, client_order_id="a-2", status="cancelled")
    client = api(trader)
    open_buys = client.get("/api/v1/orders/", {"status": "pending_new", "side": "buy", "bot": bot.pk}).json()
    assert [o["client_order_id"] for o in open_buys["results"]] == ["a-1"]
    by_price = client.get("/api/v1/orders/", {"ordering": "-price"}).json()["results"]
    assert [o["client_order_id"] for o in by_price] == ["a-2", "a-1"]
    order_id = open_buys["results"][0]["id"]
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/api/v1/orders/{order_id}/cancel/")
    assert response.status_code == 200 and response.json()["cancel_requested_at"]
    assert sent_tasks == [("workers.orders.cancel", [order_id], None)]
    closed_id = Order.objects.get(client_order_id="a-2").pk
    refused = client.post(f"/api/v1/orders/{closed_id}/cancel/")
    assert refused.status_code == 400 and "status" in refused.json()


def test_fills_api_filters_by_time_range(trader):
    bot = make_bot(trader)
    for i in range(5):
        fill_record(
            account_id=bot.exchange_account_id,
            bot_id=bot.pk,
            venue_trade_id=f"F{i}",
            ts=T0 + timedelta(minutes=i),
            side="buy",
            price="65000",
            quantity="0.001",
        )
    start, end = (T0 + timedelta(minutes=1)).isoformat(), (T0 + timedelta(minutes=3)).isoformat()
    body = api(trader).get("/api/v1/fills/", {"bot": bot.pk, "start": start, "end": end}).json()
    assert [f["venue_trade_id"] for f in body["results"]] == ["F2", "F1"]


def test_bulk_fills_with_a_repeat_inside_one_batch_keep_one_copy(trader):
    bot = make_bot(trader)
    row = {
        "account_id": bot.exchange_account_id,
        "venue_trade_id": "DUP",
        "ts": T0,
        "side": "buy",
        "price": Decimal("1"),
        "quantity": Decimal("1"),
    }
    assert fills_bulk_record([row, dict(row), {**row, "venue_trade_id": "OTHER"}]) == 2
    assert fills_bulk_record([]) == 0
    assert Fill.objects.count() == 2
