"""Fill markouts are settled from the stored top of book once each horizon has passed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from apps.marketdata.models import TopOfBookSnapshot
from apps.orders.markouts import fills_settle_markouts
from apps.orders.models import Fill
from tests.apps.bots.factories import make_bot

pytestmark = pytest.mark.django_db
T = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def quote(bot, at: datetime, bid: str, ask: str) -> None:
    TopOfBookSnapshot.objects.create(ts=at, market_id=bot.market_id, bid=bid, bid_qty="1", ask=ask, ask_qty="1")


def fill(bot, trade_id: str, side: str, price: str) -> Fill:
    return Fill.objects.create(
        ts=T, account_id=bot.exchange_account_id, bot=bot, venue_trade_id=trade_id, side=side, price=price, quantity="1"
    )


def test_markouts_are_signed_by_side_and_only_set_once_due(trader):
    bot = make_bot(trader)
    quote(bot, T + timedelta(seconds=1), "100.00", "100.20")  # mid 100.10 at +1 s
    quote(bot, T + timedelta(seconds=9.5), "99.00", "99.20")  # mid 99.10 at +10 s
    buy, sell = fill(bot, "t1", "buy", "100.05"), fill(bot, "t2", "sell", "100.05")

    # 5 s after the fills only the 1 s markouts are due.
    assert fills_settle_markouts(now=T + timedelta(seconds=5)) == {"markout_1s": 2, "markout_10s": 0, "markout_60s": 0}
    buy.refresh_from_db()
    sell.refresh_from_db()
    assert buy.markout_1s == Decimal("0.05") and sell.markout_1s == Decimal("-0.05")
    assert buy.markout_10s is None

    # Later: 10 s markouts settle from the snapshot at +9.5 s; no mid near +60 s leaves it empty.
    settled = fills_settle_markouts(now=T + timedelta(minutes=5))
    assert settled == {"markout_1s": 0, "markout_10s": 2, "markout_60s": 0}
    buy.refresh_from_db()
    sell.refresh_from_db()
    assert buy.markout_10s == Decimal("-0.95") and sell.markout_10s == Decimal("0.95")
    assert buy.markout_60s is None


def test_a_snapshot_older_than_the_limit_is_not_used(trader):
    bot = make_bot(trader)
    quote(bot, T - timedelta(seconds=10), "50", "52")  # long before the horizon
    f = fill(bot, "t1", "buy", "51")
    fills_settle_markouts(now=T + timedelta(minutes=5))
    f.refresh_from_db()
    assert f.markout_1s is None and f.markout_10s is None
