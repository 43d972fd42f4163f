from datetime import UTC, datetime

import pytest

from apps.arbitrage.models import ArbitrageSettings, Opportunity
from tests.apps.marketdata.admin_pages import assert_admin_pages

pytestmark = pytest.mark.django_db


def test_arbitrage_admin_pages_are_for_staff_only(operator, trader, viewer):
    opp = Opportunity.objects.create(
        ts=datetime(2026, 11, 20, tzinfo=UTC),
        symbol="BTC/USDT",
        buy_venue="a",
        sell_venue="b",
        buy_price=1,
        sell_price=2,
        size=1,
        gross_edge_bps=1,
        net_edge_bps=1,
        net_profit=1,
    )
    settings = ArbitrageSettings.objects.create(owner=trader)
    assert_admin_pages(Opportunity, opp, operator=operator, outsiders=[trader, viewer])
    assert_admin_pages(ArbitrageSettings, settings, operator=operator, outsiders=[trader, viewer])
