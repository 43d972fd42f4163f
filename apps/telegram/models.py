"""A user's Telegram chat, linked with a one-time code from Settings; nothing else is obeyed."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class TelegramLink(models.Model):
    """One per user. ``code_digest`` (SHA-256 of the one-time code) is set while a link is being
    made; ``chat_id`` once the code came back from a chat. ``pending`` holds a destructive
    command waiting for /confirm until ``pending_expires``."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="telegram_link")
    chat_id = models.BigIntegerField(null=True, blank=True, unique=True)
    code_digest = models.CharField(max_length=64, blank=True, default="", db_index=True)
    code_expires = models.DateTimeField(null=True, blank=True)
    linked_at = models.DateTimeField(null=True, blank=True)
    pending = models.CharField(max_length=64, blank=True, default="")
    pending_expires = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "telegram_link"

    def __str__(self) -> str:
        return f"telegram link of {self.user_id}: {'linked' if self.chat_id else 'not linked'}"
