"""REST API routes of the orders app (mounted under /api/v1/)."""

from rest_framework.routers import SimpleRouter

from apps.orders.api import FillViewSet, OrderViewSet

router = SimpleRouter()
router.register("orders", OrderViewSet, basename="order")
router.register("fills", FillViewSet, basename="fill")

urlpatterns = router.urls
