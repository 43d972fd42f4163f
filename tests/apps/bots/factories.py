"""Builders and fixtures for the part-A app tests (accounts, exchanges, bots, orders, portfolio).

Import the fixtures into a test module or conftest with ``from tests.apps.bots.factories import *``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from apps.accounts.models import Role, User
from apps.accounts.services import user_create
from apps.bots.models import Bot
from apps.bots.services import bot_create
from apps.core.timeseries import dt_to_ns
from apps.exchanges.models import ExchangeAccount, Market
from apps.exchanges.services import exchange_account_create, market_to_instrument
from apps.orders.models import Order
from apps.orders.services import orders_create, orders_update
from trading.events import PlaceOrder
from trading.instruments import Side

PAPER_BALANCES = {"USDT": "10000", "BTC": "0.5"}
FIXED_SPREAD = {"order_amount": "0.001", "bid_spread": "0.001", "ask_spread": "0.001"}
T0 = datetime(2026, 1, 5, tzinfo=UTC)


def make_user(username: str, role: str = Role.TRADER) -> User:
    return user_create(username=username, password="not-a-real-pass-123", role=role, check_password=False)


def sim_market(venue: str = "sim:alpha", symbol: str = "BTC/USDT") -> Market:
    """A seeded market (re-created if a transactional test flushed the seed)."""
    market, _ = Market.objects.get_or_create(
        venue=venue,
        symbol=symbol,
        defaults={
            "base": "BTC",
            "quote": "USDT",
            "tick_size": Decimal("0.01"),
            "lot_size": Decimal("0.0001"),
            "maker_fee": Decimal("0.0001"),
            "taker_fee": Decimal("0.0005"),
        },
    )
    return market


def make_account(owner: User, label: str = "paper alpha", venue: str = "sim:alpha") -> ExchangeAccount:
    return exchange_account_create(owner=owner, label=label, venue=venue, kind="paper", paper_balances=PAPER_BALANCES)


def make_bot(owner: User, *, name: str = "mm-1", account: ExchangeAccount | None = None, **extra) -> Bot:
    account = account or make_account(owner, label=f"acct-{name}")
    return bot_create(
        owner=owner,
        name=name,
        exchange_account=account,
        market=sim_market(account.venue),
        strategy=extra.pop("strategy", "fixed_spread"),
        params=extra.pop("params", FIXED_SPREAD),
        risk=extra.pop("risk", {"max_position_base": "1"}),
        **extra,
    )


def api(user: User | None) -> APIClient:
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


@pytest.fixture
def trader(db) -> User:
    return make_user("alice")


@pytest.fixture
def other_trader(db) -> User:
    return make_user("bob")


@pytest.fixture
def viewer(db) -> User:
    return make_user("victor", Role.VIEWER)


@pytest.fixture
def operator(db) -> User:
    return make_user("olga", Role.OPERATOR)


@pytest.fixture
def sent_tasks(monkeypatch) -> list[tuple[str, list, dict]]:
    """Celery tasks sent by name (recorded instead of reaching the broker)."""
    from celery import current_app

    sent: list[tuple[str, list, dict]] = []
    monkeypatch.setattr(
        current_app, "send_task", lambda name, args=None, kwargs=None, **kw: sent.append((name, args, kwargs))
    )
    return sent


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


def _ns(at: datetime | None) -> int | None:
    return None if at is None else dt_to_ns(at)


def place_order(
    bot: Bot,
    cid: str,
    *,
    side: str = "buy",
    price: str = "65000.10",
    quantity: str = "0.0020",
    venue_order_id: str | None = None,
    sent: datetime | None = None,
    acked: datetime | None = None,
    created: datetime | None = None,
) -> Order:
    """An order row written the way the bots write it (``apps.orders.services.orders_create``):
    ``pending_new``, or already acknowledged (``open``) when ``venue_order_id`` is given.
    ``created`` dates the row back (a history for readers; the writes stamp it now)."""
    inst = market_to_instrument(bot.market)
    place = PlaceOrder(cid, Side.BUY if side == "buy" else Side.SELL, inst.ticks(price), inst.lots(quantity))
    item: tuple = (bot.pk, bot.exchange_account_id, bot.market_id, inst, place)
    if venue_order_id is not None:
        item += (venue_order_id, _ns(acked), _ns(sent))
    orders_create([item])
    if created is not None:
        Order.objects.filter(client_order_id=cid).update(created=created)
    return Order.objects.get(client_order_id=cid)


def order_event(
    bot: Bot,
    cid: str,
    status: str,
    *,
    filled: str | None = None,
    venue_order_id: str = "",
    reason: str = "",
    acked: datetime | None = None,
    closed: datetime | None = None,
) -> Order:
    """Apply one order report the way the bots do (``apps.orders.services.orders_update``)."""
    inst = market_to_instrument(bot.market)
    lots = None if filled is None else inst.lots(filled)
    orders_update([(cid, status, venue_order_id, lots, reason, inst, _ns(acked), None, None, _ns(closed))])
    return Order.objects.get(client_order_id=cid)


def fill_values(bot: Bot, trade_id: str, ts: datetime, **extra) -> dict:
    """A fill row for ``apps.orders.services.fills_record`` (buy 0.001 at 65000 unless given)."""
    row = {
        "ts": ts,
        "account_id": bot.exchange_account_id,
        "bot_id": bot.pk,
        "venue_trade_id": trade_id,
        "side": "buy",
        "price": Decimal("65000"),
        "quantity": Decimal("0.001"),
        "fee": Decimal(0),
        "fee_currency": "USDT",
        "liquidity": "maker",
    }
    row.update(extra)
    return row


def pnl_rows(bot: Bot, snapshots: list[dict]) -> list[tuple]:
    """PnL snapshots given as amounts (the fields of ``PnlSnapshot``, ``mid`` optional) as the
    rows the bots write (``apps.portfolio.services.pnl_snapshots_record``: engine units)."""
    inst = market_to_instrument(bot.market)
    units = inst.cash_units
    amounts = ("realized", "unrealized", "fees", "equity", "peak_equity", "drawdown")
    return [
        (
            dt_to_ns(s["ts"]),
            bot.pk,
            inst,
            inst.lots(s["position"]),
            units(s["cash"]),
            None if s.get("mid") is None else s["mid"] / inst.tick_size,
            *(units(s[name]) for name in amounts),
        )
        for s in snapshots
    ]


__all__ = [
    "FIXED_SPREAD",
    "PAPER_BALANCES",
    "T0",
    "api",
    "fill_values",
    "make_account",
    "make_bot",
    "make_user",
    "minutes",
    "operator",
    "order_event",
    "other_trader",
    "place_order",
    "pnl_rows",
    "sent_tasks",
    "sim_market",
    "trader",
    "viewer",
]
