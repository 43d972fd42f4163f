"""Admin for orders (cancel action through the service) and fills."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import ValidationError

from apps.accounts.admin_support import ReadOnlyAdmin
from apps.orders.models import Fill, Order
from apps.orders.services import order_cancel_request


@admin.register(Order)
class OrderAdmin(ReadOnlyAdmin):
    list_display = (
        "client_order_id",
        "bot",
        "account",
        "market",
        "side",
        "price",
        "quantity",
        "filled_quantity",
        "status",
        "cancel_requested_at",
        "created",
    )
    list_filter = ("status", "side", "time_in_force", "post_only", "market__venue")
    search_fields = ("client_order_id", "venue_order_id", "bot__name", "account__label")
    list_select_related = ("bot", "account", "market")
    date_hierarchy = "created"
    actions = ["cancel_orders"]

    @admin.action(description="Cancel selected orders")
    def cancel_orders(self, request, queryset):
        done = 0
        for order in queryset:
            try:
                order_cancel_request(order=order, actor=request.user)
                done += 1
            except ValidationError as exc:
                self.message_user(request, f"{order.client_order_id}: {exc.messages[0]}", messages.WARNING)
        self.message_user(request, f"cancel requested for {done} order(s)")


@admin.register(Fill)
class FillAdmin(ReadOnlyAdmin):
    list_display = (
        "ts",
        "venue_trade_id",
        "client_order_id",
        "account",
        "bot",
        "side",
        "price",
        "quantity",
        "fee",
        "liquidity",
    )
    list_filter = ("side", "liquidity", "fee_currency")
    search_fields = ("venue_trade_id", "client_order_id", "bot__name", "account__label")
    list_select_related = ("account", "bot")
    date_hierarchy = "ts"
