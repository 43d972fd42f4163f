"""The overview's inventory card: setting a target, limit and hedge per asset."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from apps.accounts.errors import FieldErrors
from apps.dashboard.views.common import error_text
from apps.portfolio.targets import inventory_target_set


class InventoryTargetForm(forms.Form):
    """Text fields: the service checks every value and names what is accepted."""

    asset = forms.CharField(max_length=32)
    target = forms.CharField(max_length=80, required=False, help_text="target net, base units")
    max_net = forms.CharField(max_length=80, required=False, help_text="limit on |net|; empty for none")
    band = forms.CharField(max_length=80, required=False, help_text="hedge band around the target")
    hedge_enabled = forms.BooleanField(required=False)
    hedge_bot = forms.CharField(max_length=20, required=False, help_text="bot id the hedge goes through")


@login_required
@require_POST
def inventory_target(request):
    if not request.user.can_trade:
        raise PermissionDenied("viewers have read-only access")
    form = InventoryTargetForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"inventory target refused: {error_text(FieldErrors(form.errors.get_json_data()))}")
        return redirect("overview")
    data = form.cleaned_data
    try:
        target = inventory_target_set(
            owner=request.user,
            actor=request.user,
            asset=data["asset"],
            target=data["target"] or "0",
            max_net=data["max_net"] or None,
            band=data["band"] or None,
            hedge_enabled=data["hedge_enabled"],
            hedge_bot=data["hedge_bot"] or None,
        )
    except FieldErrors as exc:
        messages.error(request, f"inventory target refused: {error_text(exc)}")
        return redirect("overview")
    messages.success(request, f"inventory target for {target.asset} saved")
    return redirect("overview")
