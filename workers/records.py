"""Synchronous database reads and writes for the loops (run by the host's database writer
threads, :mod:`workers.dbwriter`).

A live order's row is created (``pending_new``) before the place is sent; a paper order's row
follows the venue, already acknowledged (see ``BotRunner._send``); fills are inserted with
``ON CONFLICT DO NOTHING`` on (account, venue trade id, ts), so recording the same fill twice
— by a loop and by take-over reconciliation — stores it once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from django.utils import timezone

from apps.core.timeseries import dt_to_ns, ns_to_dt
from apps.exchanges.markets import market_to_instrument as market_instrument
from trading.events import TimeInForce
from trading.instruments import Instrument, Side
from trading.oms import to_base36
from workers.dbwriter import batchable, durable

NS = 1_000_000_000
# NUMERIC(38, 18) (money and sizes in the database) holds absolute values below 10^20.
NUMERIC_LIMIT = Decimal(10) ** 20


def _values(**values) -> str:
    """``name value`` pairs for a refused row's description, naming the values the database
    cannot hold (NUMERIC(38, 18): below 10^20 in absolute value)."""
    parts = []
    for name, value in values.items():
        if isinstance(value, Decimal) and value.is_finite() and abs(value) >= NUMERIC_LIMIT:
            parts.append(f"{name} {value} (beyond NUMERIC(38, 18): below 1E+20 accepted)")
        else:
            parts.append(f"{name} {value}")
    return ", ".join(parts)


def bot_prefix(bot) -> str:
    return bot.client_id_prefix or f"mm{bot.pk}"


@dataclass
class BotSetup:
    """Everything a loop needs to start a bot, read in one go."""

    bot_id: int
    owner_id: int
    name: str
    account_id: int
    account_kind: str
    venue: str
    market_id: int
    symbol: str
    instrument: Instrument
    strategy: str
    params: dict
    risk: dict
    desired_state: str
    prefix: str
    client_id_start: int
    paper_balances: dict
    kill_switch: bool
    fills: list = field(default_factory=list)  # (ts, cid, side, price, qty, fee, maker, trade_id)
    open_orders: dict = field(default_factory=dict)  # cid -> (side, price, qty, filled)


def _seq_of(cid: str, prefix: str) -> int:
    try:
        return int(cid[len(prefix) + 1 :], 36)
    except ValueError:
        return -1


def bot_setup(bot_id: int) -> BotSetup:
    """Load a bot, its market and account, its next client id and its fill history."""
    from apps.bots.models import Bot
    from apps.orders.models import CLOSED_STATUSES, Fill, Order

    bot = Bot.objects.select_related("market", "exchange_account").get(pk=bot_id)
    inst = market_instrument(bot.market)
    prefix = bot_prefix(bot)
    seq = -1
    for cid in Order.objects.filter(bot_id=bot_id, client_order_id__startswith=prefix + "-").values_list(
        "client_order_id", flat=True
    ):
        seq = max(seq, _seq_of(cid, prefix))
    fills = [
        (
            dt_to_ns(f.ts),
            f.client_order_id,
            Side.BUY if f.side == "buy" else Side.SELL,
            inst.ticks(f.price),
            inst.lots(f.quantity),
            f.fee,
            f.liquidity == "maker",
            f.venue_trade_id,
        )
        for f in Fill.objects.filter(bot_id=bot_id).order_by("ts", "id")
    ]
    open_orders = {
        o.client_order_id: (
            Side.BUY if o.side == "buy" else Side.SELL,
            inst.ticks(o.price),
            inst.lots(o.quantity),
            inst.lots(o.filled_quantity),
        )
        for o in Order.objects.filter(bot_id=bot_id).exclude(status__in=CLOSED_STATUSES)
    }
    acct = bot.exchange_account
    return BotSetup(
        bot_id=bot.pk,
        owner_id=bot.owner_id,
        name=bot.name,
        account_id=acct.pk,
        account_kind=acct.kind,
        venue=bot.market.venue,
        market_id=bot.market_id,
        symbol=bot.market.symbol,
        instrument=inst,
        strategy=bot.strategy,
        params=dict(bot.params or {}),
        risk=dict(bot.risk or {}),
        desired_state=bot.desired_state,
        prefix=prefix,
        client_id_start=seq + 1,
        paper_balances=dict(acct.paper_balances or {}),
        kill_switch=acct.kill_switch,
        fills=fills,
        open_orders=open_orders,
    )


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
    from django.db import connection

    from apps.orders.models import OrderStatus

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
    return f"order {c.client_order_id} ({_values(price=inst.price(c.price), quantity=inst.quantity(c.qty))})"


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
    from django.db import connection

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
    return f"order update {cid} ({_values(status=status, filled=filled)})"


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
    """Insert fills, ignoring ones already stored (same account, venue trade id and ts).
    Returns how many rows were new when ``count_new`` (two extra queries), else how many were offered."""
    from apps.orders.models import Fill, Order

    if not rows:
        return 0
    if not count_new:
        _fills_insert(rows)
        return len(rows)
    cids = {r["client_order_id"] for r in rows}
    order_ids = dict(Order.objects.filter(client_order_id__in=cids).values_list("client_order_id", "id"))
    objs = [Fill(order_id=order_ids.get(r["client_order_id"]), **r) for r in rows]
    keys = [(r["account_id"], r["venue_trade_id"]) for r in rows]

    def stored() -> int:
        return sum(
            Fill.objects.filter(account_id=a, venue_trade_id__in=[t for acc, t in keys if acc == a]).count()
            for a in {a for a, _ in keys}
        )

    before = stored()
    Fill.objects.bulk_create(objs, ignore_conflicts=True)
    return stored() - before


def _describe_fill(row: dict) -> str:
    return f"fill {row['venue_trade_id']} ({_values(price=row['price'], quantity=row['quantity'], fee=row['fee'])})"


fills_record.describe = _describe_fill

_FILL_COLUMNS = (
    "ts", "client_order_id", "venue_trade_id", "side", "price", "quantity", "fee", "fee_currency", "liquidity",
    "account_id", "bot_id",
)  # fmt: skip
_FILLS_INSERT_SQL = """
    INSERT INTO orders_fill (ts, client_order_id, venue_trade_id, side, price, quantity, fee, fee_currency,
                             liquidity, account_id, bot_id, order_id)
    SELECT v.ts, v.cid, v.tid, v.side, v.price, v.qty, v.fee, v.cur, v.liq, v.account, v.bot,
           (SELECT o.id FROM orders_order o WHERE o.client_order_id = v.cid)
    FROM unnest(%s::timestamptz[], %s::text[], %s::text[], %s::text[], %s::numeric[], %s::numeric[],
                %s::numeric[], %s::text[], %s::text[], %s::bigint[], %s::bigint[])
        AS v(ts, cid, tid, side, price, qty, fee, cur, liq, account, bot)
    ON CONFLICT (account_id, venue_trade_id, ts) DO NOTHING
