"""Writes for orders and fills. Idempotent: the same event applied twice changes nothing.

Orders are created (``pending_new``) *before* the place request is sent, so an order the
venue accepted is never unknown to us; later events only move an order forward (a closed order
never reopens, the filled quantity never shrinks). Fills are unique per (account, venue trade
id, ts): a duplicate report is ignored.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from celery import current_app
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from apps.accounts.models import AuditAction, User
from apps.accounts.services import audit_record
from apps.orders.models import CLOSED_STATUSES, Fill, Liquidity, Order, OrderSide, OrderStatus, TimeInForce

logger = logging.getLogger(__name__)

CANCEL_TASK = "workers.orders.cancel"

_ACKED = frozenset({OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED})
_RANK = {
    OrderStatus.PENDING_NEW: 0,
    OrderStatus.OPEN: 1,
    OrderStatus.PARTIALLY_FILLED: 2,
    OrderStatus.FILLED: 3,
    OrderStatus.CANCELLED: 3,
    OrderStatus.REJECTED: 3,
    OrderStatus.EXPIRED: 3,
}


def _decimal(field: str, value: Any, *, allow_none: bool = False, positive: bool = False) -> Decimal | None:
    if value is None:
        if allow_none:
            return None
        raise ValidationError({field: "is missing; give a decimal"})
    try:
        d = Decimal(repr(value) if isinstance(value, float) else str(value))
    except (InvalidOperation, ValueError):
        raise ValidationError({field: f"{value!r} is not a decimal number"}) from None
    if not d.is_finite() or d < 0 or (positive and d == 0):
        raise ValidationError({field: f"{value!r} must be {'greater than 0' if positive else '0 or more'}"})
    return d


def _choice(field: str, value: Any, choices: Iterable[str]) -> str:
    choices = list(choices)
    if value not in choices:
        raise ValidationError({field: f"{value!r} is not accepted; accepted: {', '.join(choices)}"})
    return value


@transaction.atomic
def order_upsert_from_event(
    *,
    account_id: int,
    client_order_id: str,
    status: str,
    market_id: int | None = None,
    bot_id: int | None = None,
    side: str | None = None,
    price: Any = None,
    quantity: Any = None,
    venue_order_id: str = "",
    filled_quantity: Any = None,
    average_price: Any = None,
    reason: str = "",
    time_in_force: str = TimeInForce.GTC,
    post_only: bool = False,
    at: datetime | None = None,
) -> tuple[Order, bool]:
    """Create or move forward the order ``client_order_id``; returns ``(order, created)``.

    Creating needs market, side, price and quantity (call this with ``pending_new`` before
    sending the place). An event that would move the order backwards is ignored. ``at`` is when
    the event happened (default now): a new row is stamped ``created`` then, the first
    open / partially filled / filled event stamps ``acked_at`` (order-entry latency is
    ``acked_at - created``) and a closing event ``closed_at``.
    """
    if not client_order_id:
        raise ValidationError({"client_order_id": "is empty"})
    status = _choice("status", status, OrderStatus.values)
    filled = _decimal("filled_quantity", filled_quantity, allow_none=True)
    avg = _decimal("average_price", average_price, allow_none=True)
    now = at or timezone.now()
    order = Order.objects.select_for_update().filter(client_order_id=client_order_id).first()
    created = False
    if order is None:
        if market_id is None:
            raise ValidationError({"market_id": f"order {client_order_id!r} is unknown; a new order needs its market"})
        order = Order(
            account_id=account_id,
            bot_id=bot_id,
            market_id=market_id,
            client_order_id=client_order_id,
            side=_choice("side", side, OrderSide.values),
            price=_decimal("price", price, positive=True),
            quantity=_decimal("quantity", quantity, positive=True),
            time_in_force=_choice("time_in_force", time_in_force, TimeInForce.values),
            post_only=bool(post_only),
            status=OrderStatus.PENDING_NEW,
        )
        created = True
    elif order.account_id != account_id:
        raise ValidationError(
            {"client_order_id": f"{client_order_id!r} belongs to account #{order.account_id}, not #{account_id}"}
        )
    if venue_order_id and not order.venue_order_id:
        order.venue_order_id = venue_order_id
    if filled is not None and filled > order.filled_quantity:
        order.filled_quantity = filled
        if avg is not None:
            order.average_price = avg
    closed = order.status in CLOSED_STATUSES
    if not closed and _RANK[status] >= _RANK[order.status]:
        order.status = status
        if reason:
            order.reason = reason[:2000]
    if order.status == OrderStatus.PARTIALLY_FILLED and order.filled_quantity >= order.quantity:
        order.status = OrderStatus.FILLED
    if order.status in CLOSED_STATUSES and order.closed_at is None:
        order.closed_at = now
    if order.acked_at is None and order.status in _ACKED:
        order.acked_at = now
    try:
        with transaction.atomic():
            order.save()
            if created and at is not None:  # ``created`` is auto_now_add: stamp the event's time
                Order.objects.filter(pk=order.pk).update(created=at)
                order.created = at
    except IntegrityError:
        # Created concurrently by another process: apply this event to that row instead.
        return order_upsert_from_event(
            account_id=account_id,
            client_order_id=client_order_id,
            status=status,
            venue_order_id=venue_order_id,
            filled_quantity=filled_quantity,
            average_price=average_price,
            reason=reason,
            at=at,
        )
    return order, created


_SIDES = frozenset(OrderSide.values)
_LIQUIDITY = frozenset(Liquidity.values)


def _positive(field: str, value: Any) -> Decimal:
    if type(value) is Decimal and value.is_finite() and value > 0:  # the common case, fast
        return value
    return _decimal(field, value, positive=True)


def _fill_values(row: Mapping[str, Any]) -> dict[str, Any]:
    get = row.get
    trade_id = get("venue_trade_id")
    if not trade_id:
        raise ValidationError({"venue_trade_id": "is empty; every fill needs the venue's trade id"})
    ts = get("ts")
    if not isinstance(ts, datetime) or ts.tzinfo is None:
        raise ValidationError({"ts": f"{ts!r} is not a timezone-aware datetime"})
    side = get("side")
    if side not in _SIDES:
        _choice("side", side, OrderSide.values)
    liquidity = get("liquidity", Liquidity.MAKER)
    if liquidity not in _LIQUIDITY:
        _choice("liquidity", liquidity, Liquidity.values)
    fee = get("fee") or Decimal(0)
    if type(fee) is not Decimal or not fee.is_finite():  # fees may be negative (rebates)
        try:
            fee = Decimal(repr(fee) if isinstance(fee, float) else str(fee))
        except (InvalidOperation, ValueError):
            raise ValidationError({"fee": f"{fee!r} is not a decimal number"}) from None
        if not fee.is_finite():
            raise ValidationError({"fee": f"{fee!r} is not a finite decimal"})
    return {
        "ts": ts,
        "account_id": int(row["account_id"]),
        "bot_id": get("bot_id"),
        "order_id": get("order_id"),
        "client_order_id": str(get("client_order_id") or ""),
        "venue_trade_id": str(trade_id),
        "side": side,
        "price": _positive("price", get("price")),
        "quantity": _positive("quantity", get("quantity")),
        "fee": fee,
        "fee_currency": str(get("fee_currency") or ""),
        "liquidity": liquidity,
        "markout_1s": get("markout_1s"),
        "markout_10s": get("markout_10s"),
        "markout_60s": get("markout_60s"),
    }


def fill_record(
    *,
    account_id: int,
    venue_trade_id: str,
    ts: datetime,
    side: str,
    price: Any,
    quantity: Any,
    fee: Any = 0,
    fee_currency: str = "",
    liquidity: str = Liquidity.MAKER,
    bot_id: int | None = None,
    client_order_id: str = "",
    order_id: int | None = None,
) -> tuple[Fill, bool]:
    """Record one fill; a duplicate (same account, venue trade id and ts) is ignored.
    Returns ``(fill, created)``. The order is linked by ``client_order_id`` when not given."""
    values = _fill_values(locals())
    if values["order_id"] is None and client_order_id:
        order = Order.objects.filter(client_order_id=client_order_id).values("id", "bot_id").first()
        if order:
            values["order_id"] = order["id"]
            values["bot_id"] = values["bot_id"] or order["bot_id"]
    key = {"account_id": values["account_id"], "venue_trade_id": values["venue_trade_id"], "ts": values["ts"]}
    existing = Fill.objects.filter(**key).first()
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            return Fill.objects.create(**values), True
    except IntegrityError:
        return Fill.objects.get(**key), False


FILL_COLUMNS = (
    "ts",
    "account_id",
    "bot_id",
    "order_id",
    "client_order_id",
    "venue_trade_id",
    "side",
    "price",
    "quantity",
    "fee",
    "fee_currency",
    "liquidity",
    "markout_1s",
    "markout_10s",
    "markout_60s",
)


def fills_bulk_record(rows: Iterable[Mapping[str, Any]], *, validate: bool = True) -> int:
    """Record many fills at once; duplicates (same account, venue trade id and ts) are ignored.
    Returns the number of new fills.

    Optimistic: the batch is first COPYed straight into the table (the fast path, for fresh
    fills); if any fill is already there, that attempt rolls back to a savepoint and the batch
    goes through a staging table and INSERT ... ON CONFLICT DO NOTHING instead."""
    import psycopg

    batch = [[values.get(c) for c in FILL_COLUMNS] for values in (_fill_values(r) if validate else r for r in rows)]
    if not batch:
        return 0
    columns = ", ".join(FILL_COLUMNS)
    with transaction.atomic(), connection.cursor() as cursor:
        try:
            with transaction.atomic(), cursor.cursor.copy(f"COPY orders_fill ({columns}) FROM STDIN") as copy:
                for values in batch:
                    copy.write_row(values)
            return len(batch)
        except (psycopg.errors.UniqueViolation, IntegrityError):
            pass  # some are known already: fall back to the de-duplicating path
        cursor.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS _fill_staging ON COMMIT DELETE ROWS AS "
            f"SELECT {columns} FROM orders_fill WITH NO DATA"
        )
        cursor.execute("TRUNCATE _fill_staging")
        with cursor.cursor.copy(f"COPY _fill_staging ({columns}) FROM STDIN") as copy:
            for values in batch:
                copy.write_row(values)
        cursor.execute(
            f"INSERT INTO orders_fill ({columns}) SELECT DISTINCT ON (account_id, venue_trade_id, ts) {columns} "
            "FROM _fill_staging ON CONFLICT (account_id, venue_trade_id, ts) DO NOTHING"
        )
        return cursor.rowcount


@transaction.atomic
def order_cancel_request(*, order: Order, actor: User, at: datetime | None = None) -> Order:
    """Ask the workers to cancel an open order (``workers.orders.cancel``, by name, on commit);
    ``at`` is when the request was made (default now; cancel latency = ``closed_at - at``)."""
    order = Order.objects.select_for_update().get(pk=order.pk)
    if order.status in CLOSED_STATUSES:
        raise ValidationError({"status": f"order {order.client_order_id} is already {order.status}"})
    if order.cancel_requested_at is None:
        order.cancel_requested_at = at or timezone.now()
        order.save(update_fields=["cancel_requested_at", "updated"])
    audit_record(
        action=AuditAction.ORDER_CANCEL_REQUESTED,
        actor=actor,
        owner=order.account.owner,
        obj=order,
        after={"client_order_id": order.client_order_id},
    )
    order_id = order.pk

    def send() -> None:
        try:
            current_app.send_task(CANCEL_TASK, args=[order_id])
        except Exception:
            logger.exception("could not enqueue %s for order %s; reconciliation will retry", CANCEL_TASK, order_id)

    transaction.on_commit(send)
    return order
