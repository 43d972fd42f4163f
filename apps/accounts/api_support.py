"""Helpers shared by the app APIs: turn service errors into DRF 400s naming each field."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import exceptions
from rest_framework.permissions import SAFE_METHODS, BasePermission

from apps.accounts.errors import FieldErrors
from trading.config import ConfigError


def _messages(error: DjangoValidationError) -> dict | list:
    if hasattr(error, "error_dict"):
        return {field: [m for e in errs for m in e.messages] for field, errs in error.error_dict.items()}
    return {"non_field_errors": error.messages}


@contextmanager
def service_errors() -> Iterator[None]:
    """Run a service call; Django ValidationError / ConfigError become a 400 naming the fields,
    Django PermissionDenied a 403."""
    try:
        yield
    except DjangoValidationError as exc:
        raise exceptions.ValidationError(_messages(exc)) from None
    except FieldErrors as exc:
        raise exceptions.ValidationError(exc.errors) from None
    except ConfigError as exc:
        raise exceptions.ValidationError({k: [v] for k, v in exc.errors.items()}) from None
    except DjangoPermissionDenied as exc:
        raise exceptions.PermissionDenied(str(exc) or None) from None


class CanTrade(BasePermission):
    """Writes need a trader or an operator; viewers are read-only everywhere."""

    message = "viewers have read-only access; writes need a trader or operator account."

    def has_permission(self, request, view) -> bool:
        if request.method in SAFE_METHODS:
            return True
        return bool(request.user and request.user.is_authenticated and request.user.can_trade)


class IsOperator(BasePermission):
    message = "only operators may do this."

    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.is_authenticated and request.user.is_operator)
