from datetime import UTC, datetime

import pytest
from django.test import Client

from apps.backtests.models import BacktestFill, BacktestRun, RunStatus
from tests.apps.marketdata.admin_pages import assert_admin_pages

pytestmark = pytest.mark.django_db


def test_backtest_admin_pages_are_for_staff_only_and_cancel_action_works(operator, trader, trader2, viewer):
    run = BacktestRun.objects.create(owner=trader, name="r", strategy="fixed_spread", data_source="recording")
    fill = BacktestFill.objects.create(
        run=run, ts=datetime(2026, 11, 20, tzinfo=UTC), side="buy", price=1, qty=1, liquidity="maker"
    )
    assert_admin_pages(BacktestRun, run, operator=operator, outsiders=[trader, trader2, viewer])
    assert_admin_pages(BacktestFill, fill, operator=operator, outsiders=[trader, trader2, viewer])
    ops = Client()
    ops.force_login(operator)
    ops.post("/admin/backtests/backtestrun/", {"action": "cancel_runs", "_selected_action": [run.pk]})
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED
