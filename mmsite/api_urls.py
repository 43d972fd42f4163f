"""REST API v1 routes; each app contributes its own ``api_urls`` module."""

from collections import OrderedDict

from django.urls import URLPattern, URLResolver, include, path, reverse
from drf_spectacular.utils import extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.api import MeView, ObtainTokenView


def _list_routes(patterns, found: OrderedDict) -> None:
    """Every named route without URL arguments (collections: ``*-list`` and plain views)."""
    for entry in patterns:
        if isinstance(entry, URLResolver):
            _list_routes(entry.url_patterns, found)
        elif isinstance(entry, URLPattern) and entry.name and not entry.pattern.regex.groupindex:
            if entry.name.endswith("-detail") or "format" in entry.pattern.regex.pattern:
                continue
            try:
                found.setdefault(entry.name.removesuffix("-list"), reverse(entry.name))
            except Exception:  # a route that needs arguments after all
                continue


class ApiRootView(APIView):
    """The API's entry point: every collection and endpoint by name, plus the docs and schema."""

    permission_classes = [AllowAny]

    @extend_schema(exclude=True)
    def get(self, request):
        found: OrderedDict[str, str] = OrderedDict()
        _list_routes(urlpatterns, found)
        found.pop("api-root", None)
        links = {name: request.build_absolute_uri(url) for name, url in sorted(found.items())}
        return Response(
            {
                "docs": request.build_absolute_uri(reverse("api-docs")),
                "schema": request.build_absolute_uri(reverse("api-schema")),
                "auth": "POST auth/token/ {username, password}, then send 'Authorization: Token <key>'",
                "endpoints": links,
            }
        )


urlpatterns = [
    path("", ApiRootView.as_view(), name="api-root"),
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
