"""REST API routes of the accounts app besides auth (mounted under /api/v1/)."""

from rest_framework.routers import SimpleRouter

from apps.accounts.api import AuditLogViewSet

router = SimpleRouter()
router.register("audit-log", AuditLogViewSet, basename="audit-log")

urlpatterns = router.urls
