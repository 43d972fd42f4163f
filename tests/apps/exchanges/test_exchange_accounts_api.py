"""Exchange accounts through the API: secrets are write-only, encrypted at rest, never logged;
several accounts per venue; clear errors naming the field."""

from __future__ import annotations

import logging

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection

from apps.accounts.models import AuditLog
from apps.exchanges.models import ExchangeAccount
from apps.exchanges.services import exchange_account_credentials
from tests.apps.bots.factories import api

pytestmark = pytest.mark.django_db

API_KEY = "AKIAplaintextKEY-1234567890abcd"
API_SECRET = "s3cr3t-plaintext-SECRET-0987654321wxyz"
PASSPHRASE = "phrase-plaintext-PASS-5555"
SECRETS = (API_KEY, API_SECRET, PASSPHRASE)


def _create_live(client, label="binance main"):
    return client.post(
        "/api/v1/exchange-accounts/",
        {
            "label": label,
            "kind": "live",
            "venue": "binance",
            "api_key": API_KEY,
            "api_secret": API_SECRET,
            "passphrase": PASSPHRASE,
        },
        format="json",
    )


def _raw_rows(account_id: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM exchanges_exchangeaccount WHERE id = %s", [account_id])
        row = cursor.fetchone()
        cursor.execute("SELECT * FROM accounts_auditlog")
        audit = cursor.fetchall()
    return repr(row) + repr(audit)


def test_live_account_secrets_are_write_only_encrypted_and_never_logged(trader, caplog):
    caplog.set_level(logging.DEBUG)
    client = api(trader)
    response = _create_live(client)
    assert response.status_code == 201, response.content
    account_id = response.json()["id"]
    listing = client.get("/api/v1/exchange-accounts/")
    detail = client.get(f"/api/v1/exchange-accounts/{account_id}/")
    verify = client.post(f"/api/v1/exchange-accounts/{account_id}/verify/")  # no network: fails, logs
    bodies = [response.content, listing.content, detail.content, verify.content]
    for secret in SECRETS:
        assert all(secret.encode() not in body for body in bodies)
        assert secret not in _raw_rows(account_id)
        assert secret not in caplog.text
    # The owner sees only a masked hint with the last four characters.
    assert detail.json()["api_key_hint"] == "••••abcd"
    account = ExchangeAccount.objects.get(pk=account_id)
    assert API_KEY not in repr(account) and API_KEY not in str(account)
    creds = exchange_account_credentials(account=account)
    assert (creds.api_key, creds.secret, creds.passphrase) == SECRETS
    assert API_SECRET not in repr(creds)


def test_rotate_credentials_command_reencrypts_with_the_newest_key(trader, settings):
    account_id = _create_live(api(trader)).json()["id"]
    before = ExchangeAccount.objects.get(pk=account_id)
    old_keys = list(settings.CREDENTIALS_ENCRYPTION_KEYS)
    new_key = Fernet.generate_key().decode()
    settings.CREDENTIALS_ENCRYPTION_KEYS = [new_key, *old_keys]
    call_command("rotate_credentials")
    after = ExchangeAccount.objects.get(pk=account_id)
    assert after.api_key_enc != before.api_key_enc and after.api_secret_enc != before.api_secret_enc
    # Readable with the new key alone: the old key can be dropped.
    settings.CREDENTIALS_ENCRYPTION_KEYS = [new_key]
    creds = exchange_account_credentials(account=after)
    assert (creds.api_key, creds.secret, creds.passphrase) == SECRETS


def test_rotate_keys_endpoint_replaces_keys_and_audits_without_secrets(trader):
    client = api(trader)
    account_id = _create_live(client).json()["id"]
    old_ciphertext = ExchangeAccount.objects.get(pk=account_id).api_key_enc
    response = client.post(
        f"/api/v1/exchange-accounts/{account_id}/rotate-keys/",
        {"api_key": "NEWKEY-000000000000wxyz", "api_secret": "NEWSECRET-11111111111"},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert response.json()["api_key_hint"] == "••••wxyz" and "NEWSECRET" not in response.content.decode()
    account = ExchangeAccount.objects.get(pk=account_id)
    assert account.api_key_enc != old_ciphertext
    assert exchange_account_credentials(account=account).secret == "NEWSECRET-11111111111"
    entry = AuditLog.objects.get(action="key_rotated")
    assert entry.before == {"api_key": "••••abcd"} and entry.after == {"api_key": "••••wxyz"}


def test_several_accounts_on_one_venue_but_labels_are_unique_per_owner(trader, other_trader):
    client = api(trader)
    assert _create_live(client, "binance main").status_code == 201
    assert _create_live(client, "binance hedge").status_code == 201
    clash = _create_live(client, "binance main")
    assert clash.status_code == 400 and "label" in clash.json()
    assert _create_live(api(other_trader), "binance main").status_code == 201


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"label": "x", "kind": "live", "venue": "nosuchexchange", "api_key": "k", "api_secret": "s"}, "venue"),
        ({"label": "x", "kind": "live", "venue": "binance"}, "api_key"),
        ({"label": "x", "kind": "live", "venue": "sim:alpha", "api_key": "k", "api_secret": "s"}, "kind"),
        ({"label": "x", "kind": "paper", "venue": "sim:alpha", "paper_balances": {"USDT": "-5"}}, "paper_balances"),
        ({"label": "x", "kind": "margin", "venue": "binance"}, "kind"),
        ({"kind": "paper", "venue": "sim:alpha"}, "label"),
    ],
)
def test_bad_account_input_is_a_400_naming_the_field(trader, payload, field):
    response = api(trader).post("/api/v1/exchange-accounts/", payload, format="json")
    assert response.status_code == 400
    assert field in response.json(), response.json()


