"""Users of every role and API clients for them (re-exported by the other apps' conftests)."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient


@pytest.fixture
def make_user(db):
    from apps.accounts.services import user_create

    def make(username: str, role: str = "trader"):
        return user_create(username=username, password="not-checked", role=role, check_password=False)

    return make


@pytest.fixture
def trader(make_user):
    return make_user("alice")


@pytest.fixture
def trader2(make_user):
    return make_user("bob")


@pytest.fixture
def viewer(make_user):
    return make_user("vera", "viewer")


@pytest.fixture
def operator(make_user):
    return make_user("olga", "operator")


@pytest.fixture
def api_for():
    def client(user) -> APIClient:
        api = APIClient()
        api.force_authenticate(user)
        return api

    return client
