"""Websockets through the real ASGI server (uvicorn): origin check, session auth, Redis channel layer."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets
from django.contrib.auth import get_user_model
from django.test import Client


def session_cookie(username: str) -> str:
    user = get_user_model().objects.create_user(username=username, password="pw-for-tests-1")
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


def ws_url(base: str, path: str) -> str:
    return base.replace("http://", "ws://") + path


async def exchange(url: str, headers: dict, messages: list[dict]) -> list[dict]:
    replies = []
    async with websockets.connect(url, additional_headers=headers, open_timeout=10) as socket:
        for message in messages:
            await socket.send(json.dumps(message))
            replies.append(json.loads(await asyncio.wait_for(socket.recv(), 5)))
    return replies


def test_signed_in_user_gets_pong_through_the_redis_channel_layer(asgi_server):
    cookie = session_cookie("wsuser")
    headers = {"Cookie": cookie, "Origin": "http://127.0.0.1"}
    replies = asyncio.run(exchange(ws_url(asgi_server, "/ws/ping/"), headers, [{"type": "ping"}, {"type": "?"}]))
    assert replies[0] == {"type": "pong", "user": "wsuser"}
    assert replies[1]["type"] == "error" and "accepted values" in replies[1]["error"]


def test_anonymous_socket_is_closed_with_4401(asgi_server):
    async def attempt():
        async with websockets.connect(
            ws_url(asgi_server, "/ws/ping/"), additional_headers={"Origin": "http://127.0.0.1"}
        ) as s:
            await s.recv()

    with pytest.raises((websockets.exceptions.ConnectionClosed, websockets.exceptions.InvalidStatus)) as info:
        asyncio.run(attempt())
    if isinstance(info.value, websockets.exceptions.ConnectionClosed):
        assert info.value.rcvd.code == 4401
    else:
        assert info.value.response.status_code == 403


def test_foreign_origin_is_refused(asgi_server):
    headers = {"Cookie": session_cookie("wsuser2"), "Origin": "http://evil.example"}
    with pytest.raises(websockets.exceptions.InvalidStatus) as info:
        asyncio.run(exchange(ws_url(asgi_server, "/ws/ping/"), headers, [{"type": "ping"}]))
    assert info.value.response.status_code == 403
