"""REST API routes of the exchanges app (mounted under /api/v1/)."""

from django.urls import re_path
from rest_framework.routers import SimpleRouter

from apps.exchanges.api import ExchangeAccountViewSet, MarketViewSet

router = SimpleRouter()
router.register("exchange-accounts", ExchangeAccountViewSet, basename="exchange-account")
router.register("markets", MarketViewSet, basename="market")

urlpatterns = [
    re_path(
        r"^accounts/(?P<pk>[^/]+)/kill/$",
        ExchangeAccountViewSet.as_view({"post": "kill"}),
        name="account-kill",
    ),
    *router.urls,
]
