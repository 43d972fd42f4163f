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
from apps.exchanges.models import ExchangeAccount, Market
from apps.exchanges.services import exchange_account_create

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


__all__ = [
    "FIXED_SPREAD",
    "PAPER_BALANCES",
    "T0",
    "api",
    "make_account",
    "make_bot",
    "make_user",
    "minutes",
    "operator",
    "other_trader",
    "sent_tasks",
    "sim_market",
    "trader",
    "viewer",
]