"""


def _fills_insert(rows: list[dict]) -> None:
    """The loops' fills in one fixed statement (order ids looked up by client id in SQL)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(_FILLS_INSERT_SQL, [[r[c] for r in rows] for c in _FILL_COLUMNS])


def fill_row(
    setup: BotSetup, ts: int, cid: str, side: Side, price: int, qty: int, fee_units: int, maker: bool, trade_id: str
) -> dict:
    inst = setup.instrument
    return {
        "ts": ns_to_dt(ts),
        "account_id": setup.account_id,
        "bot_id": setup.bot_id,
        "client_order_id": cid,
        "venue_trade_id": trade_id,
        "side": _side(side),
        "price": inst.price(price),
        "quantity": inst.quantity(qty),
        "fee": inst.cash(fee_units),
        "fee_currency": inst.quote,
        "liquidity": "maker" if maker else "taker",
    }


@batchable
def bot_events_record(rows: list[tuple]) -> None:
    """Insert bot events: (bot id, ts ns, kind, code, message, data)."""
    from apps.bots.models import BotEvent

    BotEvent.objects.bulk_create(
        [
            BotEvent(bot_id=b, ts=ns_to_dt(ts), kind=kind[:32], code=code[:64], message=msg, data=data or {})
            for b, ts, kind, code, msg, data in rows
        ]
    )


_PNL_INSERT_SQL = """
    INSERT INTO portfolio_pnlsnapshot (ts, bot_id, position, cash, mid, realized, unrealized, fees, equity,
                                       peak_equity, drawdown)
    SELECT * FROM unnest(%s::timestamptz[], %s::bigint[], %s::numeric[], %s::numeric[], %s::numeric[],
                         %s::numeric[], %s::numeric[], %s::numeric[], %s::numeric[], %s::numeric[], %s::numeric[])
"""


