"""REST API of backtests: create (queued as a job), list, retrieve with progress, cancel,
fills and a metrics CSV. Another user's run is a 404."""

from __future__ import annotations

import csv
import io

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response

from apps.backtests import selectors, services
from apps.backtests.models import BacktestFill, BacktestRun, DataSource, RunStatus
from apps.backtests.validation import BacktestInputError
from apps.core.serializers import ModelSerializer


class BacktestRunSerializer(ModelSerializer):
    owner = serializers.CharField(source="owner.username", read_only=True)

    class Meta:
        model = BacktestRun
        fields = [
            "id",
            "owner",
            "name",
            "strategy",
            "params",
            "risk",
            "data_source",
            "data_params",
            "status",
            "progress",
            "eta_seconds",
            "cancel_requested",
            "metrics",
            "pnl_decomposition",
            "equity_curve",
            "error",
            "created",
            "started",
            "finished",
        ]
        read_only_fields = [
            f for f in fields if f not in ("name", "strategy", "params", "risk", "data_source", "data_params")
        ]


class BacktestRunListSerializer(BacktestRunSerializer):
    """A run in a list: everything but the equity curve (up to 1,000 points each)."""

    class Meta(BacktestRunSerializer.Meta):
        fields = [f for f in BacktestRunSerializer.Meta.fields if f != "equity_curve"]
        read_only_fields = fields


class BacktestCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=128)
    strategy = serializers.CharField(max_length=64)
    params = serializers.JSONField(required=False, default=dict)
    risk = serializers.JSONField(required=False, default=dict)
    data_source = serializers.ChoiceField(choices=DataSource.choices)
    data_params = serializers.JSONField(required=False, default=dict)


class BacktestFillSerializer(ModelSerializer):
    class Meta:
        model = BacktestFill
        fields = ["ts", "side", "price", "qty", "fee", "liquidity"]


class BacktestRunViewSet(
    mixins.CreateModelMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Backtest runs of the signed-in user (operators: everyone's)."""

    lookup_value_regex = "[^/]+"  # ids like "0.5" reach the view and get a JSON 404
    serializer_class = BacktestRunSerializer
    filterset_fields = ["status", "strategy", "data_source"]
    ordering_fields = ["created", "finished", "name", "status"]
    ordering = ["-created"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation
            return BacktestRun.objects.none()
        runs = selectors.backtest_list(user=self.request.user)
        # A list leaves the equity curve out (up to 1,000 points a run): do not load it either.
        return runs.defer("equity_curve") if self.action == "list" else runs

    def get_serializer_class(self):
        return BacktestRunListSerializer if self.action == "list" else BacktestRunSerializer

    def get_object(self) -> BacktestRun:
        run = selectors.backtest_get(user=self.request.user, run_id=self.kwargs["pk"])
        if run is None:
            raise NotFound("backtest not found")
        return run

    @extend_schema(request=BacktestCreateSerializer, responses={201: BacktestRunSerializer})
    def create(self, request, *args, **kwargs):
        data = BacktestCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            run = services.backtest_create(owner=request.user, **data.validated_data)
        except BacktestInputError as exc:
            if "owner" in exc.errors:
                return Response({"detail": exc.errors["owner"]}, status=status.HTTP_403_FORBIDDEN)
            raise ValidationError(exc.errors)
        return Response(BacktestRunSerializer(run).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: BacktestRunSerializer, 409: OpenApiResponse(description="finished")})
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        run = self.get_object()
        if run.owner_id != request.user.pk and not request.user.is_operator:
            raise NotFound("backtest not found")
        try:
            run = services.backtest_cancel(run=run)
        except services.BacktestStateError as exc:
            return Response({"status": [str(exc)]}, status=status.HTTP_409_CONFLICT)
        return Response(BacktestRunSerializer(run).data)

    @extend_schema(responses=BacktestFillSerializer(many=True))
    @action(detail=True, methods=["get"])
    def fills(self, request, pk=None):
        fills = selectors.backtest_fills(run=self.get_object())
        page = self.paginate_queryset(fills)
        return self.get_paginated_response(BacktestFillSerializer(page, many=True).data)

    @extend_schema(responses={(200, "text/csv"): OpenApiTypes.STR, 409: OpenApiResponse(description="not finished")})
    def metrics_csv(self, request, pk=None):
        run = self.get_object()
        if run.status != RunStatus.SUCCEEDED and not run.metrics:
            return Response({"status": [f"run is {run.status}; metrics exist once it has succeeded"]}, status=409)
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["metric", "value"])
        writer.writerows(selectors.backtest_metrics_rows(run=run))
        response = HttpResponse(buffer.getvalue(), content_type="text/csv")
        response["Content-Disposition"] = f'attachment; filename="backtest-{run.pk}-metrics.csv"'
        return response
