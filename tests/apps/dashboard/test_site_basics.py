"""The API root is browsable, the favicon answers, the market page's charts come as JSON
(candles of a chosen timeframe, heat map, trades; a bot's own fills marked)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.marketdata.models import Trade
from apps.orders.models import Fill
from tests.apps.bots.factories import make_bot, sim_market
from tests.apps.dashboard.conftest import client_for

pytestmark = pytest.mark.django_db


def test_api_root_lists_the_endpoints_and_the_docs():
    response = Client().get("/api/v1/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    body = response.json()
    assert body["docs"].endswith("/api/v1/docs/")
    for name in ("bot", "fill", "order", "market"):
        assert any(key.startswith(name) for key in body["endpoints"]), name
    assert all(url.startswith("http://testserver/api/v1/") for url in body["endpoints"].values())
    html = Client().get("/api/v1/", HTTP_ACCEPT="text/html")
    assert html.status_code == 200 and b"endpoints" in html.content


def test_favicon_answers():
    response = Client().get("/favicon.ico")
    assert response.status_code == 301
    icon = Client().get(response["Location"])
    assert icon.status_code == 200 and b"<svg" in b"".join(icon.streaming_content)


def test_market_live_charts_json_with_timeframes_and_my_fills(trader):
    bot = make_bot(trader, name="chart-bot")
    market = sim_market()
    now = timezone.now()
    for i in range(6):
        Trade.objects.create(
            market=market, ts=now - timedelta(minutes=i), price=Decimal(100 + i), qty=Decimal("0.1"),
            aggressor="buy" if i % 2 else "sell", trade_id=f"x{i}",
        )  # fmt: skip
    Fill.objects.create(
        ts=now - timedelta(minutes=1), account=bot.exchange_account, bot=bot, venue_trade_id="f1", side="buy",
        price=Decimal("101"), quantity=Decimal("0.01"), fee=Decimal("0.001"),
    )  # fmt: skip
    client = client_for(trader)
    url = reverse("market-live", args=[market.pk])
    body = client.get(url, {"tf": "5m"}).json()
    assert body["candles"]["layout"]["title"]["text"] == "Candles (5m)"
    assert len(body["candles"]["data"][0]["x"]) >= 1
    assert "heatmap" in body and len(body["trades"]) == 6
    mine = client.get(url, {"tf": "1m", "bot": bot.pk, "heat": "0"}).json()
    assert "heatmap" not in mine
    assert [t["name"] for t in mine["candles"]["data"]] == ["candles", "my buys"]
    bad = client.get(url, {"tf": "2m"})
    assert bad.status_code == 400 and "accepted: 1m, 5m, 15m, 1h" in bad.json()["error"]


def test_another_users_bot_fills_are_not_marked(trader, other_trader):
    bot = make_bot(trader, name="private-bot")
    url = reverse("market-live", args=[sim_market().pk])
    assert client_for(other_trader).get(url, {"bot": bot.pk}).status_code == 404


def test_backtest_metrics_are_formatted_with_units_and_no_raw_dumps(trader):
    from apps.backtests.models import BacktestRun

    metrics = {
        "total_pnl": "0E-8",
        "fill_ratio": 0.4588235294117647,
        "sharpe": -600.7123,
        "max_drawdown": "12.345678901",
        "fills": 12345,
        "duration_s": 5400.0,
        "quality": {"markouts": {"1s": {"total": "-0.00012345", "avg_ticks": 1.23456}}, "quote_uptime": 0.9},
    }
    run = BacktestRun.objects.create(
        owner=trader, name="fmt", strategy="fixed_spread", data_source="recording", status="succeeded",
        progress=100, metrics=metrics, equity_curve=[[0, "0"], [1000, "1"]],
    )  # fmt: skip
    body = client_for(trader).get(reverse("backtest-detail", args=[run.pk])).content.decode()
    table = body[body.index('id="metrics"') : body.index("</table>", body.index('id="metrics"'))]
    for shown in ("45.88 %", "-600.71", "annualised by sqrt(samples per 365-day year)", "12,345", "1.50 h"):
        assert shown in table, shown
    assert "12.3457" in table and "quality · markouts · 1s · Total" in table and "1.23 ticks" in table
    for raw in ("0E-8", "0.4588235294117647", "{'", "{&#x27;"):
        assert raw not in table, raw


def test_errors_shown_to_people_carry_no_signed_url_key_or_signature(trader):
    from apps.dashboard.redaction import public_text
    from apps.exchanges.models import ExchangeAccount

    signature = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
    ccxt_error = (
        "binance GET https://api.binance.com/api/v3/account?timestamp=1765100000000&recvWindow=10000"
        f'&signature={signature} 401 Unauthorized {{"code":-2015,"msg":"Invalid API-key, IP, or permissions"}}'
    )
    shown = public_text(ccxt_error)
    assert signature not in shown and "timestamp=" not in shown
    assert "https://api.binance.com/api/v3/account?…" in shown and "Invalid API-key, IP, or permissions" in shown
    assert "bot••••/sendMessage" in public_text(
        "https://api.telegram.org/bot123456:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/sendMessage"
    )
    assert "X-MBX-APIKEY: ••••" in public_text("headers X-MBX-APIKEY: abcDEF123")
    # The settings page shows a failed verification without the signed URL.
    bot_account = ExchangeAccount.objects.create(
        owner=trader, label="live-acct", venue="binance", kind="live", verify_status="auth_error",
        verify_message=ccxt_error,
    )  # fmt: skip
    body = client_for(trader).get(reverse("settings")).content.decode()
    assert "live-acct" in body and signature[:20] not in body and "recvWindow" not in body
    assert bot_account.pk


def test_event_log_collapses_repeated_rejects_with_a_count(trader):
    from apps.bots.models import BotEvent

    bot = make_bot(trader, name="noisy")
    now = timezone.now()
    rows = []
    for i in range(30):  # alternating pairs, as a post-only quote crossing the book produces
        code = "post_only_would_cross" if i % 2 else "reject_unknown"
        rows.append(BotEvent(bot=bot, ts=now - timedelta(seconds=60 - i), kind="order", code=code, message=f"#{i}"))
    rows.append(BotEvent(bot=bot, ts=now, kind="lifecycle", code="owner", message="loop started"))
    BotEvent.objects.bulk_create(rows)
    body = client_for(trader).get(reverse("bot-detail", args=[bot.pk])).content.decode()
    log = body[body.index('id="events"') : body.index("</table>", body.index('id="events"'))]
    assert log.count("<tr ") == 3
    assert log.count("×15") == 2 and "loop started" in log
    assert '<option value="order">order</option>' in body


def test_quality_panel_windows_latency_markouts_and_incident_resolve(trader, other_trader):
    from apps.core.models import Incident
    from apps.orders.models import Order

    bot = make_bot(trader, name="q-bot")
    now = timezone.now()
    for i in range(4):
        order = Order.objects.create(
            bot=bot, account=bot.exchange_account, market=bot.market, client_order_id=f"q-{i}", side="buy",
            price=Decimal("100"), quantity=Decimal("0.01"), filled_quantity=Decimal("0.005") if i < 2 else 0,
            status="cancelled", cancel_requested_at=now - timedelta(seconds=30),
        )  # fmt: skip
        Order.objects.filter(pk=order.pk).update(
            created=now - timedelta(minutes=5),
            acked_at=now - timedelta(minutes=5) + timedelta(milliseconds=10 * (i + 1)),
            closed_at=now - timedelta(seconds=30) + timedelta(milliseconds=5),
        )
    Fill.objects.create(
        ts=now - timedelta(minutes=4), account=bot.exchange_account, bot=bot, venue_trade_id="qf", side="buy",
        price=Decimal("100"), quantity=Decimal("0.01"), fee=Decimal("0.001"), markout_1s=Decimal("0.5"),
        markout_10s=Decimal("-1"), markout_60s=Decimal("2"),
    )  # fmt: skip
    incident = Incident.objects.create(owner=trader, bot=bot, kind="orphan_order", message="orphan q-9 cancelled")
    client = client_for(trader)
    page = client.get(reverse("bot-detail", args=[bot.pk])).content.decode()
    assert reverse("bot-quality", args=[bot.pk]) in page and 'id="queue"' in page
    body = client.get(reverse("bot-quality", args=[bot.pk]), {"window": "15m"}).content.decode()
    assert "Fill ratio (filled / placed qty)" in body and "25 %" in body  # 0.01 of 0.04 placed
    assert "place → ack" in body and "cancel → ack" in body and "5.0 ms" in body
    assert 'data-fig="fig-quality-markouts"' in body and 'data-fig="fig-quality-latency"' in body
    assert "Orphan order on the venue" in body and "Reconciliation cancelled it" in body
    assert f'data-resolve="{incident.pk}"' in body
    assert client_for(other_trader).get(reverse("bot-quality", args=[bot.pk])).status_code == 404
    assert client_for(other_trader).post(reverse("incident-resolve", args=[incident.pk])).status_code == 404
    client.post(reverse("incident-resolve", args=[incident.pk]))
    incident.refresh_from_db()
    assert incident.resolved


def test_market_page_keeps_its_feed_wanted(trader, clean_redis):
    from django.conf import settings

    from apps.core.health import redis_client

    market = sim_market()
    client_for(trader).get(reverse("market-detail", args=[market.pk]))
    redis = redis_client()
    key = f"{settings.REDIS_PREFIX}:feed:{market.venue}:{market.symbol}:interest"
    assert redis.get(key) == f"{market.venue}|{market.symbol}".encode()
    assert 0 < redis.ttl(key) <= 60
    assert redis.sismember(f"{settings.REDIS_PREFIX}:feeds:wanted", f"{market.venue}|{market.symbol}")


def test_overview_portfolio_holdings_allocation_and_value(trader):
    bot = make_bot(trader, name="pf-bot")  # paper account: 10000 USDT and 0.5 BTC
    now = timezone.now()
    Fill.objects.create(
        ts=now, account=bot.exchange_account, bot=bot, venue_trade_id="pf1", side="buy",
        price=Decimal("100"), quantity=Decimal("0.5"), fee=Decimal("0.05"),
    )  # fmt: skip
    from apps.marketdata.models import TopOfBookSnapshot

    TopOfBookSnapshot.objects.create(
        market=bot.market, ts=now, bid=Decimal("99"), bid_qty=1, ask=Decimal("101"), ask_qty=1
    )
    body = client_for(trader).get(reverse("overview")).content.decode()
    card = body[body.index('id="portfolio"') :]
    # BTC 0.5 + 0.5 = 1 at mid 100 = 100; USDT 10000 - 50 - 0.05 = 9949.95; total 10049.95
    assert "total 10049.95 USDT" in card
    assert ">1</td>" in card and "9949.95" in card
    assert 'data-fig="fig-portfolio-assets"' in card and 'data-fig="fig-portfolio-accounts"' in card


def test_reloading_the_backtest_parameters_for_another_strategy_marks_no_field_missing(trader):
    """The backtest form's "reload for the chosen strategy" posts the form; nothing was submitted
    yet, so no field is marked missing, and the chosen strategy's parameters are shown."""
    from django.urls import reverse

    from tests.apps.dashboard.conftest import client_for

    response = client_for(trader).post(reverse("backtests"), {"refresh": "1", "strategy": "avellaneda_stoikov"})
    body = response.content.decode()
    assert response.status_code == 200
    assert "This field is required" not in body and 'name="params.risk_aversion"' in body
