"""REST API routes of the marketdata app (mounted under /api/v1/)."""

urlpatterns: list = []
