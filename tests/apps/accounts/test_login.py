"""Sign-in works for the right password and locks out after repeated failures, with feedback."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from apps.accounts.models import Role
from apps.accounts.services import user_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def trader(clean_redis):
    return user_create(username="alice", password="correct-horse-42", role=Role.TRADER, check_password=False)


def test_trader_signs_in_and_sees_the_overview(trader):
    client = Client()
    response = client.post(reverse("login"), {"username": "alice", "password": "correct-horse-42"})
    assert response.status_code == 302
    overview = client.get("/")
    assert overview.status_code == 200 and b"alice" in overview.content


def test_anonymous_visitor_is_sent_to_sign_in():
    response = Client().get("/")
    assert response.status_code == 302 and response.url.startswith(reverse("login"))


def test_repeated_failures_lock_the_account_out_with_a_clear_message(trader, settings):
    client = Client()
    for _ in range(settings.LOGIN_MAX_FAILURES):
        response = client.post(reverse("login"), {"username": "alice", "password": "wrong"})
        assert response.status_code == 200
    # Now even the right password is refused, and the page says why and for how long.
    response = client.post(reverse("login"), {"username": "alice", "password": "correct-horse-42"})
    assert response.status_code == 200
    assert b"Too many failed sign-in attempts" in response.content
    assert "_auth_user_id" not in client.session


def test_lockout_applies_to_the_api_token_endpoint_too(trader, settings):
    client = Client()
    url = reverse("api-token")
    for _ in range(settings.LOGIN_MAX_FAILURES):
        assert client.post(url, {"username": "alice", "password": "nope"}).status_code == 400
    response = client.post(url, {"username": "alice", "password": "correct-horse-42"})
    assert response.status_code == 429
    assert response.json()["code"] == "locked_out" and int(response["Retry-After"]) > 0


def test_others_cannot_lock_a_trader_out_of_the_address_they_sign_in_from(trader, settings):
    owner = Client(REMOTE_ADDR="127.0.0.1")
    assert owner.post(reverse("login"), {"username": "alice", "password": "correct-horse-42"}).status_code == 302
    attacker = Client(REMOTE_ADDR="10.9.9.9")
    for _ in range(settings.LOGIN_MAX_FAILURES + 2):
        attacker.post(reverse("login"), {"username": "alice", "password": "wrong"})
    # The account is locked for the attacker's address (and any new one)...
    refused = attacker.post(reverse("login"), {"username": "alice", "password": "correct-horse-42"})
    assert b"Too many failed sign-in attempts" in refused.content
    # ...but not for the address alice signed in from before.
    again = Client(REMOTE_ADDR="127.0.0.1")
    assert again.post(reverse("login"), {"username": "alice", "password": "correct-horse-42"}).status_code == 302


def test_api_token_authenticates_requests(trader):
    client = Client()
    token = client.post(reverse("api-token"), {"username": "alice", "password": "correct-horse-42"}).json()["token"]
    me = Client().get(reverse("api-me"), HTTP_AUTHORIZATION=f"Token {token}")
    assert me.status_code == 200 and me.json()["username"] == "alice" and me.json()["role"] == "trader"
    assert Client().get(reverse("api-me")).status_code in (401, 403)


def test_operator_role_is_staff_with_admin_access(clean_redis):
    user_create(username="opsy", password="operator-pass-1", role=Role.OPERATOR, check_password=False)
    client = Client()
    client.login(username="opsy", password="operator-pass-1")
    assert client.get("/admin/").status_code == 200


def test_password_change_page_changes_the_password(trader):
    client = Client()
    client.login(username="alice", password="correct-horse-42")
    response = client.post(
        reverse("password_change"),
        {
            "old_password": "correct-horse-42",
            "new_password1": "a-new-long-secret-9",
            "new_password2": "a-new-long-secret-9",
        },
    )
    assert response.status_code == 302
    assert Client().login(username="alice", password="a-new-long-secret-9")
