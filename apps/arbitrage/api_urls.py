"""REST API routes of the arbitrage app (mounted under /api/v1/)."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from apps.arbitrage.api import ArbitrageSettingsView, OpportunityViewSet

router = SimpleRouter()
router.register("arbitrage/opportunities", OpportunityViewSet, basename="arbitrage-opportunity")

urlpatterns = [
    path("arbitrage/settings/", ArbitrageSettingsView.as_view(), name="arbitrage-settings"),
    *router.urls,
]
