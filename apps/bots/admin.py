"""Admin for bots (lifecycle actions through the services), config versions and events."""

from __future__ import annotations

from django.contrib import admin, messages

from apps.accounts.admin_support import ReadOnlyAdmin
from apps.accounts.errors import FieldErrors
from apps.bots import services
from apps.bots.models import Bot, BotConfigVersion, BotEvent


class BotConfigVersionInline(admin.TabularInline):
    model = BotConfigVersion
    extra = 0
    can_delete = False
    fields = ("version", "strategy", "params", "risk", "author", "ts")
    readonly_fields = fields
    ordering = ("-version",)

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Bot)
class BotAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "name",
        "owner",
        "exchange_account",
        "market",
        "strategy",
        "desired_state",
        "actual_state",
        "config_version",
        "updated",
    )
    list_filter = ("desired_state", "actual_state", "strategy", "market__venue")
    search_fields = ("name", "owner__username", "client_id_prefix", "market__symbol")
    list_select_related = ("owner", "exchange_account", "market")
    inlines = [BotConfigVersionInline]
    actions = ["start_bots", "pause_bots", "resume_bots", "stop_bots", "kill_bots"]

    def _apply(self, request, queryset, service, verb: str) -> None:
        done, failed = 0, []
        for bot in queryset:
            try:
                service(bot=bot, actor=request.user)
                done += 1
            except FieldErrors as exc:
                failed.append(f"{bot.name}: {exc}")
        self.message_user(request, f"{verb}: {done} bot(s)")
        for message in failed:
            self.message_user(request, message, messages.WARNING)

    @admin.action(description="Start selected bots")
    def start_bots(self, request, queryset):
        self._apply(request, queryset, services.bot_start, "started")

    @admin.action(description="Pause selected bots")
    def pause_bots(self, request, queryset):
        self._apply(request, queryset, services.bot_pause, "paused")

    @admin.action(description="Resume selected bots")
    def resume_bots(self, request, queryset):
        self._apply(request, queryset, services.bot_resume, "resumed")

    @admin.action(description="Stop selected bots")
    def stop_bots(self, request, queryset):
        self._apply(request, queryset, services.bot_stop, "stopped")

    @admin.action(description="KILL selected bots (cancel all orders now)")
    def kill_bots(self, request, queryset):
        self._apply(request, queryset, services.bot_kill, "killed")


@admin.register(BotConfigVersion)
class BotConfigVersionAdmin(ReadOnlyAdmin):
    list_display = ("bot", "version", "strategy", "author", "ts")
    list_filter = ("strategy",)
    search_fields = ("bot__name", "author__username")


@admin.register(BotEvent)
class BotEventAdmin(ReadOnlyAdmin):
    list_display = ("ts", "bot", "kind", "code", "message")
    list_filter = ("kind", "code")
    search_fields = ("bot__name", "code", "message")
    list_select_related = ("bot",)
