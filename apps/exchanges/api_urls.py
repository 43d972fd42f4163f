"""REST API routes of the exchanges app (mounted under /api/v1/), plus the audit log of accounts."""

from django.urls import include, path, re_path
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
    # mmsite/api_urls.py has no include for apps.accounts routes other than auth: mount them here.
    path("", include("apps.accounts.api_urls")),
    *router.urls,
]
