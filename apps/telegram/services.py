"""Linking a Telegram chat to a user: a one-time code made in Settings, sent back from the chat."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.accounts.models import AuditAction, User
from apps.accounts.services import audit_record
from apps.telegram.models import TelegramLink

CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I


def _digest(code: str) -> str:
    return hashlib.sha256(code.strip().upper().encode()).hexdigest()


@transaction.atomic
def link_code_create(*, user: User) -> str:
    """A new one-time code for ``user`` (valid TELEGRAM_CONTROL_CODE_TTL_S); only its digest is
    stored. Making a code does not unlink a chat already linked: linking replaces it."""
    code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(10))
    link, _ = TelegramLink.objects.select_for_update().get_or_create(user=user)
    link.code_digest = _digest(code)
    link.code_expires = timezone.now() + timedelta(seconds=settings.TELEGRAM_CONTROL_CODE_TTL_S)
    link.save(update_fields=["code_digest", "code_expires"])
    return code


@transaction.atomic
def link_chat(*, chat_id: int, code: str) -> User | None:
    """Link ``chat_id`` to the user whose unexpired code this is (the code is used up); None when
    no such code. A chat linked to another user before is moved to this one."""
    if not code.strip():
        return None
    link = (
        TelegramLink.objects.select_for_update()
        .select_related("user")
        .filter(code_digest=_digest(code), code_expires__gt=timezone.now())
        .first()
    )
    if link is None:
        return None
    TelegramLink.objects.filter(chat_id=chat_id).exclude(pk=link.pk).update(chat_id=None, linked_at=None)
    link.chat_id = chat_id
    link.linked_at = timezone.now()
    link.code_digest = ""
    link.code_expires = None
    link.save(update_fields=["chat_id", "linked_at", "code_digest", "code_expires"])
    audit_record(
        action=AuditAction.TELEGRAM_LINKED, actor=link.user, owner=link.user, obj=link, after={"chat_id": chat_id}
    )
    return link.user


@transaction.atomic
def unlink(*, user: User) -> None:
    TelegramLink.objects.filter(user=user).update(chat_id=None, linked_at=None, code_digest="", pending="")
    audit_record(action=AuditAction.TELEGRAM_LINKED, actor=user, owner=user, object_type="telegram.telegramlink",
                 object_id=user.pk, after={"chat_id": None}, message="unlinked from Settings")  # fmt: skip


def linked_user(chat_id: int) -> tuple[User, TelegramLink] | None:
    link = TelegramLink.objects.select_related("user").filter(chat_id=chat_id, user__is_active=True).first()
    return (link.user, link) if link is not None else None
