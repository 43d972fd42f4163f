from datetime import UTC, datetime
from decimal import Decimal

import pytest

from apps.exchanges.models import Market
from apps.marketdata.models import DepthSnapshot, TopOfBookSnapshot, Trade
from tests.apps.marketdata.admin_pages import assert_admin_pages

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def test_marketdata_admin_pages_are_for_staff_only(operator, trader, viewer):
    market = Market.objects.first()
    rows = [
        TopOfBookSnapshot.objects.create(market=market, ts=T0, bid=1, bid_qty=1, ask=2, ask_qty=1),
        DepthSnapshot.objects.create(market=market, ts=T0, bids=[["1", "1"]], asks=[], mid=Decimal(1)),
        Trade.objects.create(market=market, ts=T0, price=1, qty=1, aggressor="buy", trade_id="t1"),
    ]
    for row in rows:
        assert_admin_pages(type(row), row, operator=operator, outsiders=[trader, viewer])
