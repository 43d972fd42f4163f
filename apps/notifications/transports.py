"""How a message reaches each kind of channel.

- email: Django's configured email backend (SMTP in production);
- Telegram: Bot API ``POST {api_base}/bot<token>/sendMessage`` with ``{"chat_id", "text"}``;
- Discord: webhook ``POST <url>`` with ``{"content"}`` (at most 2,000 characters);
- webhook: ``POST <url>`` with the JSON message, signed with HMAC-SHA256 over
  ``"<timestamp>.<body>"``: headers ``X-MM-Timestamp`` (unix seconds) and
  ``X-MM-Signature: sha256=<hex>``. Receivers recompute the signature with the shared secret
  and reject old timestamps (replays).

All outbound HTTP goes through :func:`http_post`. Failures raise :class:`TransportError`;
``permanent`` ones (bad token, 4xx other than 408/429, redirects, private hosts) are not retried.
Outbound requests are guarded against SSRF: the host is resolved at send time and refused when
any address is private, loopback, link-local, multicast, reserved or unspecified (unless
``settings.NOTIFICATIONS_ALLOW_PRIVATE_HOSTS``); redirects are never followed; errors keep only
the status code and host, never a response body (it could echo secrets or internal data).
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import ipaddress
import json
import smtplib
import socket
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


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Refuse every redirect: urllib then raises the 3xx as an HTTPError."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


class PrivateHostRefused(OSError):
    """The connection would reach a non-public address (checked on the address actually dialled)."""


def _guarded_create_connection(address, timeout=socket._GLOBAL_DEFAULT_TIMEOUT, source_address=None, **kwargs):
    """``socket.create_connection`` that dials only addresses passing :func:`address_refusal`, so a
    DNS answer changing between the check and the connection (rebinding) cannot reach a private host."""
    if allow_private_hosts():
        return socket.create_connection(address, timeout, source_address, **kwargs)
    host, port = address
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    error: OSError | None = None
    for family, kind, proto, _, sockaddr in infos:
        reason = address_refusal(str(sockaddr[0]))
        if reason is not None:
            raise PrivateHostRefused(f"refused: {host} resolves to a {reason}")
        sock = socket.socket(family, kind, proto)
        try:
            if timeout is not socket._GLOBAL_DEFAULT_TIMEOUT:
                sock.settimeout(timeout)
            if source_address:
                sock.bind(source_address)
            sock.connect(sockaddr)
            return sock
        except OSError as exc:
            error = exc
            sock.close()
    raise error or OSError(f"no address for {host}")


class _GuardedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._create_connection = _guarded_create_connection


class _GuardedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._create_connection = _guarded_create_connection


class _GuardedHTTPHandler(urllib.request.HTTPHandler):
    def http_open(self, req):
        return self.do_open(_GuardedHTTPConnection, req)


class _GuardedHTTPSHandler(urllib.request.HTTPSHandler):
    def https_open(self, req):
        return self.do_open(_GuardedHTTPSConnection, req, context=self._context)


# No redirects, and every dialled address checked; proxies from the environment are not used
# (a proxy would resolve the host itself, out of reach of the check).
_OPENER = urllib.request.build_opener(
    urllib.request.ProxyHandler({}), _NoRedirect, _GuardedHTTPHandler, _GuardedHTTPSHandler
)


def allow_private_hosts() -> bool:
    """True when notifications may reach private/loopback hosts (tests, trusted intranets)."""
    return bool(getattr(settings, "NOTIFICATIONS_ALLOW_PRIVATE_HOSTS", False))


def address_refusal(address: str) -> str | None:
    """Why ``address`` (an IP literal) may not be reached, or None when it is public."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for attribute, label in (
        ("is_loopback", "loopback"),
        ("is_link_local", "link-local"),
        ("is_multicast", "multicast"),
        ("is_unspecified", "unspecified"),
        ("is_reserved", "reserved"),
        ("is_private", "private"),
    ):
        if getattr(ip, attribute):
            return f"{label} address {ip}"
    if not ip.is_global:
        return f"non-public address {ip}"
    return None


def check_destination(url: str) -> None:
    """Refuse (permanently) a URL whose host resolves to a non-public address."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname
    if parts.scheme not in ("http", "https") or not host:
        raise TransportError(f"refused: {_host(url)!r} is not an http(s) URL host", permanent=True)
    if allow_private_hosts():
        return
    try:
        infos = socket.getaddrinfo(
            host, parts.port or (443 if parts.scheme == "https" else 80), type=socket.SOCK_STREAM
        )
    except (OSError, UnicodeError) as exc:
        raise TransportError(f"cannot resolve {host}: {type(exc).__name__}") from None
    for info in infos:
        reason = address_refusal(str(info[4][0]))
        if reason is not None:
            raise TransportError(f"refused: {host} resolves to a {reason}", permanent=True)


def http_post(
    url: str, *, body: bytes, headers: dict[str, str] | None = None, timeout: float | None = None
) -> HttpResponse:
    """POST ``body`` to ``url`` (the one way notifications talk HTTP). 2xx returns the response;
    408/429/5xx and network errors raise a retryable :class:`TransportError`, other statuses,
    redirects and non-public hosts a permanent one. Messages name only the host and status."""
    timeout = timeout if timeout is not None else settings.NOTIFICATIONS_HTTP_TIMEOUT
    host = _host(url)
    check_destination(url)
    try:
        request = urllib.request.Request(
            url, data=body, method="POST", headers={"User-Agent": USER_AGENT, **(headers or {})}
        )
        with _OPENER.open(request, timeout=timeout) as answer:
            return HttpResponse(answer.status, answer.read(65_536))
    except urllib.error.HTTPError as exc:
        exc.close()
        if 300 <= exc.code < 400:
            raise TransportError(f"HTTP {exc.code} from {host}: redirect refused", permanent=True) from None
        retry_after = exc.headers.get("Retry-After") if exc.headers else None
        retryable = exc.code in (408, 429) or exc.code >= 500
        raise TransportError(
            f"HTTP {exc.code} from {host}", permanent=not retryable, retry_after=_seconds(retry_after)
        ) from None
    except (TimeoutError, urllib.error.URLError, ConnectionError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, PrivateHostRefused):
            raise TransportError(str(reason), permanent=True) from None
        kind = type(reason).__name__ if isinstance(reason, BaseException) else "error"
        raise TransportError(f"cannot reach {host}: {kind}") from None
    except (ValueError, http.client.InvalidURL):  # a control character or space in the URL
        raise TransportError(f"invalid URL for {host}", permanent=True) from None
    except http.client.HTTPException as exc:  # e.g. a malformed status line
        raise TransportError(f"bad HTTP answer from {host}: {type(exc).__name__}") from None


def _host(url: str) -> str:
    """The host (and port) of ``url`` only: no credentials, path or query."""
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or "?"
        return f"{host}:{parts.port}" if parts.port else host
    except ValueError:
        return "?"


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
    base = settings.TELEGRAM_API_BASE.rstrip("/")  # never from the channel config (SSRF)
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
        raise TransportError(f"Telegram refused the message (HTTP {answer.status} from {_host(base)})", permanent=True)
    return f"telegram message {data.get('result', {}).get('message_id')}"


def send_discord(config: dict, secret: str, message: dict) -> str:
    """The webhook URL is the channel's (encrypted) secret; ``config["url"]`` only for channels
    stored before URLs were sealed."""
    url = secret or config.get("url") or ""
    answer = http_post(
        url,
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
