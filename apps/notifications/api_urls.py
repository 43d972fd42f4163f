"""REST API routes of the notifications app (mounted under /api/v1/)."""

from rest_framework.routers import SimpleRouter

from apps.notifications.api import ChannelViewSet, DeliveryViewSet, RuleViewSet

router = SimpleRouter()
router.register("notifications/channels", ChannelViewSet, basename="notification-channel")
router.register("notifications/rules", RuleViewSet, basename="notification-rule")
router.register("notifications/deliveries", DeliveryViewSet, basename="notification-delivery")

urlpatterns = router.urls
