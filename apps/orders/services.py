"""Writes for orders and fills. The batched ones (``orders_create``, ``orders_update``,
``fills_record``) take a list of rows and write them with one fixed statement (``INSERT/UPDATE
... FROM unnest(arrays)``, the same text whatever the number of rows; a bulk ingest of fills is
COPYed). The bot hosts' database writer threads (``workers.dbwriter``) call them and merge
consecutive calls into one transaction (see ``apps.core.writes`` for the markers); everything
else that records orders or fills (reconciliation, the cancel task, imports, tests) calls the
same functions.

Idempotent: the same rows applied twice change nothing. A live order's row is created
(``pending_new``) before the place is sent, so an order the venue accepted is never unknown to
us; a paper order's row follows the venue, already acknowledged. Updates only move an order
forward (a closed order changes only to ``filled``: a late fill after a cancel request). Fills
are unique per (account, venue trade id, ts): recording the same fill twice — by a loop and by
take-over reconciliation — stores it once.
"""

from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal, InvalidOperation

import psycopg
from celery import current_app
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from apps.accounts.models import AuditAction, User
from apps.accounts.services import audit_record
from apps.core.timeseries import ns_to_dt
from apps.core.writes import COPY_MIN_ROWS, NUMERIC_LIMIT, batchable, describe_values, durable
from apps.orders.models import CLOSED_STATUSES, Order, OrderStatus
from trading.events import TimeInForce
from trading.instruments import Side

logger = logging.getLogger(__name__)

CANCEL_TASK = "workers.orders.cancel"
_ZERO = Decimal(0)


def _side(side: Side) -> str:
    return "buy" if side is Side.BUY else "sell"


@batchable
def orders_create(items: list[tuple]) -> int:
    """Create order rows: items are (bot id, account id, market id, instrument, PlaceOrder[,
    venue order id, acknowledged at ns[, sent at ns]]). Without the venue order id the row is
    ``pending_new`` (a place about to be sent); with it, ``open``, acknowledged (a paper place the
    venue has already taken: see ``BotRunner._send``), with when the place was sent when known
    (``sent_at``: place latency = ``acked_at - sent_at``). Existing client ids are kept.

    One ``INSERT ... SELECT FROM unnest(arrays) ON CONFLICT DO NOTHING``, the same statement text
    whatever the number of rows, without model instances (bench/bench_bots.py)."""
    if not items:
        return 0
    pending, open_ = str(OrderStatus.PENDING_NEW.value), str(OrderStatus.OPEN.value)
    cols: tuple[list, ...] = ([], [], [], [], [], [], [], [], [], [], [], [], [], [])
    bots, accounts, markets, cids, sides, prices, qtys, reasons, tifs, post_only, statuses, vois, acked, sent = cols
    for item in items:
        bot_id, account_id, market_id, inst, c = item[:5]
        tif = c.time_in_force
        bots.append(bot_id)
        accounts.append(account_id)
        markets.append(market_id)
        cids.append(c.client_order_id)
        sides.append(_side(c.side))
        prices.append(inst.price(c.price))
        qtys.append(inst.quantity(c.qty))
        reasons.append(c.reason)
        tifs.append("ioc" if tif is TimeInForce.IOC else "gtc")
        post_only.append(tif is TimeInForce.POST_ONLY)
        if len(item) > 5:
            statuses.append(open_)
            vois.append(item[5])
            acked.append(ns_to_dt(item[6]) if item[6] else None)
            sent.append(ns_to_dt(item[7]) if len(item) > 7 and item[7] else None)
        else:
            statuses.append(pending)
            vois.append("")
            acked.append(None)
            sent.append(None)
    with connection.cursor() as cursor:
        cursor.execute(_ORDERS_CREATE_SQL, cols)
    return len(items)


# Runs before the other writes of a batch it is merged into (``DbWriter._collect``): the updates
# and fills queued after a create refer to its row.
orders_create.batch_first = True


def _describe_order(item: tuple) -> str:
    inst, c = item[3], item[4]
    return f"order {c.client_order_id} ({describe_values(price=inst.price(c.price), quantity=inst.quantity(c.qty))})"


orders_create.describe = _describe_order

_ORDERS_CREATE_SQL = """
    INSERT INTO orders_order (bot_id, account_id, market_id, client_order_id, venue_order_id, side, price,
                              quantity, filled_quantity, status, reason, time_in_force, post_only, acked_at,
                              sent_at, created, updated)
    SELECT v.bot, v.account, v.market, v.cid, v.voi, v.side, v.price, v.qty, 0, v.status, v.reason, v.tif, v.po,
           v.acked, v.sent, now(), now()
    FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[], %s::text[], %s::text[], %s::numeric[], %s::numeric[],
                %s::text[], %s::text[], %s::boolean[], %s::text[], %s::text[], %s::timestamptz[], %s::timestamptz[])
        AS v(bot, account, market, cid, side, price, qty, reason, tif, po, status, voi, acked, sent)
    ON CONFLICT (client_order_id) DO NOTHING
"""


