"""REST API routes of the backtests app (mounted under /api/v1/)."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from apps.backtests.api import BacktestRunViewSet

router = SimpleRouter()
router.register("backtests", BacktestRunViewSet, basename="backtest")

urlpatterns = [
    # The CSV export is addressed like a file: no trailing slash.
    path(
        "backtests/<str:pk>/metrics.csv",
        BacktestRunViewSet.as_view({"get": "metrics_csv"}),
        name="backtest-metrics-csv",
    ),
    *router.urls,
]
