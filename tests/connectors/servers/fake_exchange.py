"""A local exchange for tests: one aiohttp server on 127.0.0.1 answering REST and websockets.

REST: ``server.route(method, path, reply)`` where ``reply`` is JSON data (200), a
:class:`Reply` (status + body + optional delay), a list of those (served in order, the last one
repeating) or a callable ``(Recorded) -> reply``. Every request is recorded (method, path,
query, parsed body) in ``server.requests``.

Websockets: any upgrade request is a websocket. Session ``i`` (the i-th connection) plays
``server.ws_sessions[i]`` (the last repeats) — or, when ``ws_sessions`` is a dict, the sessions
under the first key found in the client's first subscribe frame (e.g. ``"@trade"``, counted per
key): after the client's first subscribe frame is
acknowledged (``{"result": null, "id": <id>}``), each item is sent in turn — a dict/list as
JSON, a str as a raw text frame, :data:`DROP` to close the connection, ``Pause(seconds)`` to
wait. Frames the client sends are recorded in ``server.ws_received``. A path registered with
``server.ws_route(path, handler)`` is served by ``handler(request)`` instead (a stateful stream,
e.g. a user-data stream that pushes events as the fake's state changes); a registered path
ending in ``/`` serves every path under it (ccxt numbers its public stream connections:
``.../market/ws/0``, ``.../market/ws/1``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import WSMsgType, web

DROP = object()


@dataclass
class Pause:
    seconds: float


@dataclass
class Reply:
    status: int = 200
    body: Any = None
    delay_s: float = 0.0
    raw: str | None = None


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    body: dict[str, Any]
    headers: dict[str, str]


@dataclass
class FakeExchange:
    routes: dict[tuple[str, str], Any] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    ws_sessions: list[list[Any]] | dict[str, list[list[Any]]] = field(default_factory=list)
    ws_connections_by_key: dict[str, int] = field(default_factory=dict)
    ws_received: list[Any] = field(default_factory=list)
    ws_connections: int = 0
    ws_routes: dict[str, Callable[[web.Request], Any]] = field(default_factory=dict)
    ack_subscribe: bool = True
    _runner: web.AppRunner | None = None
    port: int = 0
    _served: dict[tuple[str, str], int] = field(default_factory=dict)

    # --- setup ------------------------------------------------------------------------------
    def route(self, method: str, path: str, reply: Any) -> None:
        self.routes[(method.upper(), path)] = reply
        self._served[(method.upper(), path)] = 0

    def ws_route(self, path: str, handler: Callable[[web.Request], Any]) -> None:
        """Serve websocket upgrades on ``path`` with ``handler(request)`` (a coroutine)."""
        self.ws_routes[path] = handler

    @property
    def http_base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> FakeExchange:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def calls(self, method: str, path: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method.upper() and r.path == path]

    # --- handlers ---------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            handler = self.ws_routes.get(request.path) or next(
                (h for p, h in self.ws_routes.items() if p.endswith("/") and request.path.startswith(p)), None
            )
            return await (handler(request) if handler is not None else self._ws(request))
        text = await request.text()
        body: dict[str, Any] = {}
        if text:
            try:
                parsed = json.loads(text)
                body = parsed if isinstance(parsed, dict) else {"_": parsed}
            except ValueError:
                body = dict(parse_qsl(text))
        rec = Recorded(request.method, request.path, dict(request.query), body, dict(request.headers))
        self.requests.append(rec)
        key = (request.method, request.path)
        if key not in self.routes:
            return web.json_response({"code": -1, "msg": f"fake exchange: no route {key}"}, status=404)
        reply = self.routes[key]
        if isinstance(reply, list) and reply and all(isinstance(r, Reply) for r in reply):
            i = self._served[key]
            self._served[key] = i + 1
            reply = reply[min(i, len(reply) - 1)]
        if callable(reply):
            reply = reply(rec)
        if not isinstance(reply, Reply):
            reply = Reply(body=reply)
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        if reply.raw is not None:
            return web.Response(text=reply.raw, status=reply.status, content_type="application/json")
        return web.json_response(reply.body, status=reply.status)

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        index = self.ws_connections
        self.ws_connections += 1
        script: list[Any] = []
        if isinstance(self.ws_sessions, list) and self.ws_sessions:
            script = self.ws_sessions[min(index, len(self.ws_sessions) - 1)]
        player: asyncio.Task | None = None
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                data = json.loads(msg.data)
                self.ws_received.append(data)
                if self.ack_subscribe and isinstance(data, dict) and "id" in data:
                    await ws.send_str(json.dumps({"result": None, "id": data["id"]}))
                if player is None:
                    if isinstance(self.ws_sessions, dict):
                        script = self._script_for(json.dumps(data))
                    player = asyncio.create_task(self._play(ws, script))
        finally:
            if player is not None:
                player.cancel()
        return ws

    def _script_for(self, first_frame: str) -> list[Any]:
        assert isinstance(self.ws_sessions, dict)
        for key, sessions in self.ws_sessions.items():
            if key in first_frame:
                i = self.ws_connections_by_key.get(key, 0)
                self.ws_connections_by_key[key] = i + 1
                return sessions[min(i, len(sessions) - 1)] if sessions else []
        return []

    async def _play(self, ws: web.WebSocketResponse, script: list[Any]) -> None:
        for item in script:
            if item is DROP:
                await ws.close()
                return
            if isinstance(item, Pause):
                await asyncio.sleep(item.seconds)
                continue
            if isinstance(item, str):
                await ws.send_str(item)
            else:
                await ws.send_str(json.dumps(item))
            await asyncio.sleep(0.005)


def make_reply(fn: Callable[[Recorded], Any]) -> Callable[[Recorded], Any]:
    """Decorator-friendly alias: route replies computed from the request."""
    return fn
