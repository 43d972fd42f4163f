"""The user-data stream of the fake Binance USD-M server (:mod:`tests.connectors.servers.binance_usdm`).

As Binance does: ``POST /fapi/v1/listenKey`` gives a listen key (``PUT`` keeps it alive,
``DELETE`` closes it), and a websocket on the private stream path with ``?listenKey=<key>``
(ccxt 4.5's ``binanceusdm`` connects to ``wss://fstream.binance.com/private/ws?listenKey=...``)
receives the account's events. Here the events are ``ACCOUNT_UPDATE`` frames in the shape of
Binance's (``fixtures/binanceusdm/account_update.json``, with its source): balances ``B`` and
positions ``P`` (``s``, ``pa``, ``ep``, ``cr``, ``up``, ``mt``, ``iw``, ``ps``, ``ma``) with the
update reason ``m``. The fake pushes one when its position changes (a fill: ``m`` ``ORDER``, the
changed position) and at a funding payment (``m`` ``FUNDING_FEE``: the balance, and the position
only when it is isolated, as Binance documents: a cross position's funding moves only the wallet).

Tests can cut the stream: :meth:`UserDataStream.drop` closes every connection, and while
``accepting`` is False a new connection is refused (HTTP 503) so the stream stays down.

:class:`MarkPriceStream` is the public mark price stream (``<symbol>@markPrice@1s``,
``markPriceUpdate`` frames) on ccxt's USD-M market stream path.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

from tests.connectors.servers.fake_exchange import FakeExchange

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "binanceusdm" / "account_update.json"
# ccxt's private USD-M stream path, as make_exchange's URL rewrite turns it into a local one
PRIVATE_PATH = "/fstream.binance.com/private/ws"


def account_update_template() -> dict:
    with FIXTURE.open() as fh:
        return json.load(fh)["frame"]


@dataclass
class UserDataStream:
    server: FakeExchange
    listen_key: str = "pqia91ma19a5s61cv6a81va65sdf19v8a65a1a5s61cv6a81va65sdf19v8a65a1"
    accepting: bool = True
    sockets: list[web.WebSocketResponse] = field(default_factory=list)
    connections: int = 0  # websocket connections accepted
    refused: int = 0  # connections refused while not accepting
    pushed: list[dict] = field(default_factory=list)  # every event sent, in order
    _sends: set[asyncio.Task] = field(default_factory=set)

    def install(self) -> UserDataStream:
        s = self.server
        s.route("POST", "/fapi/v1/listenKey", lambda r: {"listenKey": self.listen_key})
        s.route("PUT", "/fapi/v1/listenKey", lambda r: {})
        s.route("DELETE", "/fapi/v1/listenKey", lambda r: {})
        s.ws_route(PRIVATE_PATH, self._ws)
        return self

    async def _ws(self, request: web.Request) -> web.StreamResponse:
        if not self.accepting:
            self.refused += 1
            return web.json_response({"code": -1, "msg": "fake: user-data stream down"}, status=503)
        if request.query.get("listenKey") != self.listen_key:
            return web.json_response({"code": -1125, "msg": "This listenKey does not exist."}, status=400)
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self.connections += 1
        self.sockets.append(ws)
        try:
            async for msg in ws:  # a user-data stream takes no requests; frames are ignored
                if msg.type == WSMsgType.ERROR:
                    break
        finally:
            if ws in self.sockets:
                self.sockets.remove(ws)
        return ws

    def push(self, event: dict) -> None:
        """Send ``event`` to every open connection (called on the server's loop)."""
        self.pushed.append(event)
        text = json.dumps(event)
        for ws in list(self.sockets):
            task = asyncio.get_running_loop().create_task(ws.send_str(text))
            self._sends.add(task)
            task.add_done_callback(self._sends.discard)

    async def drop(self) -> None:
        """Close every connection (the client sees its stream end)."""
        for ws in list(self.sockets):
            await ws.close()
        self.sockets.clear()

    def account_update(self, reason: str, balances: list[dict], positions: list[dict]) -> dict:
        """An ``ACCOUNT_UPDATE`` frame (the fixture's shape) with these rows, stamped now."""
        frame = copy.deepcopy(account_update_template())
        now = int(time.time() * 1000)
        frame["T"], frame["E"] = now, now
        frame["a"] = {"B": balances, "P": positions, "m": reason}
        return frame


def balance_row(asset: str, wallet: Decimal, change: Decimal = Decimal(0)) -> dict:
    row = copy.deepcopy(account_update_template()["a"]["B"][0])
    row.update(a=asset, wb=f"{wallet:.8f}", cw=f"{wallet:.8f}", bc=f"{change:.8f}")
    return row


def position_row(symbol: str, pos: Any, mark: Decimal, side: str = "BOTH") -> dict:
    """A ``P`` row of the fake's position (``pos`` a FakePosition): one-way (``ps`` BOTH) or a
    hedge-mode leg (``side`` LONG / SHORT)."""
    row = copy.deepcopy(account_update_template()["a"]["P"][0])
    upnl = pos.amount * (mark - pos.entry) if pos.amount else Decimal(0)
    row.update(
        s=symbol,
        pa=f"{pos.amount:f}",
        ep=f"{pos.entry:f}",
        cr="0",
        up=f"{upnl:.8f}",
        mt=pos.margin_type,
        iw=pos.isolated_wallet if pos.margin_type == "isolated" else "0",
        ps=side,
        ma="USDT",
    )
    return row


MARK_FIXTURE = FIXTURE.parent / "mark_price_update.json"
# ccxt's public USD-M market stream path (mark price, klines, tickers), one connection per number
MARKET_PATH = "/fstream.binance.com/market/ws/"


def mark_price_template() -> dict:
    with MARK_FIXTURE.open() as fh:
        return json.load(fh)["frame"]


@dataclass
class MarkPriceStream:
    """Binance USD-M's mark price stream (``<symbol>@markPrice`` and ``@markPrice@1s``) on the
    public market path: a client subscribes (``{"method": "SUBSCRIBE", "params": [...], "id":
    n}``, acknowledged ``{"result": null, "id": n}``) and receives ``markPriceUpdate`` frames in
    the fixture's shape (``fixtures/binanceusdm/mark_price_update.json``, with its source)
    carrying the fake's ``mark_prices`` and ``funding``: one every ``interval_s`` (Binance: 1 s,
    or 3 s without ``@1s``) while ``silent`` is False, and one at once on :meth:`publish`.

    Tests can send any frame text (:meth:`push_raw`: an absurd mark), cut the stream
    (:meth:`drop`), keep it down (``accepting`` False: new connections refused with HTTP 503) or
    keep it open and quiet (``silent``)."""

    fake: Any  # the FakeBinanceUsdm whose marks and funding are streamed
    interval_s: float = 1.0
    accepting: bool = True
    silent: bool = False
    connections: int = 0
    refused: int = 0
    pushed: list[str] = field(default_factory=list)  # every frame sent, in order
    received: list[dict] = field(default_factory=list)  # every request frame, in order
    subscribers: dict[web.WebSocketResponse, set[str]] = field(default_factory=dict)  # socket -> symbol ids

    def install(self) -> MarkPriceStream:
        self.fake.server.ws_route(MARKET_PATH, self._ws)
        return self

    async def _ws(self, request: web.Request) -> web.StreamResponse:
        if not self.accepting:
            self.refused += 1
            return web.json_response({"code": -1, "msg": "fake: market stream down"}, status=503)
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self.connections += 1
        self.subscribers[ws] = set()
        ticker = asyncio.get_running_loop().create_task(self._tick(ws))
        try:
            async for msg in ws:
                if msg.type == WSMsgType.ERROR:
                    break
                if msg.type != WSMsgType.TEXT:
                    continue
                request_frame = json.loads(msg.data)
                self.received.append(request_frame)
                wanted = {p.split("@")[0].upper() for p in request_frame.get("params", []) if "@markPrice" in p}
                if request_frame.get("method") == "SUBSCRIBE":
                    self.subscribers[ws] |= wanted
                elif request_frame.get("method") == "UNSUBSCRIBE":
                    self.subscribers[ws] -= wanted
                await ws.send_str(json.dumps({"result": None, "id": request_frame.get("id")}))
                for symbol in wanted:
                    await self._send(ws, symbol)
        finally:
            ticker.cancel()
            self.subscribers.pop(ws, None)
        return ws

    async def _tick(self, ws: web.WebSocketResponse) -> None:
        while not ws.closed:
            await asyncio.sleep(self.interval_s)
            if not self.silent:
                for symbol in list(self.subscribers.get(ws, ())):
                    await self._send(ws, symbol)

    def frame(self, symbol: str) -> dict:
        """A ``markPriceUpdate`` of ``symbol`` with the fake's mark and funding, stamped now."""
        frame = copy.deepcopy(mark_price_template())
        mark = self.fake.mark_prices[symbol]
        rate, next_ms = self.fake.funding.get(symbol, ("0.00010000", 0))
        frame.update(E=int(time.time() * 1000), s=symbol, p=mark, i=mark, P=mark, r=rate, T=next_ms)
        return frame

    async def _send(self, ws: web.WebSocketResponse, symbol: str, text: str | None = None) -> None:
        if symbol not in self.fake.mark_prices and text is None:
            return
        text = json.dumps(self.frame(symbol)) if text is None else text
        self.pushed.append(text)
        if not ws.closed:
            await ws.send_str(text)

    async def publish(self, symbol: str) -> None:
        """Send ``symbol``'s current mark and funding to its subscribers now."""
        for ws, symbols in list(self.subscribers.items()):
            if symbol in symbols:
                await self._send(ws, symbol)

    async def push_raw(self, symbol: str, text: str) -> None:
        """Send ``text`` as it is to ``symbol``'s subscribers (a malformed or absurd frame)."""
        for ws, symbols in list(self.subscribers.items()):
            if symbol in symbols:
                await self._send(ws, symbol, text)

    async def drop(self) -> None:
        """Close every connection (the client sees its stream end)."""
        for ws in list(self.subscribers):
            await ws.close()
        self.subscribers.clear()
