"""Encryption at rest for exchange credentials (MultiFernet over ``settings.CREDENTIALS_ENCRYPTION_KEYS``).

The first key encrypts; every key decrypts, so adding a new key at the front and running
``manage.py rotate_credentials`` re-encrypts every stored secret with it.
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


class CredentialDecryptError(Exception):
    """A stored credential cannot be decrypted with any configured key."""


def _fernet() -> MultiFernet:
    keys = settings.CREDENTIALS_ENCRYPTION_KEYS
    if isinstance(keys, str):
        keys = [k.strip() for k in keys.split(",") if k.strip()]
    return MultiFernet([Fernet(k.encode() if isinstance(k, str) else k) for k in keys])


def encrypt(plaintext: str) -> str:
    """Encrypt a secret; the empty string stays empty (no credential)."""
    if not plaintext:
        return ""
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    """Decrypt a stored secret; raise :class:`CredentialDecryptError` if no key fits."""
    if not token:
        return ""
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise CredentialDecryptError(
            "stored credential cannot be decrypted with any key in CREDENTIALS_ENCRYPTION_KEYS"
        ) from None


def rotate(token: str) -> str:
    """Re-encrypt a stored secret with the newest (first) key."""
    if not token:
        return ""
    try:
        return _fernet().rotate(token.encode()).decode()
    except InvalidToken:
        raise CredentialDecryptError(
            "stored credential cannot be decrypted with any key in CREDENTIALS_ENCRYPTION_KEYS"
        ) from None


def mask(plaintext: str) -> str:
    """What a person may see of a secret: dots and its last four characters."""
    if not plaintext:
        return ""
    tail = plaintext[-4:] if len(plaintext) > 8 else ""
    return f"••••{tail}"
