from django.contrib import admin

from apps.marketdata.models import DepthSnapshot, TopOfBookSnapshot, Trade


class _MarketDataAdmin(admin.ModelAdmin):
    """Time-series rows are written by the feeds: read-only here, newest first."""

    list_filter = ("market__venue", "market__symbol")
    search_fields = ("market__symbol", "market__venue")
    date_hierarchy = "ts"
    list_select_related = ("market",)
    ordering = ("-ts",)
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(TopOfBookSnapshot)
class TopOfBookSnapshotAdmin(_MarketDataAdmin):
    list_display = ("ts", "market", "bid", "bid_qty", "ask", "ask_qty")


@admin.register(DepthSnapshot)
class DepthSnapshotAdmin(_MarketDataAdmin):
    list_display = ("ts", "market", "mid", "levels")

    @admin.display(description="levels (bids x asks)")
    def levels(self, obj):
        return f"{len(obj.bids)} x {len(obj.asks)}"


@admin.register(Trade)
class TradeAdmin(_MarketDataAdmin):
    list_display = ("ts", "market", "aggressor", "price", "qty", "trade_id")
    list_filter = (*_MarketDataAdmin.list_filter, "aggressor")
    search_fields = (*_MarketDataAdmin.search_fields, "trade_id")
