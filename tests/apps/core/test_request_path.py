"""The API request path's own parts: rate limits in Redis, token authentication, page counts,
the connection health check and the thread-pool HTTP adapter."""

from __future__ import annotations

import asyncio

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token
from rest_framework.settings import api_settings
from rest_framework.test import APIClient

from apps.core import throttling
from apps.core.pagination import BoundedLimitOffsetPagination
from mmsite.http import PooledWsgi
from tests.apps.bots.factories import make_account, make_bot, make_user, sent_tasks  # noqa: F401

pytestmark = pytest.mark.django_db


# --- throttling ---------------------------------------------------------------------------------
def test_sliding_window_counts_the_previous_window_by_its_remaining_share(clean_redis):
    from django.conf import settings

    key = f"{settings.REDIS_PREFIX}:throttle:unit"
    t0 = 600.0  # the start of a 60 s window
    for i in range(4):
        assert throttling.hit(key, 4, 60, now=t0 + i) == (True, 0.0)
    allowed, wait = throttling.hit(key, 4, 60, now=t0 + 10)
    assert not allowed and wait == pytest.approx(50.0)  # this window alone is full
    # 15 s into the next window, 3/4 of the previous window still counts: 4 x 0.75 = 3 -> 1 left.
    assert throttling.hit(key, 4, 60, now=t0 + 75)[0]
    allowed, wait = throttling.hit(key, 4, 60, now=t0 + 76)
    assert not allowed
    # Allowed again once 4 x w + 1 + 1 <= 4, i.e. w <= 0.5: 30 s into the window, 14 s from now.
    assert wait == pytest.approx(14.0)
    assert not throttling.hit(key, 4, 60, now=t0 + 89)[0]
    assert throttling.hit(key, 4, 60, now=t0 + 90.5)[0]


def test_parse_rate_names_the_bad_value():
    assert throttling.parse_rate("6000/min") == (6000, 60)
    assert throttling.parse_rate("10/s") == (10, 1)
    with pytest.raises(ValueError, match="'ten/min'"):
        throttling.parse_rate("ten/min")


def _rates(anon: str, user: str):
    rest = {**api_settings.user_settings, "DEFAULT_THROTTLE_RATES": {"anon": anon, "user": user}}
    return override_settings(REST_FRAMEWORK=rest)


def test_api_refuses_over_the_user_rate_with_retry_after_and_counts_users_apart(clean_redis):
    alice, bob = make_user("alice"), make_user("bob")
    tokens = {u: Token.objects.create(user=u).key for u in (alice, bob)}
    with _rates("100/min", "3/min"):
        client = APIClient()
        statuses = [
            client.get("/api/v1/bots/", HTTP_AUTHORIZATION=f"Token {tokens[alice]}").status_code for _ in range(4)
        ]
        assert statuses == [200, 200, 200, 429]
        refused = client.get("/api/v1/bots/", HTTP_AUTHORIZATION=f"Token {tokens[alice]}")
        assert refused.status_code == 429
        assert 0 < int(refused["Retry-After"]) <= 60
        assert client.get("/api/v1/bots/", HTTP_AUTHORIZATION=f"Token {tokens[bob]}").status_code == 200


def test_anonymous_requests_are_limited_per_client_address(clean_redis):
    """Anonymous requests reach the throttle only where no sign-in is needed (the token
    endpoint); elsewhere they are a 401 first."""
    url = "/api/v1/auth/token/"
    wrong = {"username": "nobody", "password": "wrong-password-1"}
    with _rates("2/min", "100/min"):
        client = APIClient()
        statuses = [client.post(url, wrong, REMOTE_ADDR="10.0.0.1").status_code for _ in range(3)]
        assert statuses == [400, 400, 429]
        # A forged X-Forwarded-For does not make a new client.
        forged = client.post(url, wrong, REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="1.2.3.4")
        assert forged.status_code == 429
        assert client.post(url, wrong, REMOTE_ADDR="10.0.0.2").status_code == 400


