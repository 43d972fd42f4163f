from django import forms
from django.contrib import admin, messages

from apps.notifications import services
from apps.notifications.models import Delivery, NotificationChannel, NotificationRule


class NotificationChannelForm(forms.ModelForm):
    """Checks kind and config like the API does (the secret is set through the API only)."""

    class Meta:
        model = NotificationChannel
        fields = ("owner", "kind", "name", "config", "enabled", "rate_limit_per_minute")

    def clean(self):
        cleaned = super().clean()
        if "kind" in cleaned and "config" in cleaned:
            errors = services.channel_config_errors(
                kind=cleaned["kind"], config=cleaned["config"], has_secret=self.instance.has_secret
            )
            for field, message in errors.items():
                target = field if field in ("kind", "config") else None
                text = "; ".join(f"{k}: {v}" for k, v in message.items()) if isinstance(message, dict) else message
                self.add_error(target, f"{field}: {text}" if target is None else text)
        return cleaned


@admin.register(NotificationChannel)
class NotificationChannelAdmin(admin.ModelAdmin):
    form = NotificationChannelForm
    list_display = ("id", "name", "owner", "kind", "enabled", "rate_limit_per_minute", "secret_masked", "created")
    list_filter = ("kind", "enabled")
    search_fields = ("name", "owner__username")
    list_select_related = ("owner",)
    # The encrypted secret is never shown or edited here (set it through the API or pages).
    exclude = ("secret_enc",)
    readonly_fields = ("secret_masked", "created")
    actions = ["enable", "disable", "send_test"]

    def save_model(self, request, obj, form, change):
        # A Discord webhook URL typed into config is sealed into the encrypted secret.
        if obj.kind == "discord" and (obj.config or {}).get("url"):
            from apps.exchanges import crypto

            url = obj.config["url"]
            obj.secret_enc = crypto.encrypt(url)
            obj.config = {"url_hint": services.discord_url_hint(url)}
        super().save_model(request, obj, form, change)

    @admin.display(description="secret")
    def secret_masked(self, obj):
        return "•••• (set)" if obj.has_secret else "—"

    @admin.action(description="Enable selected channels")
    def enable(self, request, queryset):
        self.message_user(request, f"{queryset.update(enabled=True)} channel(s) enabled.")

    @admin.action(description="Disable selected channels")
    def disable(self, request, queryset):
        self.message_user(request, f"{queryset.update(enabled=False)} channel(s) disabled.")

    @admin.action(description="Send a test message")
    def send_test(self, request, queryset):
        for channel in queryset:
            services.channel_send_test(channel=channel)
        self.message_user(request, f"{queryset.count()} test message(s) queued.")


@admin.register(NotificationRule)
class NotificationRuleAdmin(admin.ModelAdmin):
    list_display = ("id", "owner", "event_kind", "bot", "threshold", "enabled", "created")
    list_filter = ("event_kind", "enabled")
    search_fields = ("owner__username", "bot__name")
    list_select_related = ("owner", "bot")
    filter_horizontal = ("channels",)
    raw_id_fields = ("bot",)
    actions = ["enable", "disable"]

    @admin.action(description="Enable selected rules")
    def enable(self, request, queryset):
        self.message_user(request, f"{queryset.update(enabled=True)} rule(s) enabled.")

    @admin.action(description="Disable selected rules")
    def disable(self, request, queryset):
        self.message_user(request, f"{queryset.update(enabled=False)} rule(s) disabled.")


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = ("id", "created", "channel", "event_kind", "status", "attempts", "sent_at", "last_error")
    list_filter = ("status", "event_kind", "channel__kind")
    search_fields = ("dedupe_key", "channel__name", "channel__owner__username")
    date_hierarchy = "created"
    list_select_related = ("channel",)
    actions = ["requeue"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.action(description="Send failed / rate-limited deliveries again")
    def requeue(self, request, queryset):
        done = sum(services.delivery_requeue(delivery=d) for d in queryset)
        skipped = queryset.count() - done
        self.message_user(request, f"{done} delivery(ies) queued again.")
        if skipped:
            self.message_user(
                request, f"{skipped} skipped: only failed or rate-limited ones are resent.", messages.WARNING
            )
