from django.contrib import admin

from apps.core.models import Incident


@admin.register(Incident)
class IncidentAdmin(admin.ModelAdmin):
    list_display = ("ts", "kind", "owner", "bot", "account", "resolved", "message")
    list_filter = ("kind", "resolved")
    search_fields = ("message", "owner__username", "bot__name")
    actions = ["mark_resolved"]

    @admin.action(description="Mark selected incidents resolved")
    def mark_resolved(self, request, queryset):
        queryset.update(resolved=True)
