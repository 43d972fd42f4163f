"""REST API routes of the research app (mounted under /api/v1/)."""

from rest_framework.routers import SimpleRouter

from apps.research.api import OptimisationViewSet, RecordingViewSet
from apps.research.profiles_api import SimulatorProfileViewSet

router = SimpleRouter()
router.register("optimisations", OptimisationViewSet, basename="optimisation")
router.register("recordings", RecordingViewSet, basename="recording")
router.register("simulator-profiles", SimulatorProfileViewSet, basename="simulator-profile")
urlpatterns = router.urls
