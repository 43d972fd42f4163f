"""Shared check for admin pages: staff operators can open them, traders and viewers cannot."""

from __future__ import annotations

from django.test import Client
from django.urls import reverse


def assert_admin_pages(model, obj, *, operator, outsiders) -> str:
    """Open the changelist (with a search) and the change page as the operator; every outsider
    is sent to the admin login. Returns the operator's change page HTML."""
    label = f"admin:{model._meta.app_label}_{model._meta.model_name}"
    changelist = reverse(f"{label}_changelist")
    change = reverse(f"{label}_change", args=[obj.pk])
    ops = Client()
    ops.force_login(operator)
    assert ops.get(changelist).status_code == 200
    assert ops.get(changelist, {"q": "x"}).status_code == 200
    page = ops.get(change)
    assert page.status_code == 200, change
    for user in outsiders:
        client = Client()
        client.force_login(user)
        for url in (changelist, change):
            response = client.get(url)
            assert response.status_code == 302 and "/login/" in response["Location"], (user, url)
    return page.content.decode()
