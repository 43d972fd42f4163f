"""Isolation matrix for the part-A API and admin.

Alice (trader) owns an exchange account, a bot, an order, a fill, PnL, events and a balance.
For every endpoint: Bob (another trader) and Victor (a viewer nothing is shared with) cannot
read or change any of it (404/403, and lists leave it out); Vera (a viewer the bot is shared
with) can read the bot and its orders/fills/PnL/events but change nothing (403); Olga (an
operator) can do everything. Every admin page is staff-only.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import Client

from apps.accounts.models import AuditLog, Role
from apps.bots.models import Bot
from apps.bots.services import bot_events_record, bot_share
from apps.core.timeseries import dt_to_ns
from apps.exchanges.models import ExchangeAccount
from apps.orders.models import Fill, Order
from apps.orders.services import fills_record
from apps.portfolio.services import balances_replace, pnl_snapshots_record
from tests.apps.bots.factories import (  # noqa: F401
    T0,
    api,
    fill_values,
    make_account,
    make_bot,
    make_user,
    place_order,
    pnl_rows,
    sent_tasks,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(sent_tasks):  # noqa: F811
    alice = make_user("alice")
    users = {
        "bob": make_user("bob"),
        "victor": make_user("victor", Role.VIEWER),
        "vera": make_user("vera", Role.VIEWER),
        "olga": make_user("olga", Role.OPERATOR),
    }
    account = make_account(alice, label="alice live-ish")
    bot = make_bot(alice, account=account)
    bot_share(bot=bot, actor=alice, users=[users["vera"]])
    order = place_order(bot, f"{bot.client_id_prefix}-1", price="65000", quantity="0.001", venue_order_id="V1")
    fills_record([fill_values(bot, "T1", T0, quantity=Decimal("0.0005"), client_order_id=order.client_order_id)])
    fill = Fill.objects.get(venue_trade_id="T1")
    values = dict.fromkeys(("position", "cash", "realized", "unrealized", "fees", "drawdown"), Decimal(0))
    pnl_snapshots_record(pnl_rows(bot, [{"ts": T0, "equity": Decimal(100), "peak_equity": Decimal(100), **values}]))
    bot_events_record([(bot.pk, dt_to_ns(T0), "state", "created", "", None)])
    balances_replace(account=account, balances={"USDT": {"free": "10", "total": "10"}})
    audit = AuditLog.objects.filter(owner=alice).first()
    ids = {
        "account": account.pk,
        "bot": bot.pk,
        "order": order.pk,
        "fill": fill.pk,
        "balance": account.balances.get().pk,
        "audit": audit.pk,
        "start": T0.isoformat().replace("+00:00", "Z"),
        "end": (T0 + timedelta(days=1)).isoformat().replace("+00:00", "Z"),
    }
    return alice, users, ids


# (url, visible to the shared viewer)
LISTS = [
    ("/api/v1/exchange-accounts/", "account", False),
    ("/api/v1/bots/", "bot", True),
    ("/api/v1/orders/", "order", True),
    ("/api/v1/fills/", "fill", True),
    ("/api/v1/balances/", "balance", False),
    ("/api/v1/audit-log/", "audit", False),
]
DETAILS = [
    ("/api/v1/exchange-accounts/{account}/", False),
    ("/api/v1/bots/{bot}/", True),
    ("/api/v1/bots/{bot}/config-history/", True),
    ("/api/v1/bots/{bot}/events/", True),
    ("/api/v1/bots/{bot}/pnl/?interval=1h&start={start}&end={end}", True),
    ("/api/v1/orders/{order}/", True),
    ("/api/v1/fills/{fill}/", True),
    ("/api/v1/balances/{balance}/", False),
    ("/api/v1/audit-log/{audit}/", False),
]
WRITES = [
    ("patch", "/api/v1/exchange-accounts/{account}/", {"label": "pwned"}),
    ("put", "/api/v1/exchange-accounts/{account}/", {"label": "pwned"}),
    ("delete", "/api/v1/exchange-accounts/{account}/", None),
    ("post", "/api/v1/exchange-accounts/{account}/verify/", None),
    ("post", "/api/v1/exchange-accounts/{account}/rotate-keys/", {"api_key": "k" * 20, "api_secret": "s" * 20}),
    ("post", "/api/v1/exchange-accounts/{account}/kill/", {}),
    ("post", "/api/v1/accounts/{account}/kill/", {}),
    ("patch", "/api/v1/bots/{bot}/", {"name": "pwned"}),
    ("delete", "/api/v1/bots/{bot}/", None),
    ("post", "/api/v1/bots/{bot}/start/", None),
    ("post", "/api/v1/bots/{bot}/pause/", None),
    ("post", "/api/v1/bots/{bot}/resume/", None),
    ("post", "/api/v1/bots/{bot}/stop/", None),
    ("post", "/api/v1/bots/{bot}/kill/", {}),
    ("post", "/api/v1/bots/{bot}/share/", {"usernames": ["bob"]}),
    ("post", "/api/v1/orders/{order}/cancel/", None),
]


def _ids(body) -> set[int]:
    return {row["id"] for row in body["results"]}


@pytest.mark.parametrize(("url", "key", "shared_visible"), LISTS)
def test_lists_leave_out_what_a_user_may_not_see(world, url, key, shared_visible):
    _, users, ids = world
    for name in ("bob", "victor", "vera", "olga"):
        response = api(users[name]).get(url)
        assert response.status_code == 200, (name, url)
        expected = name == "olga" or (name == "vera" and shared_visible)
        assert (ids[key] in _ids(response.json())) is expected, (name, url)


@pytest.mark.parametrize(("template", "shared_visible"), DETAILS)
def test_details_are_404_to_strangers_and_readable_by_the_shared_viewer(world, template, shared_visible):
    alice, users, ids = world
    url = template.format(**ids)
    assert api(alice).get(url).status_code == 200
    assert api(users["bob"]).get(url).status_code == 404
    assert api(users["victor"]).get(url).status_code == 404
    assert api(users["vera"]).get(url).status_code == (200 if shared_visible else 404)
    assert api(users["olga"]).get(url).status_code == 200


def _state(ids) -> tuple:
    account = ExchangeAccount.objects.get(pk=ids["account"])
    bot = Bot.objects.get(pk=ids["bot"])
    order = Order.objects.get(pk=ids["order"])
    return (
        account.label,
        account.api_key_enc,
        account.kill_switch,
        account.verify_status,
        bot.name,
        bot.desired_state,
        list(bot.shared_with.values_list("username", flat=True)),
        order.cancel_requested_at,
    )


@pytest.mark.parametrize(("method", "template", "payload"), WRITES)
def test_writes_are_refused_to_everyone_but_owner_and_operator(world, method, template, payload):
    _, users, ids = world
    url = template.format(**ids)
    before = _state(ids)
    expected = {"bob": 404, "victor": 403, "vera": 403}
    for name, status in expected.items():
        response = getattr(api(users[name]), method)(url, payload, format="json")
        assert response.status_code == status, (name, method, url, response.content)
        assert response["Content-Type"].startswith("application/json")
    assert _state(ids) == before


def test_operator_can_do_everything_through_the_api(world):
    _, users, ids = world
    client = api(users["olga"])
    steps = [
        ("patch", "/api/v1/exchange-accounts/{account}/", {"label": "renamed by ops"}, 200),
        ("post", "/api/v1/exchange-accounts/{account}/verify/", None, 200),
        ("post", "/api/v1/bots/{bot}/start/", None, 200),
        ("post", "/api/v1/bots/{bot}/pause/", None, 200),
        ("post", "/api/v1/bots/{bot}/resume/", None, 200),
        ("post", "/api/v1/bots/{bot}/stop/", None, 200),
        ("post", "/api/v1/bots/{bot}/kill/", {"reason": "ops"}, 200),
        ("patch", "/api/v1/bots/{bot}/", {"name": "renamed"}, 200),
        ("post", "/api/v1/bots/{bot}/share/", {"usernames": ["bob"]}, 200),
        ("post", "/api/v1/orders/{order}/cancel/", None, 200),
        ("post", "/api/v1/accounts/{account}/kill/", {"on": True}, 200),
        ("post", "/api/v1/kill-all/", {}, 200),
        ("delete", "/api/v1/bots/{bot}/", None, 204),
    ]
    for method, template, payload, status in steps:
        response = getattr(client, method)(template.format(**ids), payload, format="json")
        assert response.status_code == status, (method, template, response.content)
    assert not Bot.objects.filter(pk=ids["bot"]).exists()


def test_kill_all_is_refused_to_traders_and_viewers(world):
    _, users, _ = world
    for name in ("bob", "victor", "vera"):
        assert api(users[name]).post("/api/v1/kill-all/", {}, format="json").status_code == 403


ADMIN_PAGES = [
    ("exchanges", "exchangeaccount", "account"),
    ("exchanges", "market", None),
    ("bots", "bot", "bot"),
    ("bots", "botconfigversion", None),
    ("bots", "botevent", None),
    ("orders", "order", "order"),
    ("orders", "fill", "fill"),
    ("portfolio", "balance", "balance"),
    ("portfolio", "pnlsnapshot", None),
    ("accounts", "auditlog", "audit"),
]


@pytest.mark.parametrize(("app", "model", "key"), ADMIN_PAGES)
def test_admin_pages_are_for_operators_only(world, app, model, key):
    alice, users, ids = world
    pages = [f"/admin/{app}/{model}/"]
    if key:
        pages.append(f"/admin/{app}/{model}/{ids[key]}/change/")
    for page in pages:
        for person in (alice, users["bob"], users["victor"], users["vera"]):
            client = Client()
            client.force_login(person)
            response = client.get(page)
            assert response.status_code == 302 and "/admin/login/" in response.url, (person.username, page)
        client = Client()
        client.force_login(users["olga"])
        assert client.get(page).status_code == 200, page


def test_admin_actions_by_non_staff_change_nothing_and_operators_actions_work(world):
    alice, users, ids = world
    payload = {"action": "start_bots", "_selected_action": [ids["bot"]]}
    for person in (alice, users["bob"], users["vera"]):
        client = Client()
        client.force_login(person)
        client.post("/admin/bots/bot/", payload)
    assert Bot.objects.get(pk=ids["bot"]).desired_state == "stopped"
    client = Client()
    client.force_login(users["olga"])
    assert client.post("/admin/bots/bot/", payload).status_code == 302
    assert Bot.objects.get(pk=ids["bot"]).desired_state == "running"
    client.post("/admin/orders/order/", {"action": "cancel_orders", "_selected_action": [ids["order"]]})
    assert Order.objects.get(pk=ids["order"]).cancel_requested_at is not None


def test_admin_shows_secrets_masked_only(world):
    _, users, ids = world
    from apps.exchanges.services import exchange_account_rotate_keys

    account = ExchangeAccount.objects.get(pk=ids["account"])
    exchange_account_rotate_keys(
        account=account, actor=users["olga"], api_key="ADMINKEY-plain-00001234", api_secret="ADMINSECRET-plain-5678"
    )
    client = Client()
    client.force_login(users["olga"])
    for page in ("/admin/exchanges/exchangeaccount/", f"/admin/exchanges/exchangeaccount/{ids['account']}/change/"):
        html = client.get(page).content.decode()
        assert "••••1234" in html
        assert "ADMINKEY-plain" not in html and "ADMINSECRET-plain" not in html
        assert account.api_key_enc not in html
