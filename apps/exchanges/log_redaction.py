"""Keep exchange credentials out of logs.

ccxt logs every request at DEBUG with its headers, which carry the API key (and, on some
venues, the passphrase). This filter, installed on ccxt's logger at start-up, rewrites such
records with the sensitive values masked before any handler sees them.
"""

from __future__ import annotations

import logging
import re

SENSITIVE = re.compile(
    r"""(?P<name>['"]?[\w-]*(?:key|passphrase|secret|sign|token|auth|password)[\w-]*['"]?\s*[:=]\s*)"""
    r"""(?P<quote>['"]?)(?P<value>[^'",&\s}]+)(?P=quote)""",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """Mask the value of every key/secret/passphrase/signature-like field in ``text``."""
    return SENSITIVE.sub(lambda m: f"{m.group('name')}{m.group('quote')}••••{m.group('quote')}", text)


class RedactCredentials(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a record that cannot format is left alone
            return True
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


CCXT_LOGGERS = ("ccxt", "ccxt.base.exchange", "ccxt.async_support.base.exchange")


def install() -> None:
    """Attach the filter to ccxt's loggers (idempotent)."""
    for name in CCXT_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactCredentials) for f in logger.filters):
            logger.addFilter(RedactCredentials())
