"""REST API of market data: candles, top-of-book series, recent trades, depth, heat map.

Market data is public to every authenticated user. Query parameters are validated; every
error names the parameter (``{"interval": ["..."]}``).
"""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.fields import QueryDateTimeField
from apps.core.timeseries import parse_interval
from apps.exchanges.models import Market
from apps.marketdata import selectors

CANDLE_INTERVALS = ("1m", "5m", "1h", "1d")
# The widest time range per request: at most ~10,000 buckets of the requested width.
MAX_BUCKETS = 10_000
MAX_HEATMAP_COLUMNS = 1_500  # each column carries a whole depth snapshot
MAX_RAW_RANGE = timedelta(days=1)  # unbucketed top-of-book series (also capped by its row limit)
MAX_RAW_ROWS = 10_000


class MarketField(serializers.PrimaryKeyRelatedField):
    def __init__(self, **kwargs):
        super().__init__(queryset=Market.objects.all(), **kwargs)
        self.error_messages["does_not_exist"] = (
            "market {pk_value} does not exist; accepted: an id from /api/v1/markets/"
        )


class RangeQuery(serializers.Serializer):
    market = MarketField(help_text="market id")
    start = QueryDateTimeField(required=False, help_text="ISO 8601; default: end minus 500 buckets")
    end = QueryDateTimeField(required=False, help_text="ISO 8601, exclusive; default: now")

    width_field = "interval"
    default_width = timedelta(minutes=1)
    max_buckets = MAX_BUCKETS

    def _width(self, attrs) -> timedelta | None:
        value = attrs.get(self.width_field)
        return parse_interval(value) if value else None

    def validate(self, attrs):
        width = self._width(attrs)
        end = attrs.get("end") or timezone.now()
        start = attrs.get("start") or end - 500 * (width or self.default_width)
        if start >= end:
            raise serializers.ValidationError({"start": f"{start.isoformat()} is not before end {end.isoformat()}"})
        limit = width * self.max_buckets if width else MAX_RAW_RANGE
        if end - start > limit:
            raise serializers.ValidationError(
                {"end": f"range {end - start} is longer than the maximum {limit} for this request; narrow start..end"}
            )
        attrs["start"], attrs["end"] = start, end
        return attrs


class CandlesQuery(RangeQuery):
    interval = serializers.ChoiceField(choices=CANDLE_INTERVALS, default="1m")


class TopOfBookQuery(RangeQuery):
    interval = serializers.ChoiceField(
        choices=CANDLE_INTERVALS, required=False, help_text="bucket width; omit for every snapshot"
    )
    limit = serializers.IntegerField(
        min_value=1, max_value=MAX_RAW_ROWS, default=5_000, help_text="without interval: at most this many snapshots"
    )


class HeatmapQuery(RangeQuery):
    width_field = "bucket"
    max_buckets = MAX_HEATMAP_COLUMNS
    bucket = serializers.ChoiceField(choices=CANDLE_INTERVALS, default="1m")


class TradesQuery(serializers.Serializer):
    market = MarketField(help_text="market id")
    limit = serializers.IntegerField(min_value=1, max_value=1000, default=100)
    before = QueryDateTimeField(required=False)


class DepthQuery(serializers.Serializer):
    market = MarketField(help_text="market id")
    at = QueryDateTimeField(required=False, help_text="latest snapshot at or before this time")


class CandleSerializer(serializers.Serializer):
    bucket = serializers.DateTimeField()
    open = serializers.DecimalField(max_digits=38, decimal_places=18)
    high = serializers.DecimalField(max_digits=38, decimal_places=18)
    low = serializers.DecimalField(max_digits=38, decimal_places=18)
    close = serializers.DecimalField(max_digits=38, decimal_places=18)
    volume = serializers.DecimalField(max_digits=38, decimal_places=18)
    trades = serializers.IntegerField()


class TopOfBookSerializer(serializers.Serializer):
    ts = serializers.DateTimeField(required=False)
    bucket = serializers.DateTimeField(required=False)
    bid = serializers.DecimalField(max_digits=38, decimal_places=18)
    bid_qty = serializers.DecimalField(max_digits=38, decimal_places=18)
    ask = serializers.DecimalField(max_digits=38, decimal_places=18)
    ask_qty = serializers.DecimalField(max_digits=38, decimal_places=18)


class TradeSerializer(serializers.Serializer):
    ts = serializers.DateTimeField()
    price = serializers.DecimalField(max_digits=38, decimal_places=18)
    qty = serializers.DecimalField(max_digits=38, decimal_places=18)
    aggressor = serializers.CharField()
    trade_id = serializers.CharField()


class DepthSerializer(serializers.Serializer):
    ts = serializers.DateTimeField()
    mid = serializers.DecimalField(max_digits=38, decimal_places=18, allow_null=True)
    bids = serializers.ListField(child=serializers.ListField(child=serializers.CharField()))
    asks = serializers.ListField(child=serializers.ListField(child=serializers.CharField()))


class HeatmapColumnSerializer(DepthSerializer):
    bucket = serializers.DateTimeField()


class HeatmapSerializer(serializers.Serializer):
    market = serializers.IntegerField()
    bucket_seconds = serializers.IntegerField()
    columns = HeatmapColumnSerializer(many=True)


def _query(serializer_class, request) -> dict:
    query = serializer_class(data=request.query_params)
    query.is_valid(raise_exception=True)
    return query.validated_data


class CandlesView(APIView):
    """OHLCV candles computed from stored trades."""

    @extend_schema(parameters=[CandlesQuery], responses=CandleSerializer(many=True))
    def get(self, request):
        q = _query(CandlesQuery, request)
        rows = selectors.candles(market=q["market"], interval=q["interval"], start=q["start"], end=q["end"])
        return Response(CandleSerializer(rows, many=True).data)


class TopOfBookView(APIView):
    """Best bid/ask over time (every snapshot, or the last one per bucket)."""

    @extend_schema(parameters=[TopOfBookQuery], responses=TopOfBookSerializer(many=True))
    def get(self, request):
        q = _query(TopOfBookQuery, request)
        rows = selectors.top_of_book_series(
            market=q["market"], start=q["start"], end=q["end"], interval=q.get("interval"), limit=q["limit"]
        )
        return Response(TopOfBookSerializer(rows, many=True).data)


class TradesView(APIView):
    """The latest public trades, newest first."""

    @extend_schema(parameters=[TradesQuery], responses=TradeSerializer(many=True))
    def get(self, request):
        q = _query(TradesQuery, request)
        rows = selectors.recent_trades(market=q["market"], limit=q["limit"], before=q.get("before"))
        return Response(TradeSerializer(rows, many=True).data)


class DepthView(APIView):
    """The latest stored depth snapshot (404 when none is stored)."""

    @extend_schema(parameters=[DepthQuery], responses={200: DepthSerializer})
    def get(self, request):
        q = _query(DepthQuery, request)
        snapshot = selectors.latest_depth(market=q["market"], at=q.get("at"))
        if snapshot is None:
            return Response({"detail": "no depth snapshot stored for this market and time"}, status=404)
        return Response(DepthSerializer(snapshot).data)


class HeatmapView(APIView):
    """Depth over time, one snapshot per bucket, for a liquidity heat map."""

    @extend_schema(parameters=[HeatmapQuery], responses=HeatmapSerializer)
    def get(self, request):
        q = _query(HeatmapQuery, request)
        data = selectors.heatmap(market=q["market"], start=q["start"], end=q["end"], bucket=q["bucket"])
        return Response(HeatmapSerializer(data).data)
