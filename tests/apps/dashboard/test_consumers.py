"""Live sockets through the real ASGI server (uvicorn) and the Redis channel layer: a socket
is refused unless the user may see the object; pushes are coalesced; fills are never dropped."""

from __future__ import annotations

import asyncio
import json
import time
from decimal import Decimal

import pytest
import websockets
from channels.layers import get_channel_layer
from django.test import Client
from django.utils import timezone

from apps.dashboard.consumers import Throttle
from tests.apps.bots.factories import make_bot, make_user, sim_market

ORIGIN = {"Origin": "http://127.0.0.1"}


def cookie_for(user) -> dict:
    client = Client()
    client.force_login(user)
    return {"Cookie": f"sessionid={client.cookies['sessionid'].value}", **ORIGIN}


def ws(base: str, path: str) -> str:
    return base.replace("http://", "ws://") + path


async def close_code(url: str, headers: dict) -> int:
    async with websockets.connect(url, additional_headers=headers, open_timeout=10) as socket:
        try:
            while True:
                await asyncio.wait_for(socket.recv(), 5)
        except websockets.exceptions.ConnectionClosed as exc:
            return exc.rcvd.code


async def in_thread(fn, **kwargs):
    """Run a database call from async test code in a worker thread that closes its connection
    (so the test database is free to be dropped at the end)."""
    from django.db import connection

    def call():
        try:
            return fn(**kwargs)
        finally:
            connection.close()

    return await asyncio.to_thread(call)


