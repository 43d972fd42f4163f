"""Text shown to people never carries a signed URL, a key or a signature.

Exchange errors (ccxt puts the full request URL in its messages: ``binance GET
https://api.binance.com/api/v3/account?timestamp=...&signature=...``) reach the pages through
account verification, bot events, incidents and flash messages. :func:`public_text` keeps what
helps (the exchange, the method, the path, the reason) and drops the rest: every URL loses its
query string and fragment, key/secret/signature-like fields are masked, and long hex or base64
runs (signatures, keys) and Telegram bot tokens are replaced."""

from __future__ import annotations

import re

from apps.exchanges.log_redaction import redact

URL = re.compile(r"(?P<base>\b[a-z][a-z0-9+.-]*://[^\s?#'\"<>]+)(?P<rest>[?#][^\s'\"<>]*)?", re.IGNORECASE)
LONG_TOKEN = re.compile(r"\b(?:[0-9a-f]{32,}|[A-Za-z0-9+/_-]{40,}={0,2})(?![\w/])", re.IGNORECASE)
TELEGRAM_TOKEN = re.compile(r"\bbot\d+:[\w-]+")
MASK = "••••"


def public_text(text: object) -> str:
    """``text`` with signed URLs, credentials and signatures removed (safe to show)."""
    if text is None:
        return ""
    out = URL.sub(lambda m: m.group("base") + ("?…" if m.group("rest") else ""), str(text))
    out = TELEGRAM_TOKEN.sub("bot" + MASK, redact(out))
    return LONG_TOKEN.sub(MASK, out)