# --- token authentication ----------------------------------------------------------------------
def test_token_is_checked_on_every_request(clean_redis):
    alice = make_user("alice")
    key = Token.objects.create(user=alice).key
    client = APIClient()
    me = client.get("/api/v1/me/", HTTP_AUTHORIZATION=f"Token {key}")
    assert me.status_code == 200 and me.json()["username"] == "alice"

    alice.is_active = False
    alice.save(update_fields=["is_active"])
    refused = client.get("/api/v1/me/", HTTP_AUTHORIZATION=f"Token {key}")
    assert refused.status_code == 401 and "inactive" in refused.json()["detail"]

    alice.is_active = True
    alice.save(update_fields=["is_active"])
    Token.objects.filter(key=key).delete()
    gone = client.get("/api/v1/me/", HTTP_AUTHORIZATION=f"Token {key}")
    assert gone.status_code == 401 and gone.json()["detail"] == "Invalid token."
    long = client.get("/api/v1/me/", HTTP_AUTHORIZATION="Token " + "a" * 500)
    assert long.status_code == 401


# --- pagination ---------------------------------------------------------------------------------
def test_page_and_count_come_in_one_query_and_match_a_plain_count(sent_tasks, clean_redis):  # noqa: F811
    alice = make_user("alice")
    account = make_account(alice)
    for i in range(7):
        make_bot(alice, account=account, name=f"b{i}")
    key = Token.objects.create(user=alice).key
    client = APIClient()
    auth = {"HTTP_AUTHORIZATION": f"Token {key}"}
    client.get("/api/v1/bots/", **auth)  # warm per-process caches
    with CaptureQueriesContext(connection) as queries:
        page = client.get("/api/v1/bots/?limit=3&offset=2", **auth).json()
    assert page["count"] == 7 and [b["name"] for b in page["results"]] == ["b2", "b3", "b4"]
    assert not any("COUNT(*) AS" in q["sql"] for q in queries.captured_queries)  # no separate COUNT
    past_end = client.get("/api/v1/bots/?limit=3&offset=50", **auth).json()
    assert past_end["count"] == 7 and past_end["results"] == []
    huge = client.get(f"/api/v1/bots/?offset={2**63 - 1}", **auth)
    assert huge.status_code == 200 and huge.json()["count"] == 7
    filtered = client.get("/api/v1/bots/?strategy=nope", **auth).json()
    assert filtered == {"count": 0, "next": None, "previous": None, "results": []}


def test_distinct_querysets_fall_back_to_a_separate_count(sent_tasks):  # noqa: F811
    from apps.bots.models import Bot

    alice = make_user("alice")
    account = make_account(alice)
    for i in range(3):
        make_bot(alice, account=account, name=f"b{i}")
    request = APIClient().get("/").wsgi_request
    from rest_framework.request import Request

    paginator = BoundedLimitOffsetPagination()
    page = paginator.paginate_queryset(Bot.objects.order_by("id").distinct(), Request(request))
    assert paginator.count == 3 and len(page) == 3


# --- serializers' read plan -------------------------------------------------------------------
def test_market_and_account_rows_from_the_read_plan_equal_drfs_output(sent_tasks):  # noqa: F811
    from apps.core.serializers import _read_plan
    from apps.exchanges.api import ExchangeAccountSerializer, MarketSerializer
    from apps.exchanges.models import ExchangeAccount, Market
    from apps.exchanges.services import exchange_account_create

    alice = make_user("alice")
    make_account(alice)
    exchange_account_create(
        owner=alice, label="live", venue="binance", kind="live", api_key="AKIAexample1234", api_secret="s3cret-value"
    )
    assert _read_plan(MarketSerializer) and _read_plan(ExchangeAccountSerializer)
    markets = list(Market.objects.all())
    accounts = list(ExchangeAccount.objects.select_related("owner"))
    assert markets and len(accounts) == 2
    for serializer, rows in ((MarketSerializer(), markets), (ExchangeAccountSerializer(), accounts)):
        for row in rows:
            assert serializer.to_representation(row) == serializer.generic_representation(row)
    live = next(a for a in accounts if a.kind == "live")
    assert ExchangeAccountSerializer().to_representation(live)["api_key_hint"].endswith("1234")


def test_read_plan_leaves_unplanned_fields_and_null_paths_to_drf(sent_tasks):  # noqa: F811
    from rest_framework import serializers

    from apps.bots.models import Bot
    from apps.core.serializers import ModelSerializer, _read_plan

    class Nested(ModelSerializer):
        fast_read = True
        viewers = serializers.SlugRelatedField(source="shared_with", slug_field="username", many=True, read_only=True)

        class Meta:
            model = Bot
            fields = ["id", "viewers"]

    class Dotted(ModelSerializer):
        fast_read = True
        owner_email = serializers.CharField(source="owner.email", read_only=True, allow_null=True, default="none")

        class Meta:
            model = Bot
            fields = ["id", "owner_email"]

    alice = make_user("alice")
    bot = make_bot(alice, account=make_account(alice), name="b")
    assert _read_plan(Nested) is None  # a many relation: DRF's path for the whole class
    assert Nested().to_representation(bot) == {"id": bot.id, "viewers": []}
    assert _read_plan(Dotted)
    assert Dotted().to_representation(bot) == Dotted().generic_representation(bot)
    bot.owner = None  # a missing relation midway: the row goes through DRF's path
    assert (
        Dotted().to_representation(bot) == Dotted().generic_representation(bot) == {"id": bot.id, "owner_email": None}
    )


