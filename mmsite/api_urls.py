"""REST API v1 routes; each app contributes its own router entries."""

from django.urls import path

from apps.accounts.api import MeView, ObtainTokenView

urlpatterns = [
    path("auth/token/", ObtainTokenView.as_view(), name="api-token"),
    path("me/", MeView.as_view(), name="api-me"),
]
