"""Position reconciliation for perpetuals: the bot's position from its recorded fills against the
venue's ``fetchPositions`` report (ccxt's real Binance USD-M payload); an incident beyond the
tolerance, naming both figures."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from apps.orders.services import fills_record
from tests.connectors.conftest import case
from tests.workers.helpers import make_paper_bots

pytestmark = [pytest.mark.django_db]


def _fill(bot, account, n: int, side: str, qty: str) -> None:
    from workers import records

    fills_record(
        [{"ts": records.ns_to_dt(time.time_ns()), "account_id": account.pk, "bot_id": bot.pk,
          "client_order_id": f"{bot.client_id_prefix}-{n}", "venue_trade_id": f"t-{n}", "side": side,
          "price": Decimal("67445.9"), "quantity": Decimal(qty), "fee": Decimal(0), "fee_currency": "USDT",
          "liquidity": "maker"}],
        count_new=True,
    )  # fmt: skip


def test_position_agrees_with_the_venue_then_a_missing_fill_raises_an_incident():
    from apps.core.models import Incident
    from connectors.ccxt_perp import position_from_ccxt
    from workers.reconcile import reconcile_position

    _user, account, (bot,) = make_paper_bots(1, start=False)
    # the venue: long 0.009 BTCUSDT (ccxt's recorded positionRisk reply, parsed by ccxt)
    venue = [position_from_ccxt(case("response", "binance", "fetchPositions", "Fetch linear positions with symbols")
                                ["parsedResponse"][0])]  # fmt: skip
    assert venue[0].contracts == Decimal("0.009")
    _fill(bot, account, 1, "buy", "0.0100")
    _fill(bot, account, 2, "sell", "0.0010")
    assert reconcile_position(bot, venue) is True  # 0.0100 - 0.0010 = 0.009
    assert not Incident.objects.filter(bot=bot).exists()
    _fill(bot, account, 3, "sell", "0.0010")  # ours 0.008, the venue's 0.009
    assert reconcile_position(bot, venue, Decimal("0.001")) is True  # within the tolerance
    assert reconcile_position(bot, venue, Decimal("0.0005")) is False
    incident = Incident.objects.get(bot=bot, kind="position_mismatch")
    assert incident.message == (
        "BTC/USDT: our position is 0.008 contracts, the venue's 0.009 (difference -0.001, tolerance 0.0005)"
    )
    assert incident.data == {"ours": "0.008", "venue": "0.009", "tolerance": "0.0005"}
