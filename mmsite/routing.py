"""Websocket routes. Each consumer authenticates and checks object permission before joining a group."""

from django.urls import path

from apps.core.consumers import PingConsumer
from apps.dashboard.consumers import (
    ArbitrageConsumer,
    BacktestConsumer,
    BookConsumer,
    BotConsumer,
    PortfolioConsumer,
)

websocket_urlpatterns = [
    path("ws/ping/", PingConsumer.as_asgi()),
    path("ws/book/<str:venue>/<path:symbol>/", BookConsumer.as_asgi()),
    path("ws/bot/<int:bot_id>/", BotConsumer.as_asgi()),
    path("ws/arbitrage/", ArbitrageConsumer.as_asgi()),
    path("ws/portfolio/", PortfolioConsumer.as_asgi()),
    path("ws/backtest/<int:run_id>/", BacktestConsumer.as_asgi()),
]