@durable
@batchable
def orders_update(updates: list[tuple]) -> None:
    """Apply (client id, status, venue order id, cumulative filled lots or None, reason,
    instrument[, acknowledged at ns[, place sent at ns[, cancel sent at ns[, closed at ns]]]])
    updates: coalesced per order (last status wins, venue id / fill / reason / first
    acknowledgement and first stamps kept) and written with one ``UPDATE ... FROM unnest(arrays)``.
    A closed order is only changed to ``filled`` (a late fill after a cancel request). The bot's
    own stamps — when it sent the place (``sent_at``) and its cancel (``cancel_requested_at``),
    and when the cancel's answer came (``closed_at``, else the write's time) — are what the
    latency observatory and the simulator profiles measure."""
    merged: dict[str, list] = {}
    for update in updates:
        cid, status, voi, filled_lots, reason, inst = update[:6]
        n = len(update)
        acked = ns_to_dt(update[6]) if n > 6 and update[6] else None
        sent = ns_to_dt(update[7]) if n > 7 and update[7] else None
        cancel_sent = ns_to_dt(update[8]) if n > 8 and update[8] else None
        closed = ns_to_dt(update[9]) if n > 9 and update[9] else None
        row = merged.get(cid)
        filled = None if filled_lots is None else inst.quantity(filled_lots)
        if row is None:
            merged[cid] = [cid, status, voi or "", filled, (reason or "")[:500], acked, sent, cancel_sent, closed]
            continue
        row[1] = status
        row[2] = voi or row[2]
        row[3] = filled if filled is not None else row[3]
        row[4] = (reason or "")[:500] or row[4]
        row[5] = row[5] or acked
        row[6] = row[6] or sent
        row[7] = row[7] or cancel_sent
        row[8] = closed or row[8]
    if not merged:
        return
    closed = ["filled", "cancelled", "rejected", "expired"]
    columns = [list(col) for col in zip(*merged.values(), strict=True)]
    with connection.cursor() as cursor:
        cursor.execute(_ORDERS_UPDATE_SQL, [closed, *columns, closed])


def _describe_update(update: tuple) -> str:
    cid, status, _voi, filled_lots, _reason, inst = update[:6]
    filled = None if filled_lots is None else inst.quantity(filled_lots)
    return f"order update {cid} ({describe_values(status=status, filled=filled)})"


orders_update.describe = _describe_update

# Fixed statement text (arrays, not one VALUES row per update): psycopg and PostgreSQL parse it
# once, where a VALUES list of a different length each time was parsed afresh on every call.
_ORDERS_UPDATE_SQL = """
    UPDATE orders_order AS o SET
        status = v.status,
        venue_order_id = CASE WHEN v.voi <> '' THEN v.voi ELSE o.venue_order_id END,
        filled_quantity = COALESCE(v.filled, o.filled_quantity),
        reason = CASE WHEN v.reason <> '' THEN v.reason ELSE o.reason END,
        closed_at = CASE WHEN v.status = ANY(%s) THEN COALESCE(v.closed, now()) ELSE o.closed_at END,
        acked_at = COALESCE(o.acked_at, v.acked),
        sent_at = COALESCE(o.sent_at, v.sent),
        cancel_requested_at = COALESCE(o.cancel_requested_at, v.cancel_sent),
        updated = now()
    FROM unnest(%s::text[], %s::text[], %s::text[], %s::numeric[], %s::text[], %s::timestamptz[],
                %s::timestamptz[], %s::timestamptz[], %s::timestamptz[])
        AS v(cid, status, voi, filled, reason, acked, sent, cancel_sent, closed)
    WHERE o.client_order_id = v.cid AND (v.status = 'filled' OR o.status <> ALL(%s))
"""


@durable
@batchable
def fills_record(rows: list[dict], count_new: bool = False) -> int:
    """Insert fills, ignoring ones already stored (same account, venue trade id and ts, also
    within ``rows``); each fill is linked to its order by client order id. Rows are dicts:
    ``ts`` (aware datetime), ``account_id``, ``venue_trade_id``, ``side``, ``price``, ``quantity``
    (Decimals above 0), and optionally ``bot_id``, ``client_order_id``, ``fee`` (may be negative:
    a rebate), ``fee_currency``, ``liquidity`` (default maker; ``liq`` for a liquidation close),
    ``realized_pnl`` (the PnL the venue booked on it, a liquidation's loss). A row out of bounds raises
    :class:`ValidationError` naming the field (the database writer then drops that row alone).
    From ``COPY_MIN_ROWS`` rows the fills are first COPYed straight in; if one is stored
    already, that attempt is rolled back and the de-duplicating statement runs instead.
    Returns how many rows were new when ``count_new``, else how many were offered."""
    if not rows:
        return 0
    columns = [[] for _ in _FILL_COLUMNS]
    for row in rows:
        for column, value in zip(columns, _fill_values(row), strict=True):
            column.append(value)
    with connection.cursor() as cursor:
        if len(rows) >= COPY_MIN_ROWS and _fills_copy(cursor, columns):
            return len(rows)
        if not count_new:
            cursor.execute(_FILLS_INSERT_SQL, columns)
            return len(rows)
        cursor.execute(_FILLS_INSERT_SQL + " RETURNING 1", columns)
        return len(cursor.fetchall())


