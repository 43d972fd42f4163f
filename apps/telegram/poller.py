"""Long polling of the Telegram Bot API (``getUpdates``): each message is answered with
``sendMessage``. No public webhook is needed. HTTP goes through the notifications transport
(``http_post``: SSRF guard, no redirects, errors without bodies)."""

from __future__ import annotations

import json
import logging
import time

from django.conf import settings
from django.db import close_old_connections

from apps.notifications.transports import TELEGRAM_LIMIT, TransportError, http_post
from apps.telegram import commands

logger = logging.getLogger(__name__)


class Poller:
    def __init__(self, token: str | None = None, *, timeout_s: int = 25) -> None:
        self.token = token if token is not None else settings.TELEGRAM_CONTROL_BOT_TOKEN
        if not self.token:
            raise ValueError("TELEGRAM_CONTROL_BOT_TOKEN is not set; accepted: the bot token BotFather gave")
        self.timeout_s = timeout_s
        self.offset = 0

    def _call(self, method: str, data: dict, timeout: float) -> object:
        base = settings.TELEGRAM_API_BASE.rstrip("/")
        answer = http_post(
            f"{base}/bot{self.token}/{method}",
            body=json.dumps(data).encode(),
            headers={"Content-Type": "application/json"},
            timeout=timeout,
        )
        payload = answer.json()
        if not (isinstance(payload, dict) and payload.get("ok")):
            raise TransportError(f"Telegram refused {method}")
        return payload.get("result")

    def poll_once(self) -> int:
        """One ``getUpdates`` (waits up to ``timeout_s`` for news); every message answered.
        Returns how many updates were handled."""
        updates = self._call(
            "getUpdates",
            {"offset": self.offset, "timeout": self.timeout_s, "allowed_updates": ["message"]},
            timeout=self.timeout_s + 10,
        )
        for update in updates or []:
            self.offset = max(self.offset, int(update.get("update_id", 0)) + 1)  # acknowledged next call
            message = update.get("message") or {}
            chat = message.get("chat") or {}
            chat_id, text = chat.get("id"), message.get("text")
            if not isinstance(chat_id, int) or not isinstance(text, str):
                continue
            try:
                reply = commands.handle(chat_id, text, private=chat.get("type") == "private")
            except Exception:  # one bad message never stops the poller
                logger.exception("telegram command from chat %s failed", chat_id)
                reply = "Something went wrong handling that command; it was logged."
            try:
                self._call("sendMessage", {"chat_id": chat_id, "text": reply[:TELEGRAM_LIMIT]}, timeout=10)
            except (TransportError, ValueError) as exc:
                logger.warning("telegram reply to chat %s not sent: %s", chat_id, exc)
        return len(updates or [])

    def run(self, *, once: bool = False) -> None:
        from apps.core.metrics import process_started

        process_started("telegram")
        backoff = 1.0
        while True:
            close_old_connections()  # a long-lived process: drop a connection the database closed
            try:
                self.poll_once()
                backoff = 1.0
            except (TransportError, ValueError) as exc:
                logger.warning("telegram getUpdates failed: %s; retrying in %.0f s", exc, backoff)
                time.sleep(backoff)
                backoff = min(backoff * 2, 60.0)
            if once:
                return
