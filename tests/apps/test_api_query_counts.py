"""Every API list endpoint costs a constant number of queries, whatever the page holds.

For each endpoint the list is read once with ONE object and once with 30 objects (each with its
related rows: owners, markets, bots, shared viewers, rule channels); the 30-object list may not cost
more queries than the one-object list (``django_assert_max_num_queries``). A row that triggers a
query per object (an N+1) fails with 29 extra queries. The object's detail page is held to the
same count as the one-object list (it needs no per-row query either). Lists whose serializer
uses a read plan (``fast_read``) are also checked row by row against DRF's own output.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import resolve

from apps.accounts.models import AuditAction, AuditLog, Role
from apps.arbitrage.models import Opportunity
from apps.backtests.models import BacktestRun
from apps.bots.services import bot_share
from apps.notifications.models import Delivery, NotificationChannel, NotificationRule
from apps.orders.models import Fill
from apps.orders.services import fills_record
from tests.apps.bots.factories import T0, api, fill_values, make_account, make_bot, make_user, place_order, sent_tasks  # noqa: F401

pytestmark = pytest.mark.django_db

N = 30


@pytest.fixture
def alice(sent_tasks):  # noqa: F811
    return make_user("alice")


@pytest.fixture
def viewers(db):
    return [make_user("vera", Role.VIEWER), make_user("vince", Role.VIEWER)]


def _accounts(owner, start: int, count: int, **_):
    return [make_account(owner, label=f"paper {i}").pk for i in range(start, start + count)]


def _bots(owner, start: int, count: int, viewers=(), **_):
    ids = []
    for i in range(start, start + count):
        bot = make_bot(owner, name=f"mm-{i}")
        bot_share(bot=bot, actor=owner, users=list(viewers))
        ids.append(bot.pk)
    return ids


def _bot(owner):
    from apps.bots.models import Bot

    return Bot.objects.filter(owner=owner).first() or make_bot(owner, name="base")


def _orders(owner, start: int, count: int, **_):
    bot = _bot(owner)
    ids = []
    for i in range(start, start + count):
        order = place_order(bot, f"{bot.client_id_prefix}-{i}", price="65000", quantity="0.001", venue_order_id=f"V{i}")
        ids.append(order.pk)
    return ids


def _fills(owner, start: int, count: int, **_):
    bot = _bot(owner)
    trade_ids = [f"T{i}" for i in range(start, start + count)]
    fills_record(
        [
            fill_values(bot, t, T0 + timedelta(seconds=i), quantity=Decimal("0.0005"))
            for i, t in zip(range(start, start + count), trade_ids, strict=True)
        ]
    )
    by_trade = dict(
        Fill.objects.filter(account_id=bot.exchange_account_id, venue_trade_id__in=trade_ids).values_list(
            "venue_trade_id", "id"
        )
    )
    return [by_trade[t] for t in trade_ids]


def _backtests(owner, start: int, count: int, **_):
    return [
        BacktestRun.objects.create(
            owner=owner,
            name=f"run {i}",
            strategy="fixed_spread",
            data_source="synthetic_as",
            equity_curve=[[j, 100 + j] for j in range(50)],
        ).pk
        for i in range(start, start + count)
    ]


def _channel(owner, i: int) -> NotificationChannel:
    return NotificationChannel.objects.create(
        owner=owner, kind="webhook", name=f"hook {i}", config={"url": "http://127.0.0.1:9/hook"}
    )


def _channels(owner, start: int, count: int, **_):
    return [_channel(owner, i).pk for i in range(start, start + count)]


def _rules(owner, start: int, count: int, **_):
    bot = _bot(owner)
    ids = []
    for i in range(start, start + count):
        rule = NotificationRule.objects.create(owner=owner, event_kind="bot_error", bot=bot)
        rule.channels.set([_channel(owner, 1000 + 2 * i), _channel(owner, 1001 + 2 * i)])
        ids.append(rule.pk)
    return ids


def _deliveries(owner, start: int, count: int, **_):
    ids = []
    for i in range(start, start + count):
        channel = _channel(owner, 2000 + i)
        rule = NotificationRule.objects.create(owner=owner, event_kind="bot_error")
        ids.append(
            Delivery.objects.create(
                channel=channel, rule=rule, event_kind="bot_error", dedupe_key=f"k{i}", payload={"i": i}
            ).pk
        )
    return ids


def _opportunities(owner, start: int, count: int, **_):
    rows = [
        Opportunity(
            ts=T0 + timedelta(seconds=i),
            symbol="BTC/USDT",
            buy_venue="sim:alpha",
            sell_venue="sim:beta",
            buy_price=Decimal("65000"),
            sell_price=Decimal("65010"),
            size=Decimal("0.01"),
            gross_edge_bps=Decimal("1.5"),
            net_edge_bps=Decimal("0.5"),
            net_profit=Decimal("0.03"),
        )
        for i in range(start, start + count)
    ]
    return [row.pk for row in Opportunity.objects.bulk_create(rows)]


def _audit(owner, start: int, count: int, **_):
    rows = [
        AuditLog(actor=owner, actor_name=owner.username, owner=owner, action=AuditAction.choices[0][0], message=f"{i}")
        for i in range(start, start + count)
    ]
    return [row.pk for row in AuditLog.objects.bulk_create(rows)]


# (list url, builder of `count` objects owned by the user -> their ids, has a detail page)
ENDPOINTS: list[tuple[str, Callable, bool]] = [
    ("/api/v1/exchange-accounts/", _accounts, True),
    ("/api/v1/bots/", _bots, True),
    ("/api/v1/orders/", _orders, True),
    ("/api/v1/fills/", _fills, True),
    ("/api/v1/backtests/", _backtests, True),
    ("/api/v1/notifications/channels/", _channels, True),
    ("/api/v1/notifications/rules/", _rules, True),
    ("/api/v1/notifications/deliveries/", _deliveries, True),
    ("/api/v1/arbitrage/opportunities/", _opportunities, False),
    ("/api/v1/audit-log/", _audit, True),
]


def _listed_ids(response) -> set[int]:
    assert response.status_code == 200, response.content[:500]
    return {row["id"] for row in response.json()["results"]}


@pytest.mark.parametrize(("url", "build", "has_detail"), ENDPOINTS, ids=[e[0].split("/v1/")[1] for e in ENDPOINTS])
def test_a_list_of_30_costs_no_more_queries_than_a_list_of_1(
    alice, viewers, django_assert_max_num_queries, url, build, has_detail
):
    client = api(alice)
    first = build(alice, 0, 1, viewers=viewers)
    client.get(url)  # warm per-process caches (content types, throttle connection) outside the count
    with CaptureQueriesContext(connection) as one:
        assert set(first) <= _listed_ids(client.get(url))
    more = build(alice, 1, N - 1, viewers=viewers)
    with django_assert_max_num_queries(len(one)):
        listed = _listed_ids(client.get(url))
    assert set(first + more) <= listed
    assert len(listed) >= N
    if has_detail:
        with django_assert_max_num_queries(len(one)):
            response = client.get(f"{url}{more[-1]}/")
        assert response.status_code == 200
        assert response.json()["id"] == more[-1]


def test_the_bots_list_shows_every_shared_viewer_and_only_the_requesters_bots(alice, viewers):
    """The prefetched viewers are the bot's own; another trader's bots stay out of the list."""
    _bots(alice, 0, 2, viewers=viewers)
    bob = make_user("bob")
    bob_bot = make_bot(bob, name="bob-1")
    body = api(alice).get("/api/v1/bots/").json()
    assert {tuple(sorted(row["shared_with"])) for row in body["results"]} == {("vera", "vince")}
    assert bob_bot.pk not in {row["id"] for row in body["results"]}
    assert api(alice).get(f"/api/v1/bots/{bob_bot.pk}/").status_code == 404


@pytest.mark.parametrize("url", ["/api/v1/bots/", "/api/v1/exchange-accounts/", "/api/v1/orders/"])
def test_an_anonymous_read_of_a_trading_list_is_refused_not_a_server_error(db, url):
    """These viewsets replace the default IsAuthenticated with CanTrade, which lets every safe
    method through: an anonymous GET reached the scoped selector and crashed with a 500."""
    response = api(None).get(url)
    assert response.status_code in (401, 403)
    assert "detail" in response.json()


FAST_READ = [
    (url, build) for url, build, _ in ENDPOINTS if getattr(resolve(url).func.cls.serializer_class, "fast_read", False)
]


@pytest.mark.parametrize(("url", "build"), FAST_READ, ids=[e[0].split("/v1/")[1] for e in FAST_READ])
def test_rows_from_a_read_plan_equal_drfs_field_by_field_output(alice, viewers, url, build):
    """Lists whose serializer uses a read plan (``fast_read``): every row of the API's answer is
    exactly DRF's generic representation of the same object."""
    from rest_framework.renderers import JSONRenderer

    from apps.core.serializers import _read_plan

    serializer_class = resolve(url).func.cls.serializer_class
    assert _read_plan(serializer_class), f"{serializer_class.__name__} fell back to DRF's path"
    build(alice, 0, 3, viewers=viewers)
    rows = api(alice).get(url).json()["results"]
    assert len(rows) >= 3
    objects = serializer_class.Meta.model.objects.in_bulk([row["id"] for row in rows])
    serializer = serializer_class()
    for row in rows:
        assert row == json.loads(JSONRenderer().render(serializer.generic_representation(objects[row["id"]])))
