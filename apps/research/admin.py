from django.contrib import admin

from apps.research.models import Optimisation, SimulatorProfile


@admin.register(Optimisation)
class OptimisationAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "owner", "strategy", "objective", "status", "progress", "created")
    list_filter = ("status", "strategy", "objective")
    search_fields = ("name", "owner__username")
    readonly_fields = ("results", "trials_done", "progress", "started", "finished")


@admin.register(SimulatorProfile)
class SimulatorProfileAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "owner", "bot", "queue_model", "place_samples", "cancel_samples", "created")
    list_filter = ("queue_model", "cancel_source")
    search_fields = ("name", "owner__username")
    readonly_fields = ("place_ack_ns", "cancel_ack_ns", "place_samples", "cancel_samples", "live", "created")
