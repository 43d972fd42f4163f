"""The overview's net inventory table over ``ws/portfolio/`` (real uvicorn and the Redis channel
layer): my inventory on open, the portfolio sweep's pushes, never another user's."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import websockets
from channels.layers import get_channel_layer

from tests.apps.bots.factories import make_account, make_user
from tests.apps.dashboard.test_consumers import ORIGIN, close_code, cookie_for, in_thread, receive_until, ws


def _set_target(user, **fields):
    from apps.portfolio.targets import inventory_target_set

    return inventory_target_set(owner=user, actor=user, **fields)


def _sweep():
    from workers import portfolio

    return portfolio.sweep()


def test_anonymous_portfolio_socket_is_closed_with_4401(asgi_server):
    assert asyncio.run(close_code(ws(asgi_server, "/ws/portfolio/"), ORIGIN)) == 4401


def test_my_inventory_arrives_on_open_and_follows_the_sweep_and_another_users_never_does(asgi_server):
    alice, bob = make_user("alice"), make_user("bob")
    make_account(alice, label="a")
    make_account(bob, label="b")
    _set_target(bob, asset="BTC", target="3", max_net="4")
    headers = cookie_for(alice)
    layer = get_channel_layer()

    async def scenario():
        async with websockets.connect(ws(asgi_server, "/ws/portfolio/"), additional_headers=headers) as s:
            first = await receive_until(s, lambda m: m["type"] == "inventory")
            await in_thread(_set_target, user=alice, asset="BTC", target="0.25", max_net="1")
            pushed = await in_thread(_sweep)
            update = await receive_until(
                s, lambda m: m["type"] == "inventory" and any(a["target"] for a in m["assets"]), timeout=10
            )
            # a message for another user on my group (or a forged one) is dropped by the consumer
            await layer.group_send(
                f"portfolio.{alice.pk}",
                {"type": "portfolio.update", "data": {"owner": bob.pk, "username": "bob", "quote": "X", "assets": []}},
            )
            try:
                stray = await receive_until(s, lambda m: m.get("owner") == bob.pk, timeout=3)
            except TimeoutError:
                stray = None
            return first, pushed, update, stray

    first, pushed, update, stray = asyncio.run(scenario())
    assert first["owner"] == alice.pk and first["quote"] == "USDT"
    btc = next(a for a in first["assets"] if a["asset"] == "BTC")
    assert Decimal(btc["net"]) == Decimal("0.5") and btc["target"] is None
    assert pushed["users"] == 2 and pushed["breaches"] == 0
    btc = next(a for a in update["assets"] if a["asset"] == "BTC")
    assert Decimal(btc["target"]) == Decimal("0.25") and Decimal(btc["deviation"]) == Decimal("0.25")
    assert Decimal(btc["usage"]) == Decimal("0.5") and btc["breached"] is False
    assert stray is None
