"""The beat's position reconciliation of live perpetual bots (``workers.perp_reconcile``) against
the fake Binance USD-M server through the real ccxt ``binanceusdm`` class: the booked position
from the recorded fills vs ``fetchPositions``; an incident on the second sweep in a row that sees
the same difference, once; a pair whose bot a host runs is left to the bot's own loop."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from tests.workers.test_live_perp import RAW, make_perp_bot, usdm  # noqa: F401 - fixture
from tests.workers.test_live_venue import fake_binance  # noqa: F401 - fixture

pytestmark = [pytest.mark.django_db(transaction=True)]


def record_fill(bot, n: int, side: str, qty: str) -> None:
    from apps.orders.services import fills_record
    from workers import records

    fills_record(
        [{"ts": records.ns_to_dt(time.time_ns()), "account_id": bot.exchange_account_id, "bot_id": bot.pk,
          "client_order_id": f"{bot.client_id_prefix}-{n}", "venue_trade_id": f"t-{bot.pk}-{n}", "side": side,
          "price": Decimal("60000"), "quantity": Decimal(qty), "fee": Decimal(0), "fee_currency": "USDT",
          "liquidity": "maker"}],
        count_new=True,
    )  # fmt: skip


def set_exchange_position(fake_binance, usdm, amount: str) -> None:  # noqa: F811
    def move():
        p = usdm.position(RAW)
        p.amount, p.entry = Decimal(amount), Decimal("60000")

    fake_binance.run(move)


def position_reads(fake_binance) -> int:  # noqa: F811
    return len(fake_binance.run(fake_binance.server.calls, "GET", "/fapi/v3/positionRisk"))


def test_a_difference_on_two_sweeps_in_a_row_is_one_incident_and_a_hosted_bot_is_left_to_its_loop(
    fake_binance,  # noqa: F811
    usdm,  # noqa: F811
    clean_redis,
    redis_client,
):
    from apps.core.models import Incident
    from workers import keys, perp_reconcile

    bot = make_perp_bot({"leverage": 5})  # started, but no host runs it
    record_fill(bot, 1, "buy", "0.006")
    record_fill(bot, 2, "sell", "0.002")  # booked: long 0.004
    set_exchange_position(fake_binance, usdm, "0.004")
    assert perp_reconcile.run() == {**ZERO, "pairs": 1, "agree": 1}

    # The exchange's position moves behind the bot (e.g. closed in part by hand).
    set_exchange_position(fake_binance, usdm, "0.010")

    # While a host runs the bot, its own loop compares: the sweep does not read or judge the pair.
    redis_client.set(keys.bot_lease(bot.pk), "some-host:1")
    reads = position_reads(fake_binance)
    for _ in range(2):
        assert perp_reconcile.run() == {**ZERO, "pairs": 1, "hosted": 1}
    assert position_reads(fake_binance) == reads and not Incident.objects.exists()

    # Unowned (the host is gone): first sighting, then the incident, then nothing new.
    redis_client.delete(keys.bot_lease(bot.pk))
    assert perp_reconcile.run() == {**ZERO, "pairs": 1, "first": 1}
    assert not Incident.objects.exists()
    assert perp_reconcile.run() == {**ZERO, "pairs": 1, "reported": 1}
    incident = Incident.objects.get()
    assert (incident.bot_id, incident.account_id, incident.kind) == (
        bot.pk,
        bot.exchange_account_id,
        "position_mismatch",
    )
    assert incident.data == {"ours": "0.004", "venue": "0.01", "tolerance": "0"}
    assert incident.message == (
        "BTC/USDT:USDT: our position is 0.004 contracts, the venue's 0.01 (difference -0.006, tolerance 0)"
    )
    assert perp_reconcile.run() == {**ZERO, "pairs": 1, "known": 1}
    assert Incident.objects.count() == 1

    # A new difference is seen twice again before it is reported; agreement forgets the sighting.
    set_exchange_position(fake_binance, usdm, "0.004")
    assert perp_reconcile.run() == {**ZERO, "pairs": 1, "agree": 1}
    assert not redis_client.exists(perp_reconcile.seen_key(bot.exchange_account_id, bot.market_id))
    set_exchange_position(fake_binance, usdm, "0")
    assert perp_reconcile.run()["first"] == 1
    set_exchange_position(fake_binance, usdm, "0.004")  # the difference went away between sweeps
    assert perp_reconcile.run()["agree"] == 1
    assert Incident.objects.count() == 1


def test_an_unreachable_exchange_is_counted_and_judges_nothing(fake_binance, usdm, clean_redis):  # noqa: F811
    from apps.core.models import Incident
    from tests.connectors.servers.fake_exchange import Reply
    from workers import perp_reconcile

    bot = make_perp_bot({"leverage": 5})
    record_fill(bot, 1, "buy", "0.004")
    fake_binance.run(fake_binance.server.route, "GET", "/fapi/v3/positionRisk", Reply(status=503, body={}))
    for _ in range(2):
        assert perp_reconcile.run() == {**ZERO, "pairs": 1, "errors": 1}
    assert not Incident.objects.exists()


ZERO = {"pairs": 0, "hosted": 0, "agree": 0, "first": 0, "reported": 0, "known": 0, "errors": 0}
