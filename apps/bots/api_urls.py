"""REST API routes of the bots app (mounted under /api/v1/)."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from apps.bots.api import BotViewSet, KillAllView

router = SimpleRouter()
router.register("bots", BotViewSet, basename="bot")

urlpatterns = [path("kill-all/", KillAllView.as_view(), name="kill-all"), *router.urls]
