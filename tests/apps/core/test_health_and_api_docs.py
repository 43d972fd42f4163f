from __future__ import annotations

import json
import time

import pytest
from django.db import connection
from django.test import Client

from apps.core.health import write_heartbeat, write_stamp
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
    assert checks["supervisor"]["up"] is False and checks["default_consumer"]["up"] is False


def _control_plane_alive(queues=("default", "backtests")) -> None:
    write_heartbeat("worker", "w1@host", {"queues": list(queues)})
    write_heartbeat("beat", "host", {})
    write_stamp("beat", {"host": "host"})
    write_stamp("supervisor", {"worker": "w1@host", "wanted": 3, "owned": 2, "claim_pending": 1})


def test_healthz_is_ok_with_a_default_worker_beat_ticking_and_the_supervisor_running(clean_redis, admin_user):
    _control_plane_alive(queues=("default", "bots"))
    response = Client().get("/healthz")
    body = response.json()
    assert response.status_code == 200 and body["status"] == "ok", body
    assert body["checks"]["workers"] == {"up": True, "count": 1}
    assert body["checks"]["default_consumer"] == {"up": True, "count": 1}
    operator = Client()
    operator.force_login(admin_user)
    details = operator.get("/healthz").json()["checks"]
    assert details["workers"]["workers"][0]["queues"] == ["default", "bots"]
    assert details["supervisor"]["worker"] == "w1@host" and details["supervisor"]["wanted"] == 3
    assert details["default_consumer"]["workers"] == ["w1@host"]


def test_stale_heartbeats_count_as_down(clean_redis, settings):
    from apps.core.health import heartbeat_key

    old = json.dumps({"ts": 0, "queues": []})
    clean_redis.set(heartbeat_key("worker", "w1@host"), old)
    clean_redis.set(heartbeat_key("beat", "host"), old)
    body = Client().get("/healthz").json()
    assert body["checks"]["workers"]["up"] is False and body["checks"]["beat"]["up"] is False


@pytest.mark.parametrize("silent", ["beat", "supervisor"])
def test_a_silent_beat_or_supervisor_makes_healthz_fail(clean_redis, silent):
    """Processes alive (heartbeats fresh) but beat not ticking or the supervisor not running."""
    from apps.core.health import stamp_key

    _control_plane_alive()
    clean_redis.set(stamp_key(silent), json.dumps({"ts": time.time() - 31}))
    response = Client().get("/healthz")
    checks = response.json()["checks"]
    assert response.status_code == 503 and checks[silent]["up"] is False
    assert checks["workers"]["up"] and checks["default_consumer"]["up"]


def test_bot_hosts_alone_do_not_make_healthz_ok(clean_redis):
    """Issue 23: the default worker died, the bot hosts still beat; /healthz stayed 200."""
    _control_plane_alive(queues=("bots", "feeds"))
    response = Client().get("/healthz")
    checks = response.json()["checks"]
    assert response.status_code == 503
    assert checks["workers"] == {"up": True, "count": 1} and checks["default_consumer"] == {"up": False, "count": 0}


def test_operators_page_shows_the_control_plane_and_timescaledb_as_healthz_does(clean_redis, admin_user):
    _control_plane_alive(queues=("bots", "feeds"))
    operator = Client()
    operator.force_login(admin_user)
    html = operator.get("/operators/").content.decode()
    health_card = html[html.index("System health") : html.index('id="control-plane"')]
    assert 'timescaledb</td><td><span class="badge">absent</span>' in health_card
    control = html[html.index('id="control-plane"') :]
    control = control[: control.index("</section>")]
    assert 'Control plane <span class="badge state-error">down</span>' in control
    assert "no live worker consumes the default queue" in control
    assert "2 owned, 1 waiting for a host" in control and "on w1@host" in control


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
