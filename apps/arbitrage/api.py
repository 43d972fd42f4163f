"""REST API of the arbitrage tracker: opportunities (any authenticated user; filters validated,
errors name the parameter) and the signed-in user's settings."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, viewsets
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.api_support import CanTrade
from apps.arbitrage import selectors, services
from apps.arbitrage.models import ArbitrageSettings, Opportunity
from apps.core.fields import QueryDateTimeField
from apps.core.serializers import ModelSerializer


class OpportunitySerializer(ModelSerializer):
    fast_read = True  # long time-series pages (apps/core/serializers.py)

    class Meta:
        model = Opportunity
        fields = [
            "id",
            "ts",
            "symbol",
            "buy_venue",
            "sell_venue",
            "buy_price",
            "sell_price",
            "size",
            "gross_edge_bps",
            "net_edge_bps",
            "net_profit",
            "fees",
            "slippage",
            "staleness_ms",
            "latency_ms",
            "executed",
            "realized_edge_bps",
            "realized_profit",
        ]
        read_only_fields = fields


class OpportunityQuery(serializers.Serializer):
    symbol = serializers.CharField(required=False, max_length=64)
    venues = serializers.CharField(required=False, help_text="comma-separated; both legs on these venues")
    min_net_edge_bps = serializers.DecimalField(required=False, max_digits=18, decimal_places=4)
    start = QueryDateTimeField(required=False)
    end = QueryDateTimeField(required=False)
    executed = serializers.BooleanField(required=False, allow_null=True, default=None)

    def validate_venues(self, value: str) -> list[str]:
        venues = [v.strip() for v in value.split(",") if v.strip()]
        if not venues:
            raise serializers.ValidationError("give one or more venue names separated by commas")
        return venues

    def validate(self, attrs):
        if attrs.get("start") and attrs.get("end") and attrs["start"] >= attrs["end"]:
            raise serializers.ValidationError({"start": "must be before end"})
        return attrs


class OpportunityViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """Detected cross-venue opportunities, newest first (market-wide data)."""

    serializer_class = OpportunitySerializer
    filter_backends: list = []  # filters are validated by OpportunityQuery below

    def get_queryset(self):
        query = OpportunityQuery(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        q = query.validated_data
        return selectors.opportunity_list(
            user=self.request.user,
            symbol=q.get("symbol"),
            venues=q.get("venues", ()),
            min_net_edge_bps=q.get("min_net_edge_bps"),
            start=q.get("start"),
            end=q.get("end"),
            executed=q.get("executed"),
        )

    @extend_schema(parameters=[OpportunityQuery])
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)


class ArbitrageSettingsSerializer(ModelSerializer):
    symbols = serializers.ListField(child=serializers.CharField(max_length=64), required=False, max_length=100)
    venues = serializers.ListField(child=serializers.CharField(max_length=64), required=False, max_length=100)
    updated = serializers.DateTimeField(read_only=True, allow_null=True, help_text="null until first saved (defaults)")

    class Meta:
        model = ArbitrageSettings
        fields = ["min_profit", "notify_threshold_bps", "paper_execute", "symbols", "venues", "updated"]
        read_only_fields = ["updated"]


class ArbitrageSettingsView(APIView):
    """The signed-in user's tracker settings (defaults until saved); viewers may only read them."""

    permission_classes = [IsAuthenticated, CanTrade]

    @extend_schema(responses=ArbitrageSettingsSerializer)
    def get(self, request):
        return Response(ArbitrageSettingsSerializer(selectors.arbitrage_settings_get(user=request.user)).data)

    @extend_schema(request=ArbitrageSettingsSerializer, responses=ArbitrageSettingsSerializer)
    def put(self, request):
        return self._save(request, partial=False)

    @extend_schema(request=ArbitrageSettingsSerializer, responses=ArbitrageSettingsSerializer)
    def patch(self, request):
        return self._save(request, partial=True)

    def _save(self, request, *, partial: bool):
        data = ArbitrageSettingsSerializer(data=request.data, partial=partial)
        data.is_valid(raise_exception=True)
        try:
            settings = services.arbitrage_settings_update(user=request.user, **data.validated_data)
        except services.ArbitrageInputError as exc:
            raise ValidationError(exc.errors)
        return Response(ArbitrageSettingsSerializer(settings).data)
