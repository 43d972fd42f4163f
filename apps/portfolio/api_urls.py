"""REST API routes of the portfolio app (mounted under /api/v1/)."""

from django.urls import re_path
from rest_framework.routers import SimpleRouter

from apps.portfolio.analytics_api import (
    BotAnalyticsCsvView,
    BotAnalyticsView,
    ShadowBacktestView,
    ShadowComparisonView,
    VenueObservatoryView,
)
from apps.portfolio.api import BalanceViewSet, BotPnlView
from apps.portfolio.inventory_api import InventoryTargetViewSet, InventoryView
from apps.portfolio.positions_api import PositionsView

router = SimpleRouter()
router.register("balances", BalanceViewSet, basename="balance")
router.register("portfolio/targets", InventoryTargetViewSet, basename="inventory-target")

urlpatterns = [
    re_path(r"^bots/(?P<pk>[^/]+)/pnl/$", BotPnlView.as_view(), name="bot-pnl"),
    # H10: quality analytics (JSON and CSV), shadow backtests, fee and latency observatory
    re_path(r"^bots/(?P<pk>[^/]+)/analytics/$", BotAnalyticsView.as_view(), name="bot-analytics"),
    re_path(r"^bots/(?P<pk>[^/]+)/analytics\.csv$", BotAnalyticsCsvView.as_view(), name="bot-analytics-csv"),
    re_path(r"^bots/(?P<pk>[^/]+)/shadow-backtests/$", ShadowBacktestView.as_view(), name="bot-shadow-backtests"),
    re_path(
        r"^bots/(?P<pk>[^/]+)/shadow-backtests/(?P<run_id>[^/]+)/$",
        ShadowComparisonView.as_view(),
        name="bot-shadow-comparison",
    ),
    re_path(r"^observatory/venues/$", VenueObservatoryView.as_view(), name="observatory-venues"),
    re_path(r"^portfolio/inventory/$", InventoryView.as_view(), name="portfolio-inventory"),
    re_path(r"^portfolio/positions/$", PositionsView.as_view(), name="portfolio-positions"),
    *router.urls,
]
