import csv

from django.contrib import admin
from django.http import HttpResponse

from apps.arbitrage.models import ArbitrageSettings, Opportunity


@admin.register(Opportunity)
class OpportunityAdmin(admin.ModelAdmin):
    list_display = (
        "ts",
        "symbol",
        "buy_venue",
        "sell_venue",
        "size",
        "gross_edge_bps",
        "net_edge_bps",
        "net_profit",
        "executed",
        "realized_edge_bps",
    )
    list_filter = ("symbol", "buy_venue", "sell_venue", "executed")
    search_fields = ("symbol", "buy_venue", "sell_venue")
    date_hierarchy = "ts"
    ordering = ("-ts",)
    show_full_result_count = False
    actions = ["export_csv"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.action(description="Export selected as CSV")
    def export_csv(self, request, queryset):
        response = HttpResponse(content_type="text/csv")
        response["Content-Disposition"] = 'attachment; filename="opportunities.csv"'
        fields = [f.name for f in Opportunity._meta.fields]
        writer = csv.writer(response)
        writer.writerow(fields)
        for row in queryset.values_list(*fields):
            writer.writerow(row)
        return response


@admin.register(ArbitrageSettings)
class ArbitrageSettingsAdmin(admin.ModelAdmin):
    list_display = ("owner", "min_profit", "notify_threshold_bps", "paper_execute", "symbols", "venues", "updated")
    list_filter = ("paper_execute",)
    search_fields = ("owner__username",)
    list_select_related = ("owner",)
    actions = ["disable_paper_execution"]

    @admin.action(description="Turn paper execution off")
    def disable_paper_execution(self, request, queryset):
        self.message_user(request, f"{queryset.update(paper_execute=False)} setting(s) changed.")