def _describe_fill(row: dict) -> str:
    amounts = describe_values(price=row.get("price"), quantity=row.get("quantity"), fee=row.get("fee"))
    return f"fill {row.get('venue_trade_id')} ({amounts})"


fills_record.describe = _describe_fill

_FILL_COLUMNS = (
    "ts", "client_order_id", "venue_trade_id", "side", "price", "quantity", "fee", "fee_currency", "liquidity",
    "account_id", "bot_id", "realized_pnl",
)  # fmt: skip
_FILLS_INSERT_SQL = """
    INSERT INTO orders_fill (ts, client_order_id, venue_trade_id, side, price, quantity, fee, fee_currency,
                             liquidity, account_id, bot_id, realized_pnl, order_id)
    SELECT v.ts, v.cid, v.tid, v.side, v.price, v.qty, v.fee, v.cur, v.liq, v.account, v.bot, v.pnl,
           (SELECT o.id FROM orders_order o WHERE o.client_order_id = v.cid)
    FROM unnest(%s::timestamptz[], %s::text[], %s::text[], %s::text[], %s::numeric[], %s::numeric[],
                %s::numeric[], %s::text[], %s::text[], %s::bigint[], %s::bigint[], %s::numeric[])
        AS v(ts, cid, tid, side, price, qty, fee, cur, liq, account, bot, pnl)
    ON CONFLICT (account_id, venue_trade_id, ts) DO NOTHING
"""
_FILLS_COPY_SQL = f"COPY orders_fill ({', '.join(_FILL_COLUMNS)}, order_id) FROM STDIN"


def _fills_copy(cursor, columns: list[list]) -> bool:
    """COPY fills straight into the table, linked to their orders (looked up in one query);
    False, with nothing written, when one of them is stored already (or repeated in ``columns``)."""
    cids = set(columns[1]) - {""}
    order_ids = dict(Order.objects.filter(client_order_id__in=cids).values_list("client_order_id", "id"))
    try:
        with transaction.atomic(), cursor.cursor.copy(_FILLS_COPY_SQL) as copy:
            for values in zip(*columns, [order_ids.get(cid) for cid in columns[1]], strict=True):
                copy.write_row(values)
    except (psycopg.errors.UniqueViolation, IntegrityError):
        return False
    return True


_SIDES = ("buy", "sell")
_LIQUIDITY = ("maker", "taker", "liq")


def _amount(row: dict, field: str, *, positive: bool) -> Decimal:
    value = row.get(field)
    if value is None and not positive:
        value = _ZERO
    if not isinstance(value, Decimal):
        try:
            value = Decimal(str(value))
        except (InvalidOperation, ValueError):
            value = None
    if value is None or not value.is_finite() or abs(value) >= NUMERIC_LIMIT or (positive and value <= 0):
        accepted = "a decimal above 0" if positive else "a decimal"
        raise ValidationError(
            {field: f"{row.get(field)!r} is not accepted; accepted: {accepted} below 1E+20 in absolute value"}
        )
    return value


def _fill_values(row: dict) -> tuple:
    """One fill's column values in ``_FILL_COLUMNS`` order, its bounds checked."""
    ts = row.get("ts")
    if not isinstance(ts, datetime) or ts.tzinfo is None:
        raise ValidationError({"ts": f"{ts!r} is not accepted; accepted: a timezone-aware datetime"})
    if not row.get("venue_trade_id"):
        raise ValidationError({"venue_trade_id": "is empty; every fill needs the venue's trade id"})
    side, liquidity = row.get("side"), row.get("liquidity", "maker")
    if side not in _SIDES:
        raise ValidationError({"side": f"{side!r} is not accepted; accepted: buy, sell"})
    if liquidity not in _LIQUIDITY:
        raise ValidationError({"liquidity": f"{liquidity!r} is not accepted; accepted: maker, taker, liq"})
    return (
        ts,
        row.get("client_order_id") or "",
        str(row["venue_trade_id"]),
        side,
        _amount(row, "price", positive=True),
        _amount(row, "quantity", positive=True),
        _amount(row, "fee", positive=False),
        row.get("fee_currency") or "",
        liquidity,
        row["account_id"],
        row.get("bot_id"),
        None if row.get("realized_pnl") is None else _amount(row, "realized_pnl", positive=False),
    )


def open_orders_close(bot_id: int, keep: set[str], status: str, reason: str) -> int:
    """Close every DB-open order of a bot not in ``keep`` (the venue no longer has them)."""
    return (
        Order.objects.filter(bot_id=bot_id)
        .exclude(status__in=CLOSED_STATUSES)
        .exclude(client_order_id__in=keep)
        .update(status=status, reason=reason, closed_at=timezone.now(), updated=timezone.now())
    )


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
