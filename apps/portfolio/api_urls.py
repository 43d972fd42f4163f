"""REST API routes of the portfolio app (mounted under /api/v1/)."""

from django.urls import re_path
from rest_framework.routers import SimpleRouter

from apps.portfolio.api import BalanceViewSet, BotPnlView

router = SimpleRouter()
router.register("balances", BalanceViewSet, basename="balance")

urlpatterns = [re_path(r"^bots/(?P<pk>[^/]+)/pnl/$", BotPnlView.as_view(), name="bot-pnl"), *router.urls]
