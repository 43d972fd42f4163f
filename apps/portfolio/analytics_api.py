"""REST API: a bot's quality analytics (JSON and CSV), shadow backtests and their comparison
with live results, and the operators' fee and latency observatory."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from decimal import Decimal

from django.http import HttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.api_support import CanTrade, IsOperator, service_errors
from apps.bots.models import Bot
from apps.core.fields import QueryDateTimeField
from apps.portfolio.analytics import bot_analytics, flatten, shadow_backtest_create, shadow_comparison

BOT_ID = OpenApiParameter("id", int, OpenApiParameter.PATH, description="bot id")


class PeriodSerializer(serializers.Serializer):
    start = QueryDateTimeField(required=False, help_text="default: 24 hours before end")
    end = QueryDateTimeField(required=False, help_text="default: now")

    def validate(self, attrs):
        end = attrs.get("end") or timezone.now()
        start = attrs.get("start") or end - timedelta(days=1)
        if start >= end:
            raise serializers.ValidationError({"start": f"{start.isoformat()} is not before end {end.isoformat()}"})
        return {"start": start, "end": end}


def _bot_id(pk: str) -> int:
    try:
        return int(pk)
    except ValueError:
        raise exceptions.NotFound("no such bot") from None


def _analytics(request, pk: str) -> dict:
    query = PeriodSerializer(data=request.query_params)
    query.is_valid(raise_exception=True)
    try:
        with service_errors():
            return bot_analytics(user=request.user, bot_id=_bot_id(pk), **query.validated_data)
    except Bot.DoesNotExist:
        raise exceptions.NotFound("no such bot") from None


class BotAnalyticsView(APIView):
    """PnL decomposition (spread capture, inventory, fees), markouts at 1/10/60 s, quote uptime,
    time at top of book, order-to-trade ratio, average quoted spread and inventory distribution
    of a bot over ``[start, end)``."""

    @extend_schema(parameters=[PeriodSerializer, BOT_ID], responses=OpenApiTypes.OBJECT)
    def get(self, request, pk: str):
        return Response(_analytics(request, pk))


class BotAnalyticsCsvView(APIView):
    """The same analytics as CSV rows ``metric,value`` (nested names dotted)."""

    @extend_schema(parameters=[PeriodSerializer, BOT_ID], responses={(200, "text/csv"): OpenApiTypes.STR})
    def get(self, request, pk: str):
        data = _analytics(request, pk)
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["metric", "value"])
        for name, value in flatten(data):
            writer.writerow([name, "" if value is None else value])
        response = HttpResponse(buffer.getvalue(), content_type="text/csv")
        response["Content-Disposition"] = f'attachment; filename="bot-{data["bot"]}-analytics.csv"'
        return response


class ShadowRequestSerializer(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    profile = serializers.IntegerField(required=False, help_text="a simulator profile id")
    profile_seed = serializers.IntegerField(required=False, min_value=0, default=0)


class ShadowBacktestView(APIView):
    """Queue a shadow backtest: the bot's strategy over the stored market of a period."""

    permission_classes = [*APIView.permission_classes, CanTrade]

    @extend_schema(request=ShadowRequestSerializer, parameters=[BOT_ID], responses={201: OpenApiTypes.OBJECT})
    def post(self, request, pk: str):
        body = ShadowRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        from apps.backtests.validation import BacktestInputError

        try:
            with service_errors():
                run = shadow_backtest_create(user=request.user, bot_id=_bot_id(pk), **body.validated_data)
        except Bot.DoesNotExist:
            raise exceptions.NotFound("no such bot") from None
        except BacktestInputError as exc:
            raise exceptions.ValidationError(exc.errors) from None
        return Response({"run": run.pk, "status": run.status, "name": run.name}, status=status.HTTP_201_CREATED)


class ShadowComparisonView(APIView):
    """Live vs shadow-backtest results of a bot over the run's period, with the drift."""

    @extend_schema(
        parameters=[BOT_ID, OpenApiParameter("run_id", int, OpenApiParameter.PATH)], responses=OpenApiTypes.OBJECT
    )
    def get(self, request, pk: str, run_id: str):
        from apps.backtests.selectors import backtest_get

        run = backtest_get(user=request.user, run_id=run_id)
        if run is None:
            raise exceptions.NotFound("no such backtest run")
        try:
            with service_errors():
                return Response(shadow_comparison(user=request.user, bot_id=_bot_id(pk), run=run))
        except Bot.DoesNotExist:
            raise exceptions.NotFound("no such bot") from None


class ObservatoryQuerySerializer(serializers.Serializer):
    days = serializers.IntegerField(min_value=1, max_value=90, default=7)


class VenueObservatoryView(APIView):
    """Operators: realized fees, taker slippage and order-entry latency per venue, aggregated
    across all users (no user or account is named)."""

    permission_classes = [*APIView.permission_classes, IsOperator]

    @extend_schema(parameters=[ObservatoryQuerySerializer], responses=OpenApiTypes.OBJECT)
    def get(self, request):
        from apps.core.observatory import venue_observatory

        query = ObservatoryQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        end = timezone.now()
        start = end - timedelta(days=query.validated_data["days"])
        venues = [
            {k: str(v) if isinstance(v, Decimal) else v for k, v in row.items()}
            for row in venue_observatory(start=start, end=end)
        ]
        return Response({"start": start, "end": end, "venues": venues})
