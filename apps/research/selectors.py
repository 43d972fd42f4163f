"""Reads of optimisations, scoped to the user (operators see all)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from apps.research.models import Optimisation, UserRecording


def optimisation_list(*, user) -> QuerySet[Optimisation]:
    qs = Optimisation.objects.select_related("owner")
    return qs if getattr(user, "is_operator", False) else qs.filter(owner=user)


def optimisation_get(*, user, opt_id: Any) -> Optimisation | None:
    try:
        pk = int(str(opt_id))
    except ValueError:
        return None
    if not 0 < pk < 2**63:
        return None
    return optimisation_list(user=user).filter(pk=pk).first()


def recording_list(*, user) -> QuerySet[UserRecording]:
    """Uploaded recordings the user may see and use (operators: all)."""
    qs = UserRecording.objects.select_related("owner", "market")
    return qs if getattr(user, "is_operator", False) else qs.filter(owner=user)


def recording_get(*, user, rec_id: Any) -> UserRecording | None:
    raw = str(rec_id)
    if not (raw.isascii() and raw.isdigit() and 0 < len(raw) < 19):
        return None
    return recording_list(user=user).filter(pk=int(raw)).first()
