"""Orders move only forward and are never lost; fills are recorded once; API filters and cancel."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from apps.orders.models import Fill, Order
from apps.orders.services import fills_record
from tests.apps.bots.factories import T0, api, fill_values, make_bot, order_event, place_order

pytestmark = pytest.mark.django_db


def test_order_is_created_pending_before_the_place_and_moves_forward_only(trader):
    bot = make_bot(trader)
    order = place_order(bot, "mm1x-0001")
    assert order.status == "pending_new" and order.price == Decimal("65000.10") and order.acked_at is None
    cid = order.client_order_id
    order_event(bot, cid, "open", venue_order_id="V1", acked=T0)
    order = order_event(bot, cid, "partially_filled", filled="0.0010")
    assert order.status == "partially_filled" and order.filled_quantity == Decimal("0.0010")
    assert order.acked_at == T0 and order.closed_at is None
    order = order_event(bot, cid, "filled", filled="0.0020", closed=T0 + timedelta(seconds=1))
    assert order.status == "filled" and order.closed_at == T0 + timedelta(seconds=1) and order.venue_order_id == "V1"
    # A closed order never reopens: a late "open" or "cancelled" changes nothing.
    order_event(bot, cid, "open")
    order = order_event(bot, cid, "cancelled", closed=T0 + timedelta(seconds=5))
    assert order.status == "filled" and order.filled_quantity == Decimal("0.0020")
    assert order.closed_at == T0 + timedelta(seconds=1)
    # Creating it again (a place retried, take-over) keeps the row as it is.
    again = place_order(bot, cid, price="1.00")
    assert (again.pk, again.status, again.price) == (order.pk, "filled", Decimal("65000.10"))
    assert Order.objects.count() == 1


def test_a_late_fill_after_a_cancel_moves_a_cancelled_order_to_filled(trader):
    bot = make_bot(trader)
    place_order(bot, "c-1", venue_order_id="V", acked=T0, sent=T0 - timedelta(milliseconds=3))
    order_event(bot, "c-1", "cancelled", closed=T0 + timedelta(seconds=1))
    order = order_event(bot, "c-1", "filled", filled="0.0020")
    assert order.status == "filled" and order.filled_quantity == Decimal("0.0020")
    assert order.sent_at == T0 - timedelta(milliseconds=3) and order.acked_at == T0


def test_an_update_of_an_unknown_order_creates_nothing(trader):
    bot = make_bot(trader)
    with pytest.raises(Order.DoesNotExist):
        order_event(bot, "ghost", "open", venue_order_id="V9")
    assert Order.objects.count() == 0


def test_a_duplicate_fill_report_is_ignored_and_linked_to_its_order(trader):
    bot = make_bot(trader)
    order = place_order(bot, "mm1x-0001")
    row = fill_values(bot, "T-1", T0, client_order_id=order.client_order_id, fee=Decimal("0.0065"))
    assert fills_record([row], count_new=True) == 1
    assert fills_record([dict(row)], count_new=True) == 0
    fill = Fill.objects.get()
    assert (fill.order_id, fill.bot_id, fill.fee) == (order.pk, bot.pk, Decimal("0.0065"))


def test_bulk_fills_skip_duplicates_and_count_only_new_ones(trader):
    bot = make_bot(trader)
    rows = [
        fill_values(bot, f"T-{i}", T0 + timedelta(seconds=i), side="sell" if i % 2 else "buy",
                    price=Decimal("65000") + i, fee=Decimal("0.01"))
        for i in range(100)
    ]  # fmt: skip
    assert fills_record(rows, count_new=True) == 100
    assert fills_record([*rows[50:], {**rows[0], "venue_trade_id": "T-new"}], count_new=True) == 1
    assert Fill.objects.count() == 101
    assert Fill.objects.get(venue_trade_id="T-7").price == Decimal("65007")


@pytest.mark.parametrize(
    ("field", "value", "accepted"),
    [
        ("quantity", Decimal(-1), "a decimal above 0"),
        ("price", Decimal(0), "a decimal above 0"),
        ("price", Decimal("1E+20"), "below 1E+20"),
        ("fee", "NaN", "a decimal"),
        ("side", "long", "buy, sell"),
        ("liquidity", "both", "maker, taker"),
        ("ts", T0.replace(tzinfo=None), "timezone-aware"),
        ("venue_trade_id", "", "trade id"),
    ],
)
def test_a_fill_out_of_bounds_is_refused_naming_the_field_and_what_is_accepted(trader, field, value, accepted):
    bot = make_bot(trader)
    with pytest.raises(ValidationError) as refused:
        fills_record([fill_values(bot, "T-ok", T0), {**fill_values(bot, "T-bad", T0), field: value}])
    assert list(refused.value.message_dict) == [field] and accepted in refused.value.message_dict[field][0]
    assert Fill.objects.count() == 0


def test_orders_api_filters_by_status_side_and_bot_and_cancels_through_the_worker(
    trader, sent_tasks, django_capture_on_commit_callbacks
):
    bot = make_bot(trader)
    place_order(bot, "a-1", side="buy")
    place_order(bot, "a-2", side="sell", price="65010")
    order_event(bot, "a-2", "cancelled")
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
    fills_record([fill_values(bot, f"F{i}", T0 + timedelta(minutes=i)) for i in range(5)])
    start, end = (T0 + timedelta(minutes=1)).isoformat(), (T0 + timedelta(minutes=3)).isoformat()
    body = api(trader).get("/api/v1/fills/", {"bot": bot.pk, "start": start, "end": end}).json()
    assert [f["venue_trade_id"] for f in body["results"]] == ["F2", "F1"]


def test_bulk_fills_with_a_repeat_inside_one_batch_keep_one_copy(trader):
    bot = make_bot(trader)
    row = fill_values(bot, "DUP", T0, price=Decimal("1"), quantity=Decimal("1"))
    assert fills_record([row, dict(row), {**row, "venue_trade_id": "OTHER"}], count_new=True) == 2
    assert fills_record([]) == 0
    assert Fill.objects.count() == 2


def test_a_bulk_ingest_is_copied_in_linked_to_its_orders_and_a_resend_is_de_duplicated(trader):
    from apps.core.writes import COPY_MIN_ROWS

    bot = make_bot(trader)
    order = place_order(bot, "bulk-1")
    rows = [
        fill_values(bot, f"B-{i}", T0 + timedelta(milliseconds=i), client_order_id="bulk-1" if i % 2 else "")
        for i in range(COPY_MIN_ROWS)
    ]
    assert fills_record(rows, count_new=True) == COPY_MIN_ROWS
    assert Fill.objects.filter(order=order).count() == COPY_MIN_ROWS // 2
    assert Fill.objects.filter(order__isnull=True, client_order_id="").count() == COPY_MIN_ROWS // 2
    # Half of them again plus some new: the COPY meets a stored fill, rolls back, and the
    # de-duplicating statement stores only the new ones.
    resent = rows[COPY_MIN_ROWS // 2 :] + [fill_values(bot, f"N-{i}", T0) for i in range(COPY_MIN_ROWS // 2)]
    assert fills_record(resent, count_new=True) == COPY_MIN_ROWS // 2
    assert Fill.objects.count() == COPY_MIN_ROWS + COPY_MIN_ROWS // 2
