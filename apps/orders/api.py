"""REST API for orders (read, cancel) and fills (read)."""

from __future__ import annotations

from datetime import UTC

from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from apps.accounts.api_support import CanTrade, service_errors
from apps.core.filters import IdFilter
from apps.core.serializers import ModelSerializer
from apps.orders.models import Fill, Liquidity, Order, OrderSide, OrderStatus
from apps.orders.selectors import fill_list, order_list
from apps.orders.services import order_cancel_request


class OrderSerializer(ModelSerializer):
    fast_read = True  # long time-series pages (apps/core/serializers.py)
    symbol = serializers.CharField(source="market.symbol", read_only=True)
    venue = serializers.CharField(source="market.venue", read_only=True)

    class Meta:
        model = Order
        fields = [
            "id",
            "bot",
            "account",
            "market",
            "venue",
            "symbol",
            "client_order_id",
            "venue_order_id",
            "side",
            "price",
            "quantity",
            "filled_quantity",
            "average_price",
            "status",
            "reason",
            "time_in_force",
            "post_only",
            "cancel_requested_at",
            "created",
            "updated",
            "closed_at",
        ]
        read_only_fields = fields


class OrderFilter(filters.FilterSet):
    bot = IdFilter(field_name="bot_id")
    account = IdFilter(field_name="account_id")
    status = filters.MultipleChoiceFilter(choices=OrderStatus.choices)
    side = filters.ChoiceFilter(choices=OrderSide.choices)
    client_order_id = filters.CharFilter()

    class Meta:
        model = Order
        fields = ["bot", "account", "status", "side", "client_order_id"]


class OrderViewSet(viewsets.ReadOnlyModelViewSet):
    """Orders of your accounts and of bots shared with you."""

    queryset = Order.objects.none()
    serializer_class = OrderSerializer
    lookup_value_regex = "[^/]+"  # ids like "0.5" reach the view and get a JSON 404
    filterset_class = OrderFilter
    permission_classes = [IsAuthenticated, CanTrade]  # CanTrade alone lets anonymous reads through
    ordering_fields = ["created", "updated", "price", "quantity", "status", "id"]

    def get_queryset(self):
        return order_list(user=self.request.user)

    @extend_schema(request=None, responses=OrderSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        """Ask the workers to cancel this order."""
        order = self.get_object()
        if not (request.user.is_operator or order.account.owner_id == request.user.pk):
            raise exceptions.PermissionDenied("only the account's owner can cancel its orders")
        with service_errors():
            order = order_cancel_request(order=order, actor=request.user)
        return Response(OrderSerializer(order).data)


class FillSerializer(ModelSerializer):
    fast_read = True  # long time-series pages (apps/core/serializers.py)

    class Meta:
        model = Fill
        fields = [
            "id",
            "ts",
            "account",
            "bot",
            "order",
            "client_order_id",
            "venue_trade_id",
            "side",
            "price",
            "quantity",
            "fee",
            "fee_currency",
            "liquidity",
            "realized_pnl",
            "markout_1s",
            "markout_10s",
            "markout_60s",
        ]
        read_only_fields = fields


class UtcDateTimeFilter(filters.IsoDateTimeFilter):
    """An ISO 8601 time filter that queries in UTC (any offset accepted, out-of-range refused)."""

    def __init__(self, *args, param: str, **kwargs):
        self.param = param
        super().__init__(*args, **kwargs)

    def filter(self, qs, value):
        if value is not None:
            try:
                value = value.astimezone(UTC)
            except (OverflowError, ValueError):
                raise exceptions.ValidationError({self.param: [f"{value.isoformat()} is out of range"]}) from None
        return super().filter(qs, value)


class FillFilter(filters.FilterSet):
    bot = IdFilter(field_name="bot_id")
    account = IdFilter(field_name="account_id")
    side = filters.ChoiceFilter(choices=OrderSide.choices)
    liquidity = filters.ChoiceFilter(choices=Liquidity.choices)
    start = UtcDateTimeFilter(param="start", field_name="ts", lookup_expr="gte", help_text="from this time (inclusive)")
    end = UtcDateTimeFilter(param="end", field_name="ts", lookup_expr="lt", help_text="until this time (exclusive)")

    class Meta:
        model = Fill
        fields = ["bot", "account", "side", "liquidity", "start", "end"]


class FillViewSet(viewsets.ReadOnlyModelViewSet):
    """Fills of your accounts and of bots shared with you, newest first."""

    queryset = Fill.objects.none()
    serializer_class = FillSerializer
    lookup_value_regex = "[^/]+"  # ids like "0.5" reach the view and get a JSON 404
    filterset_class = FillFilter
    ordering_fields = ["ts", "price", "quantity", "id"]

    def get_queryset(self):
        return fill_list(user=self.request.user)
