"""Operators: every bot of every user, the global kill switch, feed and worker health, incidents."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from apps.accounts.errors import FieldErrors
from apps.bots.controls import global_kill_lift, global_kill_state, global_kill_switch
from apps.bots.selectors import bot_list
from apps.core.health import CONTROL_PLANE, check_health, control_plane
from apps.core.selectors import incident_list
from apps.dashboard import live


def _require_operator(user) -> None:
    if not user.is_operator:
        raise PermissionDenied("operators only")


@login_required
def operators(request):
    _require_operator(request.user)
    bots = list(bot_list(user=request.user))
    statuses = live.bot_status_many(bot_ids=[b.pk for b in bots])
    health = check_health()  # the same report /healthz answers with
    context = {
        "rows": [{"bot": b, "status": statuses.get(b.pk)} for b in bots],
        "health": health,
        "control_plane": control_plane(health),
        "control_plane_checks": CONTROL_PLANE,
        "feeds": live.feed_health_all(),
        "incidents": incident_list(user=request.user).order_by("-ts")[:50],
        "global_kill": global_kill_state(),
    }
    return render(request, "dashboard/operators.html", context)


@login_required
@require_POST
def global_kill(request):
    _require_operator(request.user)
    if request.POST.get("confirm") != "KILL":
        messages.error(request, "Type KILL to confirm the global kill switch.")
        return redirect("operators")
    killed = global_kill_switch(actor=request.user, reason=request.POST.get("reason", ""))
    messages.warning(request, f"Global kill switch: {killed} bot(s) killed; their accounts' kill switches are on.")
    return redirect("operators")


@login_required
@require_POST
def global_kill_lift_view(request):
    _require_operator(request.user)
    try:
        cleared = global_kill_lift(actor=request.user, reason=request.POST.get("reason", ""))
    except FieldErrors as exc:
        messages.error(request, str(exc))
        return redirect("operators")
    messages.success(request, f"Global kill lifted: {cleared} account kill switch(es) cleared; bots stay stopped.")
    return redirect("operators")
