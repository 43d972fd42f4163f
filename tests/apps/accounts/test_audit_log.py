"""The audit log records logins and actions, is append-only in the database, is read-only in the
admin, and each user sees only their own entries through the API (operators see all)."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, connection, transaction
from django.test import Client
from django.urls import reverse

from apps.accounts.models import AuditLog
from apps.accounts.services import audit_record
from tests.apps.bots.factories import api, make_bot, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def people(clean_redis):
    return make_user("alice"), make_user("bob"), make_user("olga", "operator")


def test_login_and_failed_login_are_recorded_with_the_address(people):
    client = Client(REMOTE_ADDR="10.1.2.3")
    client.post(reverse("login"), {"username": "alice", "password": "wrong-password"})
    client.post(reverse("login"), {"username": "alice", "password": "not-a-real-pass-123"})
    failed = AuditLog.objects.get(action="login_failed")
    ok = AuditLog.objects.get(action="login")
    assert failed.actor_name == "alice" and failed.actor is None and failed.ip == "10.1.2.3"
    assert ok.actor == people[0] and ok.ip == "10.1.2.3"
    assert "wrong-password" not in repr(list(AuditLog.objects.values()))


def test_api_token_login_is_recorded_too(people):
    response = Client().post(
        "/api/v1/auth/token/", {"username": "bob", "password": "not-a-real-pass-123"}, content_type="application/json"
    )
    assert response.status_code == 200
    entry = AuditLog.objects.get(action="login", actor=people[1])
    assert entry.message == "API token issued"
    assert response.json()["token"] not in repr(list(AuditLog.objects.values()))


@pytest.mark.parametrize("sql", ["UPDATE accounts_auditlog SET message = 'x'", "DELETE FROM accounts_auditlog"])
def test_the_database_refuses_to_change_or_delete_entries(people, sql):
    audit_record(action="kill_switch", actor=people[2], message="drill")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql)
    assert AuditLog.objects.get().message == "drill"


def test_orm_update_and_delete_are_refused_as_well(people):
    entry = audit_record(action="config_changed", actor=people[0], before={"a": 1}, after={"a": 2})
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditLog.objects.filter(pk=entry.pk).update(message="tampered")
    with pytest.raises(DatabaseError), transaction.atomic():
        entry.delete()
    assert AuditLog.objects.filter(pk=entry.pk, message="").exists()


def test_unknown_action_is_refused_naming_it():
    with pytest.raises(ValueError, match="action: 'hack'"):
        audit_record(action="hack")


def test_users_see_their_own_entries_and_operators_see_all(people):
    alice, bob, olga = people
    bot = make_bot(alice)
    audit_record(action="bot_started", actor=olga, owner=alice, obj=bot)  # an operator acting on alice's bot
    audit_record(action="kill_switch", actor=bob, owner=bob, message="bob's")
    alice_sees = api(alice).get("/api/v1/audit-log/").json()
    assert {e["action"] for e in alice_sees["results"]} == {"account_created", "bot_created", "bot_started"}
    assert all(e["message"] != "bob's" for e in alice_sees["results"])
    assert api(olga).get("/api/v1/audit-log/").json()["count"] == AuditLog.objects.count()
    bob_entry = AuditLog.objects.get(message="bob's").pk
    assert api(alice).get(f"/api/v1/audit-log/{bob_entry}/").status_code == 404
    assert api(alice).post("/api/v1/audit-log/", {}, format="json").status_code == 405


def test_admin_shows_the_log_read_only(people):
    olga = people[2]
    entry = audit_record(action="kill_switch", actor=olga, message="drill")
    client = Client()
    client.force_login(olga)
    assert client.get("/admin/accounts/auditlog/").status_code == 200
    assert client.get(f"/admin/accounts/auditlog/{entry.pk}/change/").status_code == 200
    assert client.get("/admin/accounts/auditlog/add/").status_code == 403
    assert client.get(f"/admin/accounts/auditlog/{entry.pk}/delete/").status_code == 403
    client.post(f"/admin/accounts/auditlog/{entry.pk}/change/", {"message": "edited"})
    assert AuditLog.objects.get(pk=entry.pk).message == "drill"