def test_paper_account_verifies_ok_with_its_balances(trader):
    client = api(trader)
    response = client.post(
        "/api/v1/exchange-accounts/",
        {"label": "paper", "kind": "paper", "venue": "replay:binance-spot", "paper_balances": {"usdt": "1000.50"}},
        format="json",
    )
    assert response.status_code == 201, response.content
    assert response.json()["paper_balances"] == {"USDT": "1000.50"}
    verified = client.post(f"/api/v1/exchange-accounts/{response.json()['id']}/verify/").json()
    assert verified["verify_status"] == "ok" and "USDT 1000.50" in verified["verify_message"]


def test_label_update_and_delete_are_audited(trader):
    client = api(trader)
    account_id = _create_live(client).json()["id"]
    renamed = client.patch(f"/api/v1/exchange-accounts/{account_id}/", {"label": "renamed"}, format="json")
    assert renamed.status_code == 200 and renamed.json()["label"] == "renamed"
    assert client.delete(f"/api/v1/exchange-accounts/{account_id}/").status_code == 204
    actions = set(AuditLog.objects.values_list("action", flat=True))
    assert {"account_created", "key_added", "config_changed", "account_deleted"} <= actions


def test_account_with_a_bot_cannot_be_deleted(trader):
    from tests.apps.bots.factories import make_bot

    bot = make_bot(trader)
    response = api(trader).delete(f"/api/v1/exchange-accounts/{bot.exchange_account_id}/")
    assert response.status_code == 400 and "bot" in response.json()["account"][0]


def test_keys_encrypted_with_a_lost_key_can_still_be_rotated(trader, settings):
    client = api(trader)
    account_id = _create_live(client).json()["id"]
    settings.CREDENTIALS_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]  # the old key is gone
    response = client.post(
        f"/api/v1/exchange-accounts/{account_id}/rotate-keys/",
        {"api_key": "NEWKEY-000000000000wxyz", "api_secret": "NEWSECRET-11111111111"},
        format="json",
    )
    assert response.status_code == 200, response.content
    creds = exchange_account_credentials(account=ExchangeAccount.objects.get(pk=account_id))
    assert creds.api_key == "NEWKEY-000000000000wxyz"
