"""REST API routes of the exchanges app (mounted under /api/v1/)."""

urlpatterns: list = []
