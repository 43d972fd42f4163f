from django.contrib import admin, messages

from apps.backtests import services
from apps.backtests.models import BacktestFill, BacktestRun


class BacktestFillInline(admin.TabularInline):
    model = BacktestFill
    extra = 0
    can_delete = False
    fields = ("ts", "side", "price", "qty", "fee", "liquidity")
    readonly_fields = fields
    show_change_link = False
    max_num = 0


@admin.register(BacktestRun)
class BacktestRunAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "owner", "strategy", "data_source", "status", "progress", "created", "finished")
    list_filter = ("status", "data_source", "strategy")
    search_fields = ("name", "owner__username", "strategy")
    date_hierarchy = "created"
    list_select_related = ("owner",)
    readonly_fields = (
        "owner",
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
    )
    actions = ["cancel_runs"]

    def has_add_permission(self, request):
        return False  # runs are created through the API/pages so their inputs are validated

    @admin.action(description="Cancel selected runs")
    def cancel_runs(self, request, queryset):
        done, refused = 0, []
        for run in queryset:
            try:
                services.backtest_cancel(run=run)
                done += 1
            except services.BacktestStateError as exc:
                refused.append(str(exc))
        self.message_user(request, f"{done} run(s) cancelled or cancelling.")
        if refused:
            self.message_user(request, "; ".join(refused), level=messages.WARNING)


@admin.register(BacktestFill)
class BacktestFillAdmin(admin.ModelAdmin):
    list_display = ("run", "ts", "side", "price", "qty", "fee", "liquidity")
    list_filter = ("side", "liquidity")
    search_fields = ("run__name", "run__owner__username")
    list_select_related = ("run",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
