"""Reading the paper venue's state in Redis: open orders and trades as the venue port's reports
(:mod:`trading.ports`), the trade log read from its end, and the balance movements of fills."""

from __future__ import annotations

import json
from decimal import Decimal

from trading.events import OrderEvent, OrderFilled, PlaceOrder
from trading.instruments import FEE_SCALE, Instrument, Side
from trading.ports import FillReport, OrderReport, OrderStatus

TRADES_CHUNK = 1000  # trade log entries read per call (``read_trades``)
TRADES_CLOCK_MARGIN_NS = 60 * 1_000_000_000


async def read_trades(redis, k_trades: str, prefix: str, symbol: str, since_ts: int = 0) -> list[FillReport]:
    """The trades of client-id ``prefix`` since ``since_ts`` from a trade log, oldest first.

    The log is shared by every bot of the account and symbol (up to 50,000 entries, see
    ``workers.housekeeping``) and appended in time order, so it is read from its end, a
    chunk at a time, until a chunk ends before ``since_ts`` (less a minute for owners on
    other machines whose clocks differ): a take-over reads what it may have missed, not
    the whole log, which with hundreds of bots taking over at once timed out."""
    prefix = prefix + "-"
    stop_before = since_ts - TRADES_CLOCK_MARGIN_NS
    out: list[FillReport] = []
    seen: set[str] = set()  # entries appended meanwhile shift the chunks: some come twice
    end = -1
    while True:
        raw = await redis.lrange(k_trades, end - TRADES_CHUNK + 1, end)
        chunk = []
        for blob in raw:
            f = json.loads(blob)
            if f["cid"].startswith(prefix) and f["ts"] >= since_ts and f["id"] not in seen:
                seen.add(f["id"])
                chunk.append(fill_report(symbol, f))
        out[:0] = chunk
        if len(raw) < TRADES_CHUNK:  # the start of the log
            return out
        if since_ts and json.loads(raw[0])["ts"] < stop_before:  # what comes before is older
            return out
        end -= TRADES_CHUNK


def order_report(symbol: str, o: dict) -> OrderReport:
    filled = o["filled"]
    return OrderReport(
        client_order_id=o["cid"],
        venue_order_id=o.get("voi", ""),
        symbol=symbol,
        side=Side(o["side"]),
        price=o["price"],
        qty=o["qty"],
        filled_qty=filled,
        status=OrderStatus.PARTIALLY_FILLED if filled else OrderStatus.OPEN,
        ts=o.get("ts", 0),
    )


def fill_report(symbol: str, f: dict) -> FillReport:
    return FillReport(
        trade_id=f["id"],
        client_order_id=f["cid"],
        venue_order_id=f.get("voi", ""),
        symbol=symbol,
        side=Side(f["side"]),
        price=f["price"],
        qty=f["qty"],
        fee=Decimal(f["fee"]),  # cash units; converted by the caller with the instrument
        fee_currency="",
        maker=bool(f.get("maker", True)),
        ts=f["ts"],
    )


def delta_quote_units(raw: dict) -> int:
    """Quote cash units moved by fills: notional (ticks x lots) x FEE_SCALE minus fees."""
    return int(raw.get(b"notional", 0)) * FEE_SCALE - int(raw.get(b"fees", 0))


def order_record(account_id: int, command: PlaceOrder, ts: int) -> dict:
    """A place as the venue stores it (its venue order id fixed here)."""
    return {
        "cid": command.client_order_id,
        "voi": f"P{account_id}-{command.client_order_id}",
        "side": int(command.side),
        "price": command.price,
        "qty": command.qty,
        "filled": 0,
        "tif": command.time_in_force.value,
        "ts": ts,
    }


def with_trade_ids(pending: list) -> list[OrderEvent]:
    """The order events of a persisted batch, each fill (``(trade id, fill, venue order id)``)
    made whole with the venue trade id and venue order id it was stored with."""
    out: list[OrderEvent] = []
    for item in pending:
        if type(item) is not tuple:
            out.append(item)
            continue
        trade_id, ev, voi = item
        out.append(
            OrderFilled(
                ts=ev.ts,
                client_order_id=ev.client_order_id,
                side=ev.side,
                price=ev.price,
                qty=ev.qty,
                leaves_qty=ev.leaves_qty,
                fee=ev.fee,
                liquidity=ev.liquidity,
                trade_id=trade_id,
                venue_order_id=voi,
            )
        )
    return out


def trade_record(ev: OrderFilled, voi: str) -> dict:
    """A fill as the venue's trade log keeps it (the fill script appends its venue trade id)."""
    return {
        "cid": ev.client_order_id,
        "voi": voi,
        "side": int(ev.side),
        "price": ev.price,
        "qty": ev.qty,
        "leaves": ev.leaves_qty,
        "fee": ev.fee,
        "maker": ev.liquidity.value == "maker",
        "ts": ev.ts,
    }


def moved_balances(initial: dict[str, Decimal], inst: Instrument, delta: dict) -> dict[str, Decimal]:
    """Paper balances: ``initial`` moved by the fills recorded in a ``delta`` hash (base lots,
    notional ticks x lots, fee cash units) of one account and symbol."""
    out = dict(initial)
    out[inst.base] = out.get(inst.base, Decimal(0)) + inst.quantity(int(delta.get(b"base", 0)))
    out[inst.quote] = out.get(inst.quote, Decimal(0)) + inst.cash(delta_quote_units(delta))
    return out
