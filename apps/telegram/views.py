"""Settings → Telegram: make a one-time link code, or unlink the chat."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from apps.telegram import services


@login_required
@require_POST
def link_code(request):
    code = services.link_code_create(user=request.user)
    messages.success(
        request,
        f"Send /link {code} to the desk's Telegram bot within "
        f"{services.settings.TELEGRAM_CONTROL_CODE_TTL_S // 60} minutes. The code works once.",
    )
    return redirect("settings")


@login_required
@require_POST
def unlink(request):
    services.unlink(user=request.user)
    messages.success(request, "Telegram chat unlinked: it can no longer control anything.")
    return redirect("settings")
