"""Writes for users. Operators are staff with every permission (they run everything from the
admin): the role, ``is_staff`` and ``is_superuser`` are kept in step here."""

from __future__ import annotations

from django.contrib.auth.password_validation import validate_password
from django.db import transaction

from apps.accounts.models import Role, User


@transaction.atomic
def user_create(
    *, username: str, password: str, role: str = Role.TRADER, email: str = "", check_password: bool = True
) -> User:
    if role not in Role.values:
        raise ValueError(f"role: {role!r} is not a role; accepted: {', '.join(Role.values)}")
    operator = role == Role.OPERATOR
    user = User(username=username, email=email, role=role, is_staff=operator, is_superuser=operator)
    if check_password:
        validate_password(password, user)
    user.set_password(password)
    user.full_clean()
    user.save()
    return user


def user_set_role(*, user: User, role: str) -> User:
    if role not in Role.values:
        raise ValueError(f"role: {role!r} is not a role; accepted: {', '.join(Role.values)}")
    user.role = role
    user.is_staff = user.is_superuser = role == Role.OPERATOR
    user.save(update_fields=["role", "is_staff", "is_superuser"])
    return user


def _jsonable(value):
    """Make ``value`` JSON-safe for the audit log (Decimals and dates become strings)."""
    import json

    from django.core.serializers.json import DjangoJSONEncoder

    if value is None:
        return None
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def audit_record(
    *,
    action: str,
    actor: User | None = None,
    actor_name: str = "",
    owner: User | None = None,
    obj=None,
    object_type: str = "",
    object_id: str | int = "",
    before: dict | None = None,
    after: dict | None = None,
    ip: str | None = None,
    message: str = "",
):
    """Append one entry to the audit log. ``obj`` (a model instance) fills type and id.

    Never pass secrets in ``before``/``after``/``message``: the log is readable by operators.
    """
    from apps.accounts.models import AuditAction, AuditLog

    if action not in AuditAction.values:
        raise ValueError(f"action: {action!r} is not an audit action; accepted: {', '.join(AuditAction.values)}")
    if obj is not None:
        object_type = object_type or obj._meta.label_lower
        object_id = object_id or obj.pk
    if actor is not None and not getattr(actor, "is_authenticated", False):
        actor = None
    if ip in ("", "unknown"):
        ip = None
    return AuditLog.objects.create(
        action=action,
        actor=actor,
        actor_name=actor_name or (actor.get_username() if actor is not None else ""),
        owner=owner,
        object_type=object_type,
        object_id=str(object_id or ""),
        before=_jsonable(before),
        after=_jsonable(after),
        ip=ip,
        message=message[:2000],
    )
