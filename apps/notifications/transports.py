"""How a message reaches each kind of channel.

- email: Django's configured email backend (SMTP in production);
- Telegram: Bot API ``POST {api_base}/bot<token>/sendMessage`` with ``{"chat_id", "text"}``;
- Discord: webhook ``POST <url>`` with ``{"content"}`` (at most 2,000 characters);
- webhook: ``POST <url>`` with the JSON message, signed with HMAC-SHA256 over
  ``"<timestamp>.<body>"``: headers ``X-MM-Timestamp`` (unix seconds) and
  ``X-MM-Signature: sha256=<hex>``. Receivers recompute the signature with the shared secret
  and reject old timestamps (replays).

All outbound HTTP goes through :func:`http_post`. Failures raise :class:`TransportError`;
``permanent`` ones (bad token, 4xx other than 408/429) are not retried.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import smtplib
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.mail import EmailMessage, get_connection

DISCORD_LIMIT = 2000
TELEGRAM_LIMIT = 4096
SIGNATURE_HEADER = "X-MM-Signature"
TIMESTAMP_HEADER = "X-MM-Timestamp"
USER_AGENT = "MarketMakerSuite-notifications/1"


class TransportError(Exception):
    """Delivery failed. ``permanent``: retrying cannot help (e.g. 401, 404, bad chat id)."""

    def __init__(self, message: str, *, permanent: bool = False, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.retry_after = retry_after


@dataclass(frozen=True)
class HttpResponse:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")


def http_post(
    url: str, *, body: bytes, headers: dict[str, str] | None = None, timeout: float | None = None
) -> HttpResponse:
    """POST ``body`` to ``url`` (the one way notifications talk HTTP). 2xx returns the response;
    408/429/5xx and network errors raise a retryable :class:`TransportError`, other statuses a
    permanent one."""
    timeout = timeout if timeout is not None else settings.NOTIFICATIONS_HTTP_TIMEOUT
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"User-Agent": USER_AGENT, **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return HttpResponse(answer.status, answer.read(65_536))
    except urllib.error.HTTPError as exc:
        detail = exc.read(500).decode("utf-8", "replace") if exc.fp else ""
        retry_after = exc.headers.get("Retry-After") if exc.headers else None
        retryable = exc.code in (408, 429) or exc.code >= 500
        raise TransportError(
            f"HTTP {exc.code} from {_host(url)}: {detail[:300]}",
            permanent=not retryable,
            retry_after=_seconds(retry_after),
        ) from exc
    except (TimeoutError, urllib.error.URLError, ConnectionError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TransportError(f"cannot reach {_host(url)}: {reason}") from exc


def _host(url: str) -> str:
    return urllib.parse.urlsplit(url).netloc


def _seconds(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _json_body(data: dict) -> bytes:
    return json.dumps(data, separators=(",", ":"), sort_keys=True, default=str).encode()


def text_of(message: dict) -> str:
    subject, body = message.get("subject", ""), message.get("body", "")
    return f"{subject}\n\n{body}".strip() if body else subject


# --- one function per channel kind --------------------------------------------------------------
def send_email(config: dict, secret: str, message: dict) -> str:
    try:
        connection = get_connection(fail_silently=False, timeout=getattr(settings, "EMAIL_TIMEOUT", 10))
        sent = EmailMessage(
            subject=message.get("subject", "")[:200],
            body=message.get("body", ""),
            from_email=settings.DEFAULT_FROM_EMAIL,
            to=[config["address"]],
            connection=connection,
        ).send()
    except smtplib.SMTPRecipientsRefused as exc:
        raise TransportError(f"recipient refused: {exc.recipients}", permanent=True) from exc
    except (smtplib.SMTPException, OSError) as exc:
        raise TransportError(f"email not sent: {type(exc).__name__}: {exc}") from exc
    if sent != 1:
        raise TransportError("email backend accepted no message")
    return "sent by email"


def send_telegram(config: dict, secret: str, message: dict) -> str:
    base = (config.get("api_base") or settings.TELEGRAM_API_BASE).rstrip("/")
    answer = http_post(
        f"{base}/bot{secret}/sendMessage",
        body=_json_body({"chat_id": config["chat_id"], "text": text_of(message)[:TELEGRAM_LIMIT]}),
        headers={"Content-Type": "application/json"},
    )
    try:
        data = answer.json()
    except ValueError as exc:
        raise TransportError("Telegram answered with something other than JSON") from exc
    if not (isinstance(data, dict) and data.get("ok")):
        raise TransportError(f"Telegram refused: {data!r:.300}", permanent=True)
    return f"telegram message {data.get('result', {}).get('message_id')}"


def send_discord(config: dict, secret: str, message: dict) -> str:
    answer = http_post(
        config["url"],
        body=_json_body({"content": text_of(message)[:DISCORD_LIMIT]}),
        headers={"Content-Type": "application/json"},
    )
    return f"discord HTTP {answer.status}"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The webhook signature: ``sha256=`` + hex HMAC-SHA256 of ``"<timestamp>.<body>"``."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(
    secret: str, timestamp: str, body: bytes, signature: str, *, max_age_s: int = 300, now: float | None = None
) -> bool:
    """Receiver side (documented for integrators, used by the tests): signature and freshness."""
    try:
        age = abs((now if now is not None else time.time()) - int(timestamp))
    except ValueError:
        return False
    return age <= max_age_s and hmac.compare_digest(sign(secret, timestamp, body), signature)


def send_webhook(config: dict, secret: str, message: dict, *, now: float | None = None) -> str:
    body = _json_body(message)
    timestamp = str(int(now if now is not None else time.time()))
    answer = http_post(
        config["url"],
        body=body,
        headers={
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(secret, timestamp, body),
        },
    )
    return f"webhook HTTP {answer.status}"


SENDERS = {"email": send_email, "telegram": send_telegram, "discord": send_discord, "webhook": send_webhook}


def send(kind: str, config: dict, secret: str, message: dict) -> str:
    """Send ``message`` (``{"subject", "body", "data", "event_kind"}``) on a channel of ``kind``."""
    sender = SENDERS.get(kind)
    if sender is None:
        raise TransportError(f"kind: {kind!r} has no transport; accepted: {', '.join(SENDERS)}", permanent=True)
    return sender(config, secret, message)
