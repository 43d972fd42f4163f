"""Reads for users and the audit log, scoped to the requesting user."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from apps.accounts.models import AuditLog, User


def audit_log_list(*, user: User, action: str | None = None) -> QuerySet[AuditLog]:
    """Operators see every entry; others the entries they made or that concern their objects."""
    qs = AuditLog.objects.all()
    if not user.is_operator:
        qs = qs.filter(Q(actor=user) | Q(owner=user))
    if action:
        qs = qs.filter(action=action)
    return qs.order_by("-ts", "-id")
