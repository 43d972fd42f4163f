"""REST API v1 routes; each app contributes its own ``api_urls`` module."""

from django.urls import include, path

from apps.accounts.api import MeView, ObtainTokenView

urlpatterns = [
    path("auth/token/", ObtainTokenView.as_view(), name="api-token"),
    path("me/", MeView.as_view(), name="api-me"),
    path("", include("apps.accounts.api_urls")),
    path("", include("apps.exchanges.api_urls")),
    path("", include("apps.bots.api_urls")),
    path("", include("apps.orders.api_urls")),
    path("", include("apps.portfolio.api_urls")),
    path("", include("apps.marketdata.api_urls")),
    path("", include("apps.arbitrage.api_urls")),
    path("", include("apps.backtests.api_urls")),
    path("", include("apps.research.api_urls")),
    path("", include("apps.notifications.api_urls")),
]
