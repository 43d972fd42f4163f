"""REST API for PnL series and balances."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, serializers, viewsets
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.api_support import service_errors
from apps.bots.models import Bot
from apps.core.fields import QueryDateTimeField
from apps.core.serializers import ModelSerializer
from apps.portfolio.models import Balance
from apps.portfolio.selectors import PNL_INTERVALS, balance_list, pnl_series

MONEY = {"max_digits": 38, "decimal_places": 18, "allow_null": True}


class PnlQuerySerializer(serializers.Serializer):
    interval = serializers.ChoiceField(choices=PNL_INTERVALS, default="1h")
    start = QueryDateTimeField(required=False, help_text="default: one span before end")
    end = QueryDateTimeField(required=False, help_text="default: now")


class PnlPointSerializer(serializers.Serializer):
    bucket = serializers.DateTimeField()
    position = serializers.DecimalField(**MONEY)
    cash = serializers.DecimalField(**MONEY)
    mid = serializers.DecimalField(**MONEY)
    realized = serializers.DecimalField(**MONEY)
    unrealized = serializers.DecimalField(**MONEY)
    fees = serializers.DecimalField(**MONEY)
    equity = serializers.DecimalField(**MONEY)
    peak_equity = serializers.DecimalField(**MONEY)
    equity_high = serializers.DecimalField(**MONEY)
    equity_low = serializers.DecimalField(**MONEY)
    drawdown = serializers.DecimalField(**MONEY)


class PnlSeriesSerializer(serializers.Serializer):
    bot = serializers.IntegerField()
    interval = serializers.CharField()
    start = serializers.DateTimeField(allow_null=True, help_text="null when there are no points and no start/end given")
    end = serializers.DateTimeField(allow_null=True, help_text="null when there are no points and no start/end given")
    points = PnlPointSerializer(many=True)


class BotPnlView(APIView):
    """A bot's PnL bucketed by 1m, 1h or 1d (last values per bucket, equity high/low, max drawdown)."""

    @extend_schema(
        parameters=[PnlQuerySerializer, OpenApiParameter("id", int, OpenApiParameter.PATH, description="bot id")],
        responses=PnlSeriesSerializer,
    )
    def get(self, request, pk: str):
        try:
            bot_id = int(pk)
        except ValueError:
            raise exceptions.NotFound("no such bot") from None
        query = PnlQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        values = query.validated_data
        try:
            with service_errors():
                points = pnl_series(user=request.user, bot_id=bot_id, **values)
        except Bot.DoesNotExist:
            raise exceptions.NotFound("no such bot") from None
        if points:
            start, end = values.get("start") or points[0]["bucket"], values.get("end") or points[-1]["bucket"]
        else:
            start = end = values.get("start") or values.get("end")
        payload = {"bot": bot_id, "interval": values["interval"], "start": start, "end": end, "points": points}
        return Response(PnlSeriesSerializer(payload).data)


class BalanceSerializer(ModelSerializer):
    class Meta:
        model = Balance
        fields = ["id", "account", "asset", "free", "total", "updated_at"]
        read_only_fields = fields


class BalanceViewSet(viewsets.ReadOnlyModelViewSet):
    """Balances of your exchange accounts."""

    queryset = Balance.objects.none()
    serializer_class = BalanceSerializer
    lookup_value_regex = "[^/]+"  # ids like "0.5" reach the view and get a JSON 404
    filterset_fields = ["account", "asset"]
    ordering_fields = ["asset", "total", "updated_at"]

    def get_queryset(self):
        return balance_list(user=self.request.user)
