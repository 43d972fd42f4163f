from django.contrib import admin

from apps.research.models import Optimisation, SimulatorProfile, UserRecording


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


@admin.register(UserRecording)
class UserRecordingAdmin(admin.ModelAdmin):
    """Registered recordings (uploads and ``record_feed`` output); the files and the quality
    report are what registration measured, so they are read-only here."""

    list_display = ("id", "name", "owner", "market", "source", "lines", "bad_lines", "gaps", "first_ts", "last_ts")
    list_filter = ("source",)
    search_fields = ("name", "owner__username")
    readonly_fields = (
        "market", "files", "size_bytes", "first_ts", "last_ts", "lines", "counts", "bad_lines", "bad_samples",
        "bad_reasons", "gaps", "unsynced_seconds", "source", "created",
    )  # fmt: skip
