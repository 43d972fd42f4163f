"""A paper perpetual's liquidation close as a Fill row (``Fill.liquidity`` ``liq``).

The paper venue closes a liquidated position at the bankruptcy price (:mod:`workers.paper_perp`)
with no order of the bot. That close is written as a fill through the same write as every other
paper fill (``fills_record`` on the host's database writer), so it is in the bot's trade log and
its PnL from fills: no client order id, the venue trade id ``liquidation-<ts ns>``, the exact
bankruptcy price (18 places), the contracts closed, no fee, and the loss booked on the position
in ``realized_pnl`` (settle currency).

Once only: the row is unique on (account, venue trade id, ts) and written with ``ON CONFLICT DO
NOTHING``, and its ts is the liquidation's, kept in the venue's stored state. A new owner writes
again the rows of stored liquidations its setup did not read back (the previous owner may have
died before its writer committed it); a repeat is ignored by the database. The rebuild at
take-over skips these rows when the venue's state is restored (that state and its closes
already hold them) and applies them as fills when it is not.
"""

from __future__ import annotations

from decimal import Decimal

from apps.core.timeseries import ns_to_dt

TRADE_PREFIX = "liquidation-"


def trade_id(ts: int, leg: str = "") -> str:
    """``liquidation-<ts>``; in hedge mode ``liquidation-<ts>-<leg>`` (a cross liquidation closes
    both legs at one ts)."""
    return f"{TRADE_PREFIX}{ts}-{leg}" if leg else f"{TRADE_PREFIX}{ts}"


def is_liquidation(trade: str) -> bool:
    return trade.startswith(TRADE_PREFIX)


def fill_row(setup, close: list) -> dict | None:
    """The Fill row of a stored close ``[ts, side, price ticks, lots, bankruptcy price, pnl,
    settle]`` (``workers.paper_perp``; hedge mode appends the leg, ``workers.paper_perp_hedge``);
    None for a close stored without its price and loss."""
    if len(close) < 7:
        return None
    ts, side, _ticks, lots, price, pnl, settle = close[:7]
    leg = close[7] if len(close) > 7 else ""
    return {
        "ts": ns_to_dt(ts),
        "account_id": setup.account_id,
        "bot_id": setup.bot_id,
        "client_order_id": "",
        "venue_trade_id": trade_id(ts, leg),
        "side": side,
        "price": Decimal(price),
        "quantity": setup.instrument.quantity(lots),
        "fee": Decimal(0),
        "fee_currency": settle,
        "liquidity": "liq",
        "realized_pnl": Decimal(pnl),
    }


def record(runner, close: list) -> None:
    """Write the close's Fill row (the loop's database writer) and push it to the bot's page."""
    from apps.orders.services import fills_record

    row = fill_row(runner.setup, close)
    if row is None:
        return
    runner.recorded_trade_ids.add(row["venue_trade_id"])
    runner.host.db.submit(fills_record, [row], owner=runner.bot_id)
    runner.host.publish_bot(
        runner.bot_id,
        {
            "type": "fill",
            "side": row["side"],
            "price": str(row["price"].normalize()),
            "qty": str(row["quantity"]),
            "fee": "0",
            "cid": "",
            "liquidation": True,
            "realized_pnl": f"{row['realized_pnl'].normalize():f}",
        },
    )


def missing_rows(setup, state: dict | None) -> list[dict]:
    """Take-over: the rows of the stored liquidation closes the bot's recorded fills lack."""
    known = {f[-1] for f in setup.fills}
    rows = [fill_row(setup, close) for close in (state or {}).get("liquidations") or []]
    return [r for r in rows if r is not None and r["venue_trade_id"] not in known]
