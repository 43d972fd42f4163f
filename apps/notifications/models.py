"""Notification channels (where to send), rules (what to send) and the delivery log."""

from django.conf import settings
from django.db import models


class ChannelKind(models.TextChoices):
    EMAIL = "email", "Email"
    TELEGRAM = "telegram", "Telegram"
    DISCORD = "discord", "Discord"
    WEBHOOK = "webhook", "Webhook (HMAC-signed)"


class EventKind(models.TextChoices):
    FILL = "fill", "Fill"
    RISK_BREACH = "risk_breach", "Risk breach"
    BOT_PAUSED = "bot_paused", "Bot paused"
    BOT_ERROR = "bot_error", "Bot error"
    BOT_STOPPED = "bot_stopped", "Bot stopped"
    FEED_DOWN = "feed_down", "Feed down"
    ARBITRAGE = "arbitrage", "Arbitrage opportunity"
    DAILY_SUMMARY = "daily_summary", "Daily summary"
    TEST = "test", "Test message"


class NotificationChannel(models.Model):
    """A destination. ``config`` holds the public part (``{"address"}`` for email,
    ``{"chat_id"}`` for Telegram, ``{"url"}`` for Discord and webhooks); ``secret_enc`` the
    encrypted Telegram bot token or webhook HMAC secret (see ``apps.exchanges.crypto``)."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notification_channels")
    kind = models.CharField(max_length=16, choices=ChannelKind.choices)
    name = models.CharField(max_length=64)
    config = models.JSONField(default=dict, blank=True)
    secret_enc = models.TextField(blank=True, default="", editable=False)
    enabled = models.BooleanField(default=True)
    rate_limit_per_minute = models.PositiveIntegerField(default=20)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["owner", "name"], name="notif_channel_unique_owner_name")]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"

    @property
    def has_secret(self) -> bool:
        return bool(self.secret_enc)


class NotificationRule(models.Model):
    """Send events of ``event_kind`` (optionally only of ``bot``, optionally only at or above
    ``threshold`` — e.g. net edge bps for arbitrage, fill notional) to ``channels``."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notification_rules")
    event_kind = models.CharField(max_length=16, choices=EventKind.choices)
    bot = models.ForeignKey("bots.Bot", on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    threshold = models.DecimalField(max_digits=38, decimal_places=18, null=True, blank=True)
    channels = models.ManyToManyField(NotificationChannel, related_name="rules")
    enabled = models.BooleanField(default=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.event_kind} rule #{self.pk}"


class DeliveryStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"
    RATE_LIMITED = "rate_limited", "Rate limited"
    DEDUPLICATED = "deduplicated", "Deduplicated"


class Delivery(models.Model):
    """One message to one channel. ``dedupe_key`` is unique per channel: the same event
    notified twice is delivered once."""

    channel = models.ForeignKey(NotificationChannel, on_delete=models.CASCADE, related_name="deliveries")
    rule = models.ForeignKey(NotificationRule, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    event_kind = models.CharField(max_length=16, choices=EventKind.choices)
    dedupe_key = models.CharField(max_length=200)
    payload = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.QUEUED)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    created = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created", "-id"]
        verbose_name_plural = "deliveries"
        constraints = [
            models.UniqueConstraint(fields=["channel", "dedupe_key"], name="notif_delivery_unique_channel_key")
        ]
        indexes = [models.Index(fields=["status", "created"], name="notif_delivery_status_created")]

    def __str__(self) -> str:
        return f"{self.event_kind} -> {self.channel_id} ({self.status})"
