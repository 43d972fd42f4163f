"""The sign-in throttle (issue 23, item 6): accounts locked by username with exponential
backoff, addresses rate-limited with a short wait instead of a lock-out, the real client
address read from X-Forwarded-For only behind a trusted proxy."""

from __future__ import annotations

import time

import pytest
from django.test import Client, RequestFactory
from django.urls import reverse

from apps.accounts.models import AuditLog, Role
from apps.accounts.services import user_create
from apps.core.clientaddr import client_address

pytestmark = pytest.mark.django_db
LOGIN = "/accounts/login/"


@pytest.fixture
def users(clean_redis):
    for name in ("alice", "bob", "carol"):
        user_create(username=name, password=f"{name}-correct-42", role=Role.TRADER, check_password=False)


def sign_in(address: str, username: str, password: str | None = None, **headers):
    client = Client(REMOTE_ADDR=address, **headers)
    return client.post(LOGIN, {"username": username, "password": password or f"{username}-correct-42"})


def token(address: str, username: str, password: str | None = None, **headers):
    client = Client(REMOTE_ADDR=address, **headers)
    return client.post(reverse("api-token"), {"username": username, "password": password or f"{username}-correct-42"})


def test_fifty_failures_from_one_address_do_not_lock_out_a_known_user_there(users, settings):
    """The reported case: after 50 failures from a shared (NAT) address a correct password got
    'try again in 414 s'. A user who signed in from that address before gets straight in."""
    settings.LOGIN_ADDRESS_RATE = "1000/min"
    assert sign_in("192.0.2.7", "alice").status_code == 302
    for i in range(50):
        assert sign_in("192.0.2.7", f"nobody{i}", "wrong").status_code == 200
    assert sign_in("192.0.2.7", "alice").status_code == 302
    assert token("192.0.2.7", "alice").status_code == 200


def test_address_rate_limit_is_a_short_wait_not_a_lock_out(users, settings):
    settings.LOGIN_ADDRESS_RATE = "6/min"
    assert sign_in("192.0.2.8", "alice").status_code == 302  # alice signs in from here as usual
    for i in range(6):
        sign_in("192.0.2.8", f"nobody{i}", "wrong")
    refused = token("192.0.2.8", "bob")  # a correct password from a new address, over the rate
    assert refused.status_code == 429 and refused.json()["code"] == "rate_limited"
    assert 1 <= int(refused["Retry-After"]) <= 60  # the window's rest, never a 15-minute lock-out
    page = sign_in("192.0.2.8", "bob")
    assert b"Too many sign-in attempts from your address" in page.content
    # Known users at that address are not limited, nor is anyone elsewhere.
    assert sign_in("192.0.2.8", "alice").status_code == 302
    assert sign_in("198.51.100.1", "carol").status_code == 302


def test_username_lock_out_backs_off_exponentially_and_success_resets_it(users, settings):
    settings.LOGIN_BACKOFF_BASE_SECONDS = 1
    settings.LOGIN_LOCKOUT_SECONDS = 3
    for _ in range(settings.LOGIN_MAX_FAILURES - 1):
        assert token("203.0.113.1", "bob", "wrong").status_code == 400
    waits = []
    for attempt in range(4):  # failures 5, 6, 7, 8: locked 1, 2, 3 (capped), 3 s
        address = f"203.0.113.{10 + attempt}"  # the lock is the account's, from any address
        assert token(address, "bob", "wrong").status_code == 400
        locked = token(address, "bob")  # the right password while locked: refused, not counted
        assert locked.status_code == 429 and locked.json()["code"] == "locked_out"
        waits.append(int(locked["Retry-After"]))
        time.sleep(waits[-1] + 0.1)
    assert waits == [1, 2, 3, 3], waits
    assert token("203.0.113.20", "bob").status_code == 200
    # Success cleared the count: the next failure does not lock.
    assert token("203.0.113.20", "bob", "wrong").status_code == 400
    assert token("203.0.113.21", "bob").status_code == 200


def test_refused_attempts_are_audited_but_not_counted(users, settings):
    for _ in range(settings.LOGIN_MAX_FAILURES):
        token("203.0.113.40", "carol", "wrong")
    for _ in range(3):
        assert token("203.0.113.40", "carol").status_code == 429
    entries = list(AuditLog.objects.filter(actor_name="carol").values_list("message", flat=True))
    assert entries.count("sign-in failed") == settings.LOGIN_MAX_FAILURES
    assert sum(m.startswith("sign-in refused (locked") for m in entries) == 3


def test_x_forwarded_for_is_believed_only_from_a_trusted_proxy(settings):
    factory = RequestFactory()
    forged = {"REMOTE_ADDR": "198.51.100.9", "HTTP_X_FORWARDED_FOR": "1.2.3.4"}
    assert client_address(factory.get("/", **forged)) == "198.51.100.9"  # no proxies configured
    settings.TRUSTED_PROXIES = ["10.0.0.0/8", "127.0.0.1"]
    assert client_address(factory.get("/", **forged)) == "198.51.100.9"  # not from a proxy
    via_proxy = {"REMOTE_ADDR": "10.0.0.5", "HTTP_X_FORWARDED_FOR": "6.6.6.6, 203.0.113.5, 10.1.1.1"}
    # The client wrote 6.6.6.6 itself; the first untrusted hop from the right is the client.
    assert client_address(factory.get("/", **via_proxy)) == "203.0.113.5"
    assert client_address(factory.get("/", REMOTE_ADDR="10.0.0.5")) == "10.0.0.5"
    garbage = {"REMOTE_ADDR": "10.0.0.5", "HTTP_X_FORWARDED_FOR": "bogus, 10.2.2.2"}
    assert client_address(factory.get("/", **garbage)) == "10.2.2.2"
    assert client_address(factory.get("/", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="[2001:db8::1]:443")) == (
        "2001:db8::1"
    )


def test_behind_the_proxy_each_client_is_throttled_on_its_own(users, settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    settings.LOGIN_ADDRESS_RATE = "5/min"
    for i in range(5):
        sign_in("10.0.0.5", f"nobody{i}", "wrong", HTTP_X_FORWARDED_FOR="203.0.113.66")
    over = token("10.0.0.5", "bob", HTTP_X_FORWARDED_FOR="203.0.113.66")
    assert over.status_code == 429 and over.json()["code"] == "rate_limited"
    # Another client behind the same proxy, and a client forging the header, are separate.
    assert token("10.0.0.5", "bob", HTTP_X_FORWARDED_FOR="203.0.113.77").status_code == 200
    assert token("10.0.0.5", "carol", HTTP_X_FORWARDED_FOR="203.0.113.66, 203.0.113.88").status_code == 200
    assert AuditLog.objects.filter(actor_name="bob", ip="203.0.113.77").exists()
