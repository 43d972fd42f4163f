from django.contrib import admin

from apps.dashboard.models import RiskDefaults


@admin.register(RiskDefaults)
class RiskDefaultsAdmin(admin.ModelAdmin):
    list_display = ("owner", "updated")
    search_fields = ("owner__username",)
    readonly_fields = ("updated",)
