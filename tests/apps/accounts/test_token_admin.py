"""API tokens are never readable in the admin, even by operators."""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.authtoken.models import Token

from apps.accounts.models import Role
from apps.accounts.services import user_create

pytestmark = pytest.mark.django_db


def test_operators_cannot_read_api_tokens_in_the_admin(clean_redis):
    trader = user_create(username="tina", password="trader-pass-123", role=Role.TRADER, check_password=False)
    token = Token.objects.create(user=trader)
    user_create(username="olga", password="operator-pass-1", role=Role.OPERATOR, check_password=False)
    client = Client()
    client.login(username="olga", password="operator-pass-1")
    assert client.get("/admin/authtoken/tokenproxy/").status_code == 404
    assert token.key not in client.get("/admin/").content.decode()
