"""Operators manage exchange accounts in the admin through the services: keys are typed into
write-only fields, stored encrypted, shown masked; the kill switch kills the account's bots."""

from __future__ import annotations

import pytest
from django.test import Client

from apps.accounts.models import AuditLog
from apps.bots.models import Bot
from apps.exchanges.models import ExchangeAccount
from apps.exchanges.services import exchange_account_credentials
from tests.apps.bots.factories import make_bot

pytestmark = pytest.mark.django_db

KEY, SECRET = "ADMIN-ADDED-KEY-00009876", "ADMIN-ADDED-SECRET-55554444"


def _admin(operator) -> Client:
    client = Client()
    client.force_login(operator)
    return client


def test_operator_adds_a_live_account_with_keys_in_write_only_fields(operator, trader):
    client = _admin(operator)
    form = {
        "owner": trader.pk,
        "label": "added by ops",
        "kind": "live",
        "venue": "binance",
        "paper_balances": "{}",
        "new_api_key": KEY,
        "new_api_secret": SECRET,
        "new_passphrase": "",
    }
    response = client.post("/admin/exchanges/exchangeaccount/add/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    account = ExchangeAccount.objects.get(label="added by ops")
    assert account.owner == trader and KEY not in account.api_key_enc
    assert exchange_account_credentials(account=account).secret == SECRET
    page = client.get(f"/admin/exchanges/exchangeaccount/{account.pk}/change/").content.decode()
    assert "••••9876" in page and KEY not in page and SECRET not in page
    assert AuditLog.objects.filter(action="key_added", actor=operator, owner=trader).exists()


def test_operator_turns_the_kill_switch_on_from_the_change_page(operator, trader, sent_tasks):
    bot = make_bot(trader)
    Bot.objects.filter(pk=bot.pk).update(desired_state="running", actual_state="running")
    account = bot.exchange_account
    form = {
        "label": account.label,
        "paper_balances": '{"USDT": "10000"}',
        "kill_switch": "on",
        "new_api_key": "",
        "new_api_secret": "",
        "new_passphrase": "",
    }
    response = _admin(operator).post(f"/admin/exchanges/exchangeaccount/{account.pk}/change/", form)
    assert response.status_code == 302
    account.refresh_from_db()
    assert account.kill_switch and account.paper_balances == {"USDT": "10000"}
    assert Bot.objects.get(pk=bot.pk).desired_state == "stopped"
