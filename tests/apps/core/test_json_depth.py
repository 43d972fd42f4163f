"""Deeply nested JSON is refused with a 400 naming the limit before any parser recurses into it:
the API (signed in or not), any other view sent a JSON body, JSON typed into forms, websockets."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets
from django.test import Client
from rest_framework.test import APIClient, APIRequestFactory

from apps.accounts.api import ObtainTokenView
from apps.core import jsondepth
from apps.dashboard.forms import BacktestForm
from tests.apps.bots.factories import make_user
from tests.mmsite.test_websocket import session_cookie, ws_url

DEEP = "[" * 1000 + "]" * 1000  # ~2 KB: RecursionError in json.loads without the check


def _refused(response) -> None:
    assert response.status_code == 400, (response.status_code, response.content[:200])
    detail = json.loads(response.content)["detail"]
    assert "nested deeper than 64 levels" in detail and "at most 64" in detail, detail


def test_depth_is_measured_without_recursion_and_ignores_brackets_in_strings():
    jsondepth.check_depth("[" * 64 + "]" * 64)
    with pytest.raises(jsondepth.JSONTooDeep) as info:
        jsondepth.check_depth("[" * 65 + "]" * 65)
    assert info.value.position == 64
    jsondepth.check_depth(json.dumps({"name": "[{" * 5000, "x": ['a\\"[[[[' * 100]}))
    with pytest.raises(jsondepth.JSONTooDeep):
        jsondepth.check_depth(b'{"a": ' * 200_000 + b"1" + b"}" * 200_000)  # far past the recursion limit
    assert jsondepth.loads(b'{"a": [[1]]}') == {"a": [[1]]}


@pytest.mark.django_db
def test_anonymous_token_endpoint_refuses_deep_json_with_400(clean_redis):
    _refused(Client().post("/api/v1/auth/token/", DEEP, content_type="application/json"))
    body = '{"username": ' + DEEP + ', "password": "x"}'
    _refused(Client().post("/api/v1/auth/token/", body, content_type="application/json"))


@pytest.mark.django_db
def test_signed_in_endpoints_refuse_deep_json_with_400(clean_redis):
    client = APIClient()
    client.force_authenticate(make_user("deep"))
    _refused(client.post("/api/v1/bots/", DEEP, content_type="application/json"))
    _refused(client.patch("/api/v1/arbitrage/settings/", '{"a": ' + DEEP + "}", content_type="application/json"))
    # A normal body still reaches the view (and gets its own validation answer).
    assert client.post("/api/v1/bots/", {"name": "[[[["}, format="json").status_code == 400


@pytest.mark.django_db
def test_the_api_parser_refuses_it_even_without_the_middleware(clean_redis):
    request = APIRequestFactory().post("/api/v1/auth/token/", DEEP, content_type="application/json")
    response = ObtainTokenView.as_view()(request)
    response.render()
    _refused(response)


@pytest.mark.django_db
def test_any_view_sent_a_deep_json_body_gets_400_from_the_middleware():
    _refused(Client().post("/accounts/login/", DEEP, content_type="application/json"))
    _refused(Client().post("/accounts/login/", DEEP, content_type="application/vnd.api+json"))


def test_json_typed_into_a_form_is_refused_with_the_limit():
    form = BacktestForm(data={"name": "n", "strategy": "fixed_spread", "data_source": "recording", "data_params": DEEP})
    assert not form.is_valid()
    assert "nested deeper than 64 levels" in str(form.errors["data_params"])


def test_websocket_answers_bad_messages_and_stays_open(asgi_server):
    headers = {"Cookie": session_cookie("wsdeep"), "Origin": "http://127.0.0.1"}

    async def talk() -> list[dict]:
        replies = []
        async with websockets.connect(ws_url(asgi_server, "/ws/ping/"), additional_headers=headers) as socket:
            for message in (DEEP, "not json", "[1]", json.dumps({"type": "ping"})):
                await socket.send(message)
                replies.append(json.loads(await asyncio.wait_for(socket.recv(), 10)))
        return replies

    deep, garbage, array, pong = asyncio.run(talk())
    assert deep["type"] == "error" and "nested deeper than 64 levels" in deep["error"]
    assert garbage["type"] == "error" and "Expecting value" in garbage["error"]
    assert array["type"] == "error" and "JSON object" in array["error"]
    assert pong == {"type": "pong", "user": "wsdeep"}
