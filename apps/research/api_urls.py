"""REST API routes of the research app (mounted under /api/v1/)."""

from rest_framework.routers import SimpleRouter

from apps.research.api import OptimisationViewSet, RecordingViewSet

router = SimpleRouter()
router.register("optimisations", OptimisationViewSet, basename="optimisation")
router.register("recordings", RecordingViewSet, basename="recording")
urlpatterns = router.urls
