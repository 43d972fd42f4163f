"""Schema-driven fuzzing of the part-B REST API (market data, arbitrage, backtests,
notifications) with schemathesis: with a trader's token, no generated request (valid or not)
gets a server error, and every error is JSON."""

from __future__ import annotations

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token

PART_B = r"^/api/v1/(marketdata|arbitrage|backtests|notifications)/"


def _load_schema():
    from django.core.wsgi import get_wsgi_application

    schema = schemathesis.openapi.from_wsgi("/api/v1/schema/?format=json", get_wsgi_application())
    return schema.include(path_regex=PART_B)


@pytest.fixture
def in_process_app(db, monkeypatch):
    """Serve requests in this test's transaction; tasks are captured, not sent to a broker."""
    from apps.backtests import services as backtest_services
    from apps.notifications import services as notification_services

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    for module in (backtest_services, notification_services):
        monkeypatch.setattr(module.current_app, "send_task", lambda name, args: None)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def trader_token(db) -> str:
    from apps.accounts.services import user_create
    from apps.notifications.services import channel_create

    trader = user_create(username="fuzzy-b", password="x", check_password=False)
    channel_create(owner=trader, kind="email", name="m", config={"address": "fuzz@example.com"})
    return Token.objects.create(user=trader).key


schema = _load_schema()


@schema.parametrize()
@settings(max_examples=8, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck), database=None)
def test_no_request_causes_a_server_error(case, in_process_app, trader_token):
    response = case.call(headers={"Authorization": f"Token {trader_token}"})
    assert response.status_code < 500, (
        f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:500]}"
    )
    if response.status_code >= 400 and response.text:
        content_type = (response.headers.get("content-type") or [""])[0]
        assert content_type.startswith("application/json"), response.text[:200]