async def receive_until(socket, predicate, timeout: float = 5.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        message = json.loads(await asyncio.wait_for(socket.recv(), max(0.05, deadline - time.monotonic())))
        if predicate(message):
            return message


@pytest.fixture
def people(transactional_db):
    alice, bob = make_user("alice"), make_user("bob")
    return alice, bob, make_bot(alice, name="alice-ws")


def test_bot_socket_of_another_user_is_closed_with_4403(asgi_server, people):
    _alice, bob, bot = people
    assert asyncio.run(close_code(ws(asgi_server, f"/ws/bot/{bot.pk}/"), cookie_for(bob))) == 4403


def test_anonymous_bot_socket_is_closed_with_4401(asgi_server, people):
    _alice, _bob, bot = people
    assert asyncio.run(close_code(ws(asgi_server, f"/ws/bot/{bot.pk}/"), ORIGIN)) == 4401


def test_owner_gets_state_then_status_and_every_fill(asgi_server, people):
    alice, _bob, bot = people

    headers = cookie_for(alice)

    async def scenario():
        layer = get_channel_layer()
        async with websockets.connect(ws(asgi_server, f"/ws/bot/{bot.pk}/"), additional_headers=headers) as s:
            state = await receive_until(s, lambda m: m["type"] == "state")
            assert state == {"type": "state", "actual_state": "stopped", "desired_state": "stopped", "open_orders": []}
            group = f"bot.{bot.pk}"
            for i in range(5):
                await layer.group_send(
                    group,
                    {
                        "type": "bot.update",
                        "data": {"type": "fill", "side": "buy", "price": "100", "qty": str(i + 1), "cid": f"c{i}"},
                    },
                )
            await layer.group_send(
                group, {"type": "bot.update", "data": {"type": "status", "equity": "7", "orders": []}}
            )
            fills = []
            while len(fills) < 5:
                fills.append(await receive_until(s, lambda m: m["type"] == "fill"))
            status = await receive_until(s, lambda m: m["type"] == "status")
            return fills, status

    fills, status = asyncio.run(scenario())
    assert [f["qty"] for f in fills] == ["1", "2", "3", "4", "5"]
    assert status["equity"] == "7"


def test_book_socket_coalesces_a_fast_market_and_ends_on_the_latest_book(asgi_server, people):
    alice, _bob, _bot = people
    market = sim_market()

    headers = cookie_for(alice)

    async def scenario():
        layer = get_channel_layer()
        path = f"/ws/book/{market.venue}/{market.symbol}/"
        async with websockets.connect(ws(asgi_server, path), additional_headers=headers) as s:
            await asyncio.sleep(0.3)
            group = "book.sim_alpha.BTC_USDT"
            for i in range(60):  # 60 updates in well under a second
                await layer.group_send(
                    group, {"type": "book.update", "book": {"type": "book", "seq": i, "bids": [], "asks": []}}
                )
            got = []
            try:
                while True:
                    got.append(json.loads(await asyncio.wait_for(s.recv(), 1.0)))
            except TimeoutError:
                pass
            return got

    got = asyncio.run(scenario())
    seqs = [m["seq"] for m in got if "seq" in m]
    assert seqs[-1] == 59, "the latest book always arrives"
    assert len(seqs) < 30, f"pushes were not throttled: {len(seqs)}"


def test_book_socket_for_an_unknown_market_is_refused(asgi_server, people):
    alice, _bob, _bot = people
    assert asyncio.run(close_code(ws(asgi_server, "/ws/book/nowhere/XXX/YYY/"), cookie_for(alice))) == 4403


def test_backtest_socket_is_private_and_reports_progress(asgi_server, people):
    from apps.backtests.models import BacktestRun
    from apps.backtests.services import backtest_progress_update, backtest_start

    alice, bob, _bot = people
    run = BacktestRun.objects.create(owner=alice, name="r", strategy="fixed_spread", data_source="recording")
    assert asyncio.run(close_code(ws(asgi_server, f"/ws/backtest/{run.pk}/"), cookie_for(bob))) == 4403
    headers = cookie_for(alice)

    async def scenario():
        async with websockets.connect(ws(asgi_server, f"/ws/backtest/{run.pk}/"), additional_headers=headers) as s:
            first = await receive_until(s, lambda m: m["type"] == "progress")
            await in_thread(backtest_start, run_id=run.pk)
            await in_thread(backtest_progress_update, run_id=run.pk, progress=42)
            later = await receive_until(s, lambda m: m.get("progress", 0) >= 42)
            return first, later

    first, later = asyncio.run(scenario())
    assert first["status"] == "queued" and first["progress"] == 0
    assert later["status"] == "running" and later["progress"] == 42


def test_arbitrage_socket_pushes_new_opportunities(asgi_server, people):
    from apps.arbitrage.services import DetectedOpportunity, opportunity_record_batch

    alice, _bob, _bot = people

    headers = cookie_for(alice)

    async def scenario():
        async with websockets.connect(ws(asgi_server, "/ws/arbitrage/"), additional_headers=headers) as s:
            await asyncio.sleep(0.3)
            await in_thread(
                opportunity_record_batch,
                detected=[
                    DetectedOpportunity(
                        ts=timezone.now(),
                        symbol="BTC/USDT",
                        buy_venue="sim:alpha",
                        sell_venue="sim:beta",
                        buy_price=Decimal("100"),
                        sell_price=Decimal("101"),
                        size=Decimal("0.5"),
                    )
                ],
            )
            first = await receive_until(s, lambda m: m["type"] == "opportunities", timeout=5)
            # The tracker's push of the same row (and of a new one) after the poll found it.
            layer = get_channel_layer()
            same = dict(first["rows"][0])
            await layer.group_send("arbitrage", {"type": "arbitrage.opportunity", "opportunity": same})
            await layer.group_send(
                "arbitrage", {"type": "arbitrage.opportunity", "opportunity": {**same, "id": same["id"] + 1000}}
            )
            second = await receive_until(s, lambda m: m["type"] == "opportunities", timeout=5)
            return first, second

    first, second = asyncio.run(scenario())
    row = first["rows"][0]
    assert row["buy_venue"] == "sim:alpha" and Decimal(row["sell_price"]) == Decimal("101")
    assert [r["id"] for r in second["rows"]] == [row["id"] + 1000], "each opportunity reaches the page once"


def test_throttle_sends_at_most_rate_and_keeps_the_latest_value():
    sent = []

    async def send(payload):
        sent.append((time.monotonic(), payload))

    async def scenario():
        throttle = Throttle(send, rate=10, burst=2)
        for i in range(100):
            await throttle.offer("book", i)
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.3)

    asyncio.run(scenario())
    values = [p for _, p in sent]
    assert values[-1] == 99
    elapsed = sent[-1][0] - sent[0][0]
    assert len(values) <= 2 + elapsed * 10 + 1
    assert values == sorted(values)
