"""REST API routes of the bots app (mounted under /api/v1/)."""

urlpatterns: list = []
