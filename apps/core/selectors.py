"""Reads of core objects, scoped to the user."""

from __future__ import annotations

from django.db.models import QuerySet

from apps.core.models import Incident


def incident_list(*, user, resolved: bool | None = None) -> QuerySet[Incident]:
    """Incidents the user may see: their own; operators see all."""
    qs = Incident.objects.select_related("bot", "account")
    if not getattr(user, "is_operator", False):
        qs = qs.filter(owner=user)
    if resolved is not None:
        qs = qs.filter(resolved=resolved)
    return qs