@batchable
def pnl_snapshots_record(rows: list[tuple]) -> None:
    """Insert PnL snapshots in one fixed statement; the table's insert triggers keep the minute
    roll-up as for any insert. Rows are in the engine's integer units, converted here (in the
    database writer, not in the bot loop): (ts ns, bot id, instrument, position lots, cash
    units, mid in ticks or None (may end in .5), realized, unrealized, fees, equity, peak
    equity, drawdown (cash units))."""
    from django.db import connection

    if not rows:
        return
    columns: list[list] = [[] for _ in range(11)]
    for ts, bot_id, inst, position, cash, mid, *amounts in rows:  # amounts: realized .. drawdown
        values = (
            ns_to_dt(ts),
            bot_id,
            inst.quantity(position),
            inst.cash(cash),
            None if mid is None else inst.price(1) * Decimal(str(mid)),
            *(inst.cash(x) for x in amounts),
        )
        for column, value in zip(columns, values, strict=True):
            column.append(value)
    with connection.cursor() as cursor:
        cursor.execute(_PNL_INSERT_SQL, columns)


def _describe_snapshot(row: tuple) -> str:
    _ts, _bot, inst, position, cash, _mid, realized, _unrealized, _fees, equity, *_ = row
    return (
        "PnL snapshot ("
        + _values(
            position=inst.quantity(position),
            cash=inst.cash(cash),
            realized=inst.cash(realized),
            equity=inst.cash(equity),
        )
        + ")"
    )


pnl_snapshots_record.describe = _describe_snapshot

# The state reason of a bot left in ``error`` because the venue did not confirm its stop: the
# supervisor retries the stop of such bots while their desired state is stopped.
STOP_UNCONFIRMED = "stop not confirmed"


def bot_state_set(bot_id: int, actual_state: str, reason: str | None = None) -> None:
    """Set a bot's actual state (and reason) without touching anything else."""
    from apps.bots.models import Bot

    fields = {"actual_state": actual_state, "updated": timezone.now()}
    if reason is not None:
        fields["state_reason"] = reason
    Bot.objects.filter(pk=bot_id).update(**fields)


def bots_desired_states(bot_ids: list[int]) -> dict[int, tuple[str, bool]]:
    """bot id -> (desired state, account kill switch on), for all of a host's bots in one query
    (a bot that no longer exists reads as stopped)."""
    from apps.bots.models import Bot

    found = {
        pk: (desired, bool(kill))
        for pk, desired, kill in Bot.objects.filter(pk__in=bot_ids).values_list(
            "id", "desired_state", "exchange_account__kill_switch"
        )
    }
    return {pk: found.get(pk, ("stopped", False)) for pk in bot_ids}


def open_orders_close(bot_id: int, keep: set[str], status: str, reason: str) -> int:
    """Close every DB-open order of a bot not in ``keep`` (the venue no longer has them)."""
    from apps.orders.models import CLOSED_STATUSES, Order

    return (
        Order.objects.filter(bot_id=bot_id)
        .exclude(status__in=CLOSED_STATUSES)
        .exclude(client_order_id__in=keep)
        .update(status=status, reason=reason, closed_at=timezone.now(), updated=timezone.now())
    )


def stored_trade_ids(account_id: int, trade_ids: list[str]) -> set[str]:
    """Which of ``trade_ids`` the account's stored fills already have (whatever their ts)."""
    from apps.orders.models import Fill

    return set(
        Fill.objects.filter(account_id=account_id, venue_trade_id__in=trade_ids).values_list(
            "venue_trade_id", flat=True
        )
    )


def order_ids_known(cids: list[str]) -> set[str]:
    """Which of these client order ids have a row (whatever its status)."""
    from apps.orders.models import Order

    return set(Order.objects.filter(client_order_id__in=cids).values_list("client_order_id", flat=True))


def open_order_ids(bot_id: int) -> list[str]:
    """Client ids of a bot's orders the database still has open."""
    from apps.orders.models import CLOSED_STATUSES, Order

    return list(
        Order.objects.filter(bot_id=bot_id)
        .exclude(status__in=CLOSED_STATUSES)
        .values_list("client_order_id", flat=True)
    )


def cid_sequence_text(prefix: str, seq: int) -> str:
    return f"{prefix}-{to_base36(seq)}"


def decimal_str(d: Decimal) -> str:
    return format(d.normalize(), "f")
