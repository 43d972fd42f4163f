"""The bot page's drawdown chart is the bot PnL's drawdown, not the account's equity drawdown
(issue 21: a bot with no fills showed a -180 drawdown from the paper account's BTC moving)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from apps.dashboard.figures import bot_pnl_drawdown, pnl_charts


def test_the_drawdown_is_below_the_best_bot_pnl_so_far():
    assert bot_pnl_drawdown([None, -1.0, 2.0, 0.5, 3.0, None, 1.0]) == [None, -1.0, 0.0, -1.5, 0.0, None, -2.0]


def test_the_chart_ignores_the_accounts_equity_drawdown():
    t0 = datetime(2026, 12, 7, 12, tzinfo=UTC)
    rows = [
        # the account's equity fell 180 (its BTC), the bot made 1 then gave back 0.4
        {"bucket": t0, "realized": Decimal("0"), "unrealized": Decimal("0"), "fees": Decimal("0"),
         "position": Decimal("0"), "drawdown": Decimal("60")},
        {"bucket": t0 + timedelta(minutes=1), "realized": Decimal("1.2"), "unrealized": Decimal("0"),
         "fees": Decimal("0.2"), "position": Decimal("0.001"), "drawdown": Decimal("120")},
        {"bucket": t0 + timedelta(minutes=2), "realized": Decimal("1.2"), "unrealized": Decimal("-0.3"),
         "fees": Decimal("0.3"), "position": Decimal("0.001"), "drawdown": Decimal("180")},
    ]  # fmt: skip
    charts = pnl_charts(rows)
    assert charts["drawdown"]["data"][0]["y"] == pytest.approx([0.0, 0.0, -0.4])
    assert charts["drawdown"]["layout"]["title"]["text"] == "Bot PnL drawdown (quote)"
    assert charts["pnl"]["data"][0]["y"] == pytest.approx([0.0, 1.0, 0.6])
