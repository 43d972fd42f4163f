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
