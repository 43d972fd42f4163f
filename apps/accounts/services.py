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
