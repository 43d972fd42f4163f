from django.contrib import admin

from apps.research.models import Optimisation


@admin.register(Optimisation)
class OptimisationAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "owner", "strategy", "objective", "status", "progress", "created")
    list_filter = ("status", "strategy", "objective")
    search_fields = ("name", "owner__username")
    readonly_fields = ("results", "trials_done", "progress", "started", "finished")
