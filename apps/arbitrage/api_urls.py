"""REST API routes of the arbitrage app (mounted under /api/v1/)."""

urlpatterns: list = []
