"""The overview's legs line of a hedged bot (both legs' positions, the net exposure, why quoting
stopped) is pushed live on the bot's socket, through the real ASGI server (uvicorn) and the Redis
channel layer: a ``hedge_leg`` message on connect (from the stored status) and after each status
the host publishes, with exactly the text the overview renders for the same status."""

from __future__ import annotations

import asyncio
import json
import re

import pytest
import websockets
from channels.layers import get_channel_layer
from django.test import Client
from django.urls import reverse

from tests.apps.bots.factories import make_account, make_user, sim_market
from tests.apps.dashboard.test_consumers import cookie_for, receive_until, ws

pytestmark = pytest.mark.django_db(transaction=True)


def hedged_status(maker: str, hedge: str, exposure: str, halted: str | None) -> dict:
    """A hedged bot's live status as :mod:`workers.hedged_loop` publishes it (the parts read here)."""
    return {
        "type": "status", "state": "running", "position": maker, "risk": "halted" if halted else "ok",
        "hedged": {
            "maker": {"venue": "sim:alpha", "symbol": "BTC/USDT", "position": maker},
            "hedge": {"venue": "sim:beta", "symbol": "BTC/USDT", "position": hedge, "in_flight": 0},
            "exposure": exposure, "halted": halted, "exhausted": False, "paused": False,
        },
    }  # fmt: skip


def make_hedged_bot(owner):
    from apps.bots.models import Bot

    maker, hedge = make_account(owner, label="alpha"), make_account(owner, label="beta", venue="sim:beta")
    bot = Bot.objects.create(
        owner=owner, name="hedged ws", exchange_account=maker, market=sim_market(), strategy="hedged_maker",
        params={"hedge_account": hedge.pk, "hedge_market": sim_market("sim:beta").pk, "order_amount": "0.002"},
        risk={},
    )  # fmt: skip
    return bot


def overview_line(user, status: dict, bot) -> dict:
    """The legs line the overview renders with ``status`` stored as the bot's live status."""
    from apps.core.health import redis_client
    from apps.dashboard.live import bot_status_key

    redis_client().set(bot_status_key(bot.pk), json.dumps(status))
    client = Client()
    client.force_login(user)
    html = client.get(reverse("overview")).content.decode()
    [line] = re.findall(r'<div class="small hedge-leg"[^>]*>(.*?)</div>', html, re.S)

    def span(name: str) -> str:
        return re.search(rf'<span class="{name}">(.*?)</span>', line, re.S).group(1)

    halted = re.search(r"quoting stopped: ([^<]*)</span>", line)
    return {"type": "hedge_leg", "maker_position": span("maker-position"), "hedge_position": span("hedge-position"),
            "exposure": span("exposure"), "halted": halted.group(1) if halted else None}  # fmt: skip


def test_the_legs_line_is_pushed_on_connect_and_after_each_status_as_the_overview_renders_it(asgi_server):
    alice = make_user("alice")
    bot = make_hedged_bot(alice)
    stored = hedged_status("0.0040", "-0.004", "0E-12", None)
    rendered = overview_line(alice, stored, bot)  # also leaves the status in Redis for the connect
    assert rendered == {"type": "hedge_leg", "maker_position": "0.004", "hedge_position": "-0.004",
                        "exposure": "0", "halted": None}  # fmt: skip
    pushed = hedged_status("0.006", "-0.004", "0.002000000000", "hedge_failed: 429 rate_limited")
    headers = cookie_for(alice)

    async def scenario():
        layer = get_channel_layer()
        async with websockets.connect(ws(asgi_server, f"/ws/bot/{bot.pk}/"), additional_headers=headers) as s:
            first = await receive_until(s, lambda m: m["type"] == "hedge_leg")
            await layer.group_send(f"bot.{bot.pk}", {"type": "bot.update", "data": pushed})
            second = await receive_until(s, lambda m: m["type"] == "hedge_leg")
            return first, second

    first, second = asyncio.run(scenario())
    assert first == rendered
    assert second == {"type": "hedge_leg", "maker_position": "0.006", "hedge_position": "-0.004",
                      "exposure": "0.002", "halted": "hedge_failed: 429 rate_limited"}  # fmt: skip
    assert second == overview_line(alice, pushed, bot)  # the page renders the same figures


def test_a_single_venue_bots_status_pushes_no_legs_line(asgi_server):
    from tests.apps.bots.factories import make_bot

    alice = make_user("alice")
    bot = make_bot(alice, name="plain")
    headers = cookie_for(alice)

    async def scenario():
        layer = get_channel_layer()
        async with websockets.connect(ws(asgi_server, f"/ws/bot/{bot.pk}/"), additional_headers=headers) as s:
            await receive_until(s, lambda m: m["type"] == "state")
            await layer.group_send(f"bot.{bot.pk}", {"type": "bot.update", "data": {"type": "status", "equity": "1"}})
            await layer.group_send(f"bot.{bot.pk}", {"type": "bot.update", "data": {"type": "fill", "qty": "1"}})
            seen = []
            while not seen or seen[-1]["type"] != "fill":
                seen.append(json.loads(await asyncio.wait_for(s.recv(), 5)))
            return [m["type"] for m in seen]

    assert "hedge_leg" not in asyncio.run(scenario())


def make_hedge_mode_bot(owner):
    """A perpetual bot in hedge position mode (a long and a short leg) on a paper USD-M account."""
    from apps.bots.models import Bot
    from apps.exchanges.services import exchange_account_create
    from tests.apps.dashboard.test_perp_forms import USDM, usdm_market

    account = exchange_account_create(owner=owner, label="usdm legs", venue=USDM, paper_balances={"USDT": "1000"})
    return Bot.objects.create(
        owner=owner, name="hedge mode", exchange_account=account, market=usdm_market(), strategy="fixed_spread",
        params={}, risk={"perp": {"position_mode": "hedge"}},
    )  # fmt: skip


def test_a_hedge_mode_bots_legs_line_is_pushed_as_the_overview_renders_it(asgi_server):
    import html

    from apps.core.health import redis_client
    from apps.dashboard.live import bot_status_key
    from tests.apps.dashboard.test_perp_hedge_portal import hedge_status

    alice = make_user("alice")
    bot = make_hedge_mode_bot(alice)
    status = {"type": "status", **hedge_status()}  # a real PerpRisk's figures: long 0.004, short -0.002
    headers = cookie_for(alice)

    async def scenario():
        layer = get_channel_layer()
        async with websockets.connect(ws(asgi_server, f"/ws/bot/{bot.pk}/"), additional_headers=headers) as s:
            await receive_until(s, lambda m: m["type"] == "state")
            await layer.group_send(f"bot.{bot.pk}", {"type": "bot.update", "data": status})
            return await receive_until(s, lambda m: m["type"] == "perp_legs")

    pushed = asyncio.run(scenario())
    assert pushed == {"type": "perp_legs", "text": "long 0.004 / short -0.002"}
    redis_client().set(bot_status_key(bot.pk), json.dumps(status))
    client = Client()
    client.force_login(alice)
    page = html.unescape(client.get(reverse("overview")).content.decode())
    [line] = re.findall(r'<div class="small hedge-legs"[^>]*>(.*?)</div>', page, re.S)
    assert line == "legs: " + pushed["text"]
