"""Synchronous database reads for the loops (run by the host's database writer threads,
:mod:`workers.dbwriter`) and the rows they hand to the writes.

The writes themselves are the service functions in ``apps/``: orders and fills in
``apps.orders.services`` (``orders_create``, ``orders_update``, ``fills_record``,
``open_orders_close``), PnL snapshots
in ``apps.portfolio.services`` (``pnl_snapshots_record``), bot events and states in
``apps.bots.services`` (``bot_events_record``, ``bot_state_set``). The ones the bot loop reaches
as ``records.<name>`` are imported here under the same names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from apps.bots.services import bot_state_set as bot_state_set
from apps.core.timeseries import dt_to_ns, ns_to_dt
from apps.derivatives.hosting import perp_market
from apps.exchanges.markets import market_to_instrument as market_instrument
from apps.orders.services import fills_record as fills_record
from apps.orders.services import open_orders_close as open_orders_close
from apps.orders.services import orders_create as orders_create
from apps.orders.services import orders_update as orders_update
from trading.instruments import Instrument, Side
from trading.oms import to_base36

NS = 1_000_000_000


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
    risk_paused_reason: str = ""  # set while the risk sweep holds the bot paused (Bot.risk_paused_*)
    fills: list = field(default_factory=list)  # (ts, cid, side, price, qty, fee, maker, trade_id)
    open_orders: dict = field(default_factory=dict)  # cid -> (side, price, qty, filled)
    # A perpetual market's contract and tiers (``apps.derivatives.hosting.PerpMarket``) from its
    # market row; None on spot.
    perp: Any = None


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
            # a liquidation's bankruptcy price is off the grid: rounded as its close was
            inst.ticks(f.price, side=(Side.BUY if f.side == "buy" else Side.SELL) if f.liquidity == "liq" else None),
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
        risk_paused_reason=(bot.risk_paused_reason or "paused by the risk sweep") if bot.risk_paused_at else "",
        fills=fills,
        open_orders=open_orders,
        perp=perp_market(bot.market.venue, bot.market.symbol, bot.market),
    )


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
        "side": "buy" if side is Side.BUY else "sell",
        "price": inst.price(price),
        "quantity": inst.quantity(qty),
        "fee": inst.cash(fee_units),
        "fee_currency": inst.quote,
        "liquidity": "maker" if maker else "taker",
    }


# The state reason of a bot left in ``error`` because the venue did not confirm its stop: the
# supervisor retries the stop of such bots while their desired state is stopped.
STOP_UNCONFIRMED = "stop not confirmed"


def bots_desired_states(bot_ids: list[int]) -> dict[int, tuple[str, bool, bool]]:
    """bot id -> (desired state, account kill switch on, paused by the risk sweep), for all of a
    host's bots in one query (a bot that no longer exists reads as stopped)."""
    from apps.bots.models import Bot

    found = {
        pk: (desired, bool(kill), risk_paused_at is not None)
        for pk, desired, kill, risk_paused_at in Bot.objects.filter(pk__in=bot_ids).values_list(
            "id", "desired_state", "exchange_account__kill_switch", "risk_paused_at"
        )
    }
    return {pk: found.get(pk, ("stopped", False, False)) for pk in bot_ids}


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
