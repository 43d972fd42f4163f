"""Bot quality analytics (API + CSV), shadow backtests vs live, and the fee/latency observatory."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from apps.exchanges.models import Market

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def users():
    from apps.accounts.services import user_create

    def make(name, role="trader"):
        return user_create(username=name, password="x", role=role, check_password=False)

    return {"alice": make("alice"), "bob": make("bob"), "olga": make("olga", "operator")}


@pytest.fixture
def bot(users):
    from apps.bots.services import bot_create
    from apps.exchanges.services import exchange_account_create

    account = exchange_account_create(owner=users["alice"], label="paper", venue="sim:alpha")
    market = Market.objects.get(venue="sim:alpha", symbol="BTC/USDT")
    return bot_create(
        owner=users["alice"],
        name="mm",
        exchange_account=account,
        market=market,
        strategy="fixed_spread",
        params={"order_amount": "0.01", "bid_spread": "0.0001", "ask_spread": "0.0001"},
    )


def _history(bot):
    """Top of book 60000/60002 for 30 s then 60010/60012; our bid/ask at the top for 20 s; a
    buy of 0.01 at 60000 at t=10 s and a sell of 0.01 at 60012 at t=40 s (0.0001 maker fee)."""
    from apps.marketdata.models import TopOfBookSnapshot
    from apps.orders.models import Fill, Order

    for s in range(0, 90):
        bid = Decimal(60000) if s < 30 else Decimal(60010)
        TopOfBookSnapshot.objects.create(
            ts=T0 + timedelta(seconds=s), market=bot.market, bid=bid, bid_qty=1, ask=bid + 2, ask_qty=1
        )
    orders = []
    for i, (side, price, start, end) in enumerate(
        [("buy", "60000", 0, 20), ("sell", "60002", 0, 20), ("sell", "60012", 30, 40)]
    ):
        order = Order.objects.create(
            bot=bot,
            account=bot.exchange_account,
            market=bot.market,
            client_order_id=f"mm{bot.pk}-{i}",
            side=side,
            price=Decimal(price),
            quantity=Decimal("0.01"),
            status="cancelled",
            closed_at=T0 + timedelta(seconds=end),
        )
        Order.objects.filter(pk=order.pk).update(
            created=T0 + timedelta(seconds=start), acked_at=T0 + timedelta(seconds=start, milliseconds=40 + 10 * i)
        )
        orders.append(order)
    for ts, side, price, cid in ((10, "buy", "60000", orders[0]), (40, "sell", "60012", orders[2])):
        Fill.objects.create(
            ts=T0 + timedelta(seconds=ts),
            account=bot.exchange_account,
            bot=bot,
            order=cid,
            client_order_id=cid.client_order_id,
            venue_trade_id=f"t{ts}",
            side=side,
            price=Decimal(price),
            quantity=Decimal("0.01"),
            fee=Decimal(price) * Decimal("0.01") * Decimal("0.0001"),
            liquidity="maker",
        )


PERIOD = {"start": T0.isoformat(), "end": (T0 + timedelta(seconds=60)).isoformat()}


def test_bot_analytics_decompose_pnl_and_measure_quoting(users, bot):
    _history(bot)
    response = api(users["alice"]).get(f"/api/v1/bots/{bot.pk}/analytics/", PERIOD)
    assert response.status_code == 200, response.content
    data = response.json()
    pnl = {k: Decimal(v) for k, v in data["pnl"].items()}
    # buy 0.01 one tick... 1 USDT under the mid 60001 and sell 1 over the mid 60011: capture 0.02
    assert pnl["spread_capture"] == Decimal("0.02")
    # held 0.01 while the mid moved 60001 -> 60011: inventory +0.10
    assert pnl["inventory_pnl"] == Decimal("0.1")
    assert pnl["fees"] == Decimal("0.120012")
    assert pnl["total"] == pnl["spread_capture"] + pnl["inventory_pnl"] - pnl["fees"]
    assert data["fills"] == 2 and data["orders_placed"] == 3 and data["order_to_trade"] == 1.5
    # both sides quoted 0..20 s of 60 s, both at the top all that time
    assert data["quote_uptime"] == pytest.approx(20 / 60)
    assert data["time_at_top"] == pytest.approx(20 / 60)
    assert Decimal(str(data["avg_quoted_spread"])) == Decimal("2")
    # 1 s after the buy the mid is 60001 (+1), after the sell 60011 (+1); 60 s after the buy it
    # is 60011 (+11) and after the sell still 60011 (+1): 6 per unit on average
    assert Decimal(data["markouts"]["1s"]["per_unit"]) == Decimal(1)
    assert Decimal(data["markouts"]["60s"]["per_unit"]) == Decimal(6)
    assert data["inventory"]["max"] == "0.0100"


def test_bot_analytics_csv_export(users, bot):
    _history(bot)
    response = api(users["alice"]).get(f"/api/v1/bots/{bot.pk}/analytics.csv", PERIOD)
    assert response.status_code == 200 and response["Content-Type"] == "text/csv"
    rows = dict(list(csv.reader(io.StringIO(response.content.decode())))[1:])
    assert Decimal(rows["pnl.spread_capture"]) == Decimal("0.02")
    assert rows["fills"] == "2" and "markouts.10s.per_unit" in rows and "inventory.histogram.0.share" in rows


def test_analytics_of_someone_elses_bot_is_a_404_and_bad_periods_name_the_field(users, bot):
    assert api(users["bob"]).get(f"/api/v1/bots/{bot.pk}/analytics/", PERIOD).status_code == 404
    assert api(users["bob"]).get(f"/api/v1/bots/{bot.pk}/analytics.csv", PERIOD).status_code == 404
    assert api(users["alice"]).get("/api/v1/bots/x/analytics/").status_code == 404
    bad = api(users["alice"]).get(f"/api/v1/bots/{bot.pk}/analytics/", {"start": PERIOD["end"], "end": PERIOD["start"]})
    assert bad.status_code == 400 and "start" in bad.json()
    long = api(users["alice"]).get(
        f"/api/v1/bots/{bot.pk}/analytics/", {"start": T0.isoformat(), "end": (T0 + timedelta(days=40)).isoformat()}
    )
    assert long.status_code == 400 and "end" in long.json()
    # operators see everything
    assert api(users["olga"]).get(f"/api/v1/bots/{bot.pk}/analytics/", PERIOD).status_code == 200


def test_shadow_backtest_replays_the_stored_market_and_compares_with_live(users, bot, monkeypatch):
    from apps.backtests import runner
    from apps.backtests.services import current_app
    from apps.marketdata.services import batch_from_events, marketdata_ingest_batch
    from connectors.sim import hosted_feed

    monkeypatch.setattr(current_app, "send_task", lambda *a, **k: None)
    _history(bot)
    inst = runner.market_instrument(bot.market)
    t0 = int(T0.timestamp()) * 10**9
    books = [hosted_feed("sim:alpha", inst).book_at(t0 + i * 10**9) for i in range(60)]
    batch = batch_from_events(market_id=bot.market_id, instrument=inst, events=books)
    marketdata_ingest_batch(depths=batch.depths)
    created = api(users["alice"]).post(f"/api/v1/bots/{bot.pk}/shadow-backtests/", PERIOD, format="json")
    assert created.status_code == 201, created.content
    run_id = created.json()["run"]
    done = runner.backtest_execute(run_id=run_id)
    assert done.status == "succeeded", done.error
    assert done.strategy == bot.strategy and done.params == bot.params
    comparison = api(users["alice"]).get(f"/api/v1/bots/{bot.pk}/shadow-backtests/{run_id}/")
    assert comparison.status_code == 200, comparison.content
    body = comparison.json()
    assert body["live"]["fills"] == 2 and body["simulated"]["fills"] == done.metrics["fills"]
    live_total, sim_total = Decimal(body["live"]["pnl"]["total"]), Decimal(body["simulated"]["pnl"]["total"])
    assert Decimal(body["drift"]["total"]) == live_total - sim_total
    assert body["drift"]["fills"] == 2 - done.metrics["fills"]
    # someone else cannot see the run nor shadow the bot
    assert api(users["bob"]).get(f"/api/v1/bots/{bot.pk}/shadow-backtests/{run_id}/").status_code == 404
    assert api(users["bob"]).post(f"/api/v1/bots/{bot.pk}/shadow-backtests/", PERIOD, format="json").status_code == 404


def test_observatory_aggregates_fees_slippage_and_latency_for_operators_only(users, bot):
    from apps.core.observatory import clear_cache, venue_defaults
    from apps.orders.models import Fill

    _history(bot)
    Fill.objects.create(
        ts=T0 + timedelta(seconds=50),
        account=bot.exchange_account,
        bot=bot,
        venue_trade_id="taker-1",
        side="buy",
        price=Decimal("60006"),
        quantity=Decimal("0.01"),
        fee=Decimal("0.30003"),
        liquidity="taker",
        order=bot.orders.get(client_order_id=f"mm{bot.pk}-2"),  # limit 60012... as a buy: improvement
    )
    assert api(users["alice"]).get("/api/v1/observatory/venues/").status_code == 403
    response = api(users["olga"]).get("/api/v1/observatory/venues/", {"days": 90})
    assert response.status_code == 200
    [row] = [r for r in response.json()["venues"] if r["venue"] == "sim:alpha"]
    assert Decimal(row["maker_fee_bps"]) == Decimal("1")
    assert Decimal(row["taker_fee_bps"]) == Decimal("5")
    assert Decimal(row["taker_slippage_bps"]) == (Decimal(60006 - 60012) / 60012 * 10_000).quantize(Decimal("0.0001"))
    assert Decimal(row["latency_ms_p50"]) == Decimal("50")
    assert row["accounts"] == 1 and "owner" not in row and "account" not in row
    clear_cache()
    measured = venue_defaults("sim:alpha", now=T0 + timedelta(days=1))
    assert measured.taker_fee_e8 is None and measured.latency_ns is None  # too few samples for a default