# --- connection health check --------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_a_connection_the_server_closed_is_replaced_before_it_is_used():
    """What happens at the start of each request (``request_started`` -> close_old_connections,
    then the first query's health check) when PostgreSQL closed the thread's connection."""
    import time

    import psycopg
    from django.db import close_old_connections

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    settings = connection.settings_dict
    with psycopg.connect(
        host=settings["HOST"] or "127.0.0.1", port=settings["PORT"] or 5432, user=settings["USER"],
        dbname=settings["NAME"], autocommit=True,
    ) as admin:  # fmt: skip
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])
    time.sleep(0.2)
    assert connection.connection is not None and not connection.is_usable()
    close_old_connections()  # a new request starts
    with connection.cursor() as cursor:  # no error: the health check reconnected
        cursor.execute("SELECT pg_backend_pid()")
        assert cursor.fetchone()[0] != pid


def test_a_healthy_idle_connection_needs_no_round_trip():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    with CaptureQueriesContext(connection) as queries:
        assert connection.is_usable()
    assert queries.captured_queries == []


# --- the HTTP adapter ---------------------------------------------------------------------------
def _call(app, method="GET", path="/x/", body=b"", headers=(), chunks=None):
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "query_string": b"a=1",
        "headers": list(headers),
        "http_version": "1.1",
        "client": ("10.1.2.3", 5555),
        "server": ("127.0.0.1", 8000),
    }
    pending = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)] if chunks else [{"type": "http.request", "body": body}]  # fmt: skip
    sent = []

    async def receive():
        return pending.pop(0)

    async def send(message):
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent


def _echo(environ, start_response):
    start_response("201 Created", [("Content-Type", "text/plain"), ("X-Seen", environ.get("HTTP_X_AUTH", "-"))])
    body = environ["wsgi.input"].read()
    return [environ["REQUEST_METHOD"].encode(), b" ", environ["REMOTE_ADDR"].encode(), b" ", body]


def test_pooled_wsgi_passes_the_request_and_returns_the_response():
    app = PooledWsgi(_echo, threads=2, max_body=100)
    sent = _call(app, "POST", chunks=[b"he", b"llo"], headers=[(b"x-auth", b"yes")])
    assert sent[0]["status"] == 201
    assert (b"x-seen", b"yes") in sent[0]["headers"]
    assert sent[1]["body"] == b"POST 10.1.2.3 hello"


def test_pooled_wsgi_refuses_a_body_over_the_limit_and_drops_underscore_headers():
    app = PooledWsgi(_echo, threads=1, max_body=4)
    assert _call(app, "POST", body=b"too long")[0]["status"] == 413
    sent = _call(app, headers=[(b"x_auth", b"forged")])
    assert (b"x-seen", b"-") in sent[0]["headers"]
    head = _call(app, "HEAD")
    assert head[1]["body"] == b""


def test_pooled_wsgi_closes_the_response_so_request_finished_runs():
    closed = []

    class Body(list):
        def close(self):
            closed.append(True)

    def app(environ, start_response):
        start_response("200 OK", [])
        return Body([b"ok"])

    assert _call(PooledWsgi(app, threads=1, max_body=10))[1]["body"] == b"ok"
    assert closed == [True]


def test_without_redis_the_api_still_answers(clean_redis, monkeypatch):
    """The rate limit protects capacity; with Redis unreachable requests go through (and the
    outage is logged), they are not refused."""
    import redis

    from apps.core import health

    alice = make_user("alice")
    key = Token.objects.create(user=alice).key
    monkeypatch.setattr(throttling, "_script", None)
    monkeypatch.setattr(health, "_redis_client", redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2))
    response = APIClient().get("/api/v1/me/", HTTP_AUTHORIZATION=f"Token {key}")
    assert response.status_code == 200
