"""API token authentication with one hand-written query.

Same rules as DRF's ``TokenAuthentication`` (``Authorization: Token <key>``; unknown key or
inactive user -> 401 with the same messages), but the token and its user are read with one
prepared SQL statement instead of building an ORM query per request: the ORM's query
compilation was ~0.5 ms of the ~0.65 ms a token lookup cost, on every API request
(``docs/web.md``). Nothing is cached, so a deleted token or a deactivated user is refused on
the very next request.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import connection
from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token

_sql: tuple[str, list[str]] | None = None


def _statement() -> tuple[str, list[str]]:
    global _sql
    if _sql is None:
        user_model = get_user_model()
        fields = list(user_model._meta.concrete_fields)
        columns = ", ".join(f'u."{f.column}"' for f in fields)
        _sql = (
            f'SELECT {columns} FROM "{user_model._meta.db_table}" u '
            f'JOIN "{Token._meta.db_table}" t ON t."user_id" = u."{user_model._meta.pk.column}" '
            f'WHERE t."key" = %s',
            [f.attname for f in fields],
        )
    return _sql


def user_for_token(key: str):
    """The user owning API token ``key``, or ``None``."""
    sql, attnames = _statement()
    with connection.cursor() as cursor:
        cursor.execute(sql, [key])
        row = cursor.fetchone()
    if row is None:
        return None
    return get_user_model().from_db(connection.alias, attnames, row)


class FastTokenAuthentication(TokenAuthentication):
    def authenticate_credentials(self, key):
        if len(key) > 40:  # DRF keys are 40 hex characters; longer ones cannot exist
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        user = user_for_token(key)
        if user is None:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        if not user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        return (user, key)
