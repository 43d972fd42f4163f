"""REST API routes of the backtests app (mounted under /api/v1/)."""

urlpatterns: list = []
