from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test import Client

from apps.core.health import write_heartbeat
from apps.core.timeseries import timescale_enabled

pytestmark = pytest.mark.django_db


def test_healthz_reports_services_and_missing_workers(clean_redis):
    response = Client().get("/healthz")
    body = response.json()
    assert response.status_code == 503 and body["status"] == "degraded"
    checks = body["checks"]
    assert checks["database"]["up"] and checks["redis"]["up"]
    assert checks["timescaledb"]["present"] is timescale_enabled(connection)  # plain PostgreSQL or TimescaleDB
    assert checks["workers"]["up"] is False and checks["beat"]["up"] is False


def test_healthz_is_ok_with_fresh_worker_and_beat_heartbeats(clean_redis, admin_user):
    write_heartbeat("worker", "w1@host", {"queues": ["default", "bots"]})
    write_heartbeat("beat", "host", {})
    body = Client().get("/healthz").json()
    assert body["status"] == "ok" and body["checks"]["workers"] == {"up": True, "count": 1}
    operator = Client()
    operator.force_login(admin_user)
    details = operator.get("/healthz").json()
    assert details["checks"]["workers"]["workers"][0]["queues"] == ["default", "bots"]


def test_stale_heartbeats_count_as_down(clean_redis, settings):
    from apps.core.health import heartbeat_key

    old = json.dumps({"ts": 0, "queues": []})
    clean_redis.set(heartbeat_key("worker", "w1@host"), old)
    clean_redis.set(heartbeat_key("beat", "host"), old)
    body = Client().get("/healthz").json()
    assert body["checks"]["workers"]["up"] is False and body["checks"]["beat"]["up"] is False


def test_openapi_schema_and_interactive_docs_render_without_a_cdn(django_user_model):
    client = Client()
    schema = client.get("/api/v1/schema/?format=json")
    assert schema.status_code == 200
    document = schema.json()
    assert document["openapi"].startswith("3.") and "/api/v1/me/" in document["paths"]
    docs = client.get("/api/v1/docs/")
    assert docs.status_code == 200
    html = docs.content.decode()
    assert "swagger-ui" in html and "cdn." not in html and "unpkg" not in html


def test_openapi_schema_is_valid():
    from drf_spectacular.generators import SchemaGenerator
    from drf_spectacular.validation import validate_schema

    validate_schema(SchemaGenerator().get_schema(request=None, public=True))


def test_openapi_schema_generates_without_warnings(tmp_path):
    from django.core.management import call_command

    target = tmp_path / "schema.yml"
    call_command("spectacular", "--fail-on-warn", "--validate", "--file", str(target))
    assert "/api/v1/bots/" in target.read_text()
