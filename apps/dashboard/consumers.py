"""Websocket consumers for live pages. Each one authenticates, checks permission on the object
through the selectors, and only then joins the object's channel-layer group; anyone else is
refused with close code 4401 (not signed in) or 4403 (not allowed). Pushes to the browser go
through a per-connection :class:`Throttle` that coalesces to the latest value per key, so a
fast market never floods a page.

Groups (published by the workers): ``book.<venue>.<symbol>`` (``book.update`` with ``book``),
``bot.<id>`` (``bot.update`` with ``data`` of type ``status`` or ``fill``; the consumer adds the
bot's own PnL, ``pnl``, every ``BOT_PNL_SECONDS``), ``arbitrage``
(``arbitrage.opportunity`` with ``opportunity``), ``backtest.<id>`` (``backtest.progress``) and
``portfolio.<user id>`` (``portfolio.update`` with the user's inventory).
Bot, backtest and arbitrage consumers also poll the database for state changes, so a page is
right even when no worker publishes."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer
from django.conf import settings

from apps.dashboard.fanout import hub
from apps.dashboard.live import bot_status_key, feed_book_key, group_name, legs_messages

logger = logging.getLogger(__name__)

BOOK_RATE = getattr(settings, "DASHBOARD_BOOK_PUSH_PER_S", 10.0)
BOT_STATUS_RATE = 4.0
BOT_PNL_SECONDS = 2.0
PORTFOLIO_SECONDS = 2.0
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403


class Throttle:
    """Token bucket per connection: at most ``rate`` pushes a second (bursts of ``burst``).

    ``offer`` never waits for the network: it records the value under its key (a newer value
    replaces one not yet sent) and wakes this connection's own sender task. So a slow browser
    gets the latest book rather than a backlog, and never holds up the others."""

    def __init__(self, send: Callable[[Any], Awaitable[None]], rate: float, burst: int = 3) -> None:
        self.send = send
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.stamp = time.monotonic()
        self.pending: dict[str, Any] = {}
        self.wake = asyncio.Event()
        self.task: asyncio.Task | None = None
        self.coalesced = 0

    def _refill(self) -> None:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    async def offer(self, key: str, payload: Any) -> None:
        if key in self.pending:
            self.coalesced += 1
        self.pending[key] = payload
        self.wake.set()
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            while self.pending:
                self._refill()
                if self.tokens < 1:
                    await asyncio.sleep((1 - self.tokens) / self.rate)
                    continue
                key = next(iter(self.pending))
                payload = self.pending.pop(key)
                self.tokens -= 1
                try:
                    await self.send(payload)
                except Exception:  # the connection is gone; disconnect() cancels us
                    return

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()


async def _redis_get(key: str) -> str | None:
    from apps.core.health import redis_client

    try:
        raw = await asyncio.to_thread(redis_client().get, key)
    except Exception:
        return None
    return raw.decode() if raw else None


class _LiveConsumer(AsyncWebsocketConsumer):
    """Refuse anonymous users; subclasses implement ``authorize`` and set ``groups_to_join``."""

    poll_interval: float | None = None

    async def connect(self) -> None:
        # Refusals accept the handshake and then close with a code the page can read (4401/4403);
        # nothing is joined or sent before the checks pass.
        self.joined: list[str] = []
        self.poller: asyncio.Task | None = None
        rate = getattr(self, "rate", 10.0)
        # Bursts of up to a second's worth let a page catch up after a stall without losing
        # updates; the sustained rate stays capped.
        self.throttle = Throttle(self._send_json, rate, burst=max(3, int(rate)))
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.accept()
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        allowed = await self.authorize(user, self.scope["url_route"]["kwargs"])
        if not allowed:
            await self.accept()
            await self.close(code=CLOSE_FORBIDDEN)
            return
        for group in self.groups_to_join():
            await self.channel_layer.group_add(group, self.channel_name)
            self.joined.append(group)
        await self.accept()
        await self.on_open()
        if self.poll_interval:
            self.poller = asyncio.get_running_loop().create_task(self._poll_loop())

    async def disconnect(self, code: int) -> None:
        for group in getattr(self, "joined", []):
            await self.channel_layer.group_discard(group, self.channel_name)
        if getattr(self, "throttle", None):
            self.throttle.cancel()
        if getattr(self, "poller", None):
            self.poller.cancel()

    async def receive(self, text_data=None, bytes_data=None) -> None:
        if text_data and '"ping"' in text_data:
            await self.send(text_data=json.dumps({"type": "pong"}))

    async def _send_json(self, payload: Any) -> None:
        await self.send(text_data=payload if isinstance(payload, str) else json.dumps(payload, default=str))

    async def _poll_loop(self) -> None:
        while True:
            try:
                await self.poll()
            except asyncio.CancelledError:
                raise
            except Exception:  # a failed poll is retried next time; the socket stays up
                logger.warning("%s poll failed; retrying", type(self).__name__, exc_info=True)
            await asyncio.sleep(self.poll_interval)

    async def authorize(self, user, kwargs: dict) -> bool:
        raise NotImplementedError

    def groups_to_join(self) -> list[str]:
        return []

    async def on_open(self) -> None:
        return None

    async def poll(self) -> None:
        return None


class BookConsumer(_LiveConsumer):
    """``ws/book/<venue>/<symbol>/``: the live top-N book of a market with a feed.

    Market data is fanned out in-process (:mod:`apps.dashboard.fanout`): the server joins the
    market's group once and serialises each book once for every browser watching it."""

    rate = BOOK_RATE
    # No per-connection channel: books arrive through the hub, so this consumer does not take
    # part in the channel layer's receive loop at all (cheaper with many watchers).
    channel_layer_alias = "__book_consumers_use_the_hub__"

    async def authorize(self, user, kwargs: dict) -> bool:
        self.venue, self.symbol = kwargs["venue"], kwargs["symbol"]
        return await database_sync_to_async(_market_exists)(self.venue, self.symbol)

    async def on_open(self) -> None:
        self.book_group = group_name("book", self.venue, self.symbol)
        self.layer = get_channel_layer()
        await hub().subscribe(self.layer, self.book_group, self.on_book)
        raw = await _redis_get(feed_book_key(self.venue, self.symbol))
        if raw:
            await self.throttle.offer("book", raw)

    async def disconnect(self, code: int) -> None:
        if getattr(self, "book_group", None):
            await hub().unsubscribe(self.layer, self.book_group, self.on_book)
        await super().disconnect(code)

    async def on_book(self, message: dict) -> None:
        text = message.get("_text")
        if text is None:  # the first listener serialises for everyone
            book = message.get("book") or {}
            book.setdefault("type", "book")
            text = message["_text"] = json.dumps(book, default=str)
        await self.throttle.offer("book", text)

    async def book_update(self, event: dict) -> None:
        """Direct group messages (not used by the hub path, kept for compatibility)."""
        await self.on_book(event)


class BotConsumer(_LiveConsumer):
    """``ws/bot/<id>/``: a bot's live status (coalesced), every fill, and state changes."""

    rate = BOT_STATUS_RATE
    poll_interval = 1.0

    async def authorize(self, user, kwargs: dict) -> bool:
        self.bot_id = int(kwargs["bot_id"])
        self.state = await database_sync_to_async(_bot_state)(user, self.bot_id)
        return self.state is not None

    def groups_to_join(self) -> list[str]:
        return [group_name("bot", str(self.bot_id))]

    async def on_open(self) -> None:
        raw = await _redis_get(bot_status_key(self.bot_id))
        if raw:
            await self.throttle.offer("status", raw)
            await self._offer_legs(raw)
        await self._send_state()
        await self._send_pnl()

    async def _send_pnl(self) -> None:
        """The bot's own PnL (fills and position at the live mid), when it changed."""
        self.pnl_at = time.monotonic()
        message = await database_sync_to_async(_bot_pnl)(self.scope["user"], self.bot_id)
        if message is not None and message != getattr(self, "last_pnl", None):
            self.last_pnl = message
            await self.throttle.offer("pnl", message)

    async def _send_state(self) -> None:
        actual, desired, orders = self.state
        await self._send_json(
            {"type": "state", "actual_state": actual, "desired_state": desired, "open_orders": orders}
        )

    async def bot_update(self, event: dict) -> None:
        data = event.get("data") or {}
        if data.get("type") == "status":
            await self.throttle.offer("status", data)
            await self._offer_legs(data)
        else:  # fills and other events are never coalesced away
            await self._send_json(data)

    async def _offer_legs(self, status) -> None:
        """The overview's legs lines of the bot (a hedged bot's two legs, a hedge-mode bot's long and
        short), coalesced like the status they come from."""
        for message in legs_messages(status):
            await self.throttle.offer(message["type"], message)

    async def poll(self) -> None:
        state = await database_sync_to_async(_bot_state)(self.scope["user"], self.bot_id)
        if state is None:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        if state[:2] != self.state[:2] or (state[0] != "running" and state[2] != self.state[2]):
            self.state = state
            await self._send_state()
        self.state = state
        if time.monotonic() - getattr(self, "pnl_at", 0.0) >= BOT_PNL_SECONDS:
            await self._send_pnl()


class PortfolioConsumer(_LiveConsumer):
    """``ws/portfolio/``: my net inventory per asset (the overview's table), pushed by the
    portfolio sweep (``portfolio.<user id>``) and recomputed here every ``PORTFOLIO_SECONDS``
    like the bots' PnL column, sent only when it changed."""

    rate = 2.0
    poll_interval = PORTFOLIO_SECONDS

    async def authorize(self, user, kwargs: dict) -> bool:
        return True  # every signed-in user sees their own inventory, nobody else's

    def groups_to_join(self) -> list[str]:
        return [group_name("portfolio", str(self.scope["user"].pk))]

    async def on_open(self) -> None:
        await self.poll()

    async def _offer(self, message: dict) -> None:
        if message != getattr(self, "last_inventory", None):
            self.last_inventory = message
            await self.throttle.offer("inventory", message)

    async def portfolio_update(self, event: dict) -> None:
        data = event.get("data") or {}
        if data.get("owner") == self.scope["user"].pk:
            await self._offer({"type": "inventory", **data})

    async def poll(self) -> None:
        data = await database_sync_to_async(_inventory)(self.scope["user"])
        await self._offer({"type": "inventory", **data})


class ArbitrageConsumer(_LiveConsumer):
    """``ws/arbitrage/``: new cross-venue opportunities (market-wide data for signed-in users)."""

    rate = 2.0
    poll_interval = 1.0

    async def authorize(self, user, kwargs: dict) -> bool:
        self.last_id = await database_sync_to_async(_latest_opportunity_id)(user)
        return True

    def groups_to_join(self) -> list[str]:
        return ["arbitrage"]

    async def arbitrage_opportunity(self, event: dict) -> None:
        await self._queue([event.get("opportunity")])

    async def poll(self) -> None:
        rows, self.last_id = await database_sync_to_async(_opportunities_after)(self.scope["user"], self.last_id)
        await self._queue(rows)

    async def _queue(self, rows: list) -> None:
        """Add rows (pushed or polled, each once by id) to the batch waiting to be sent."""
        seen = self.__dict__.setdefault("seen", set())
        fresh = [r for r in rows if isinstance(r, dict) and r.get("id") not in seen]
        if not fresh:
            return
        for row in fresh:
            seen.add(row.get("id"))
            self.last_id = max(self.last_id, row.get("id") or 0)
        if len(seen) > 5000:
            seen.clear()
        if "batch" not in self.throttle.pending:
            self.batch = {"type": "opportunities", "rows": []}
        self.batch["rows"] = (self.batch["rows"] + fresh)[-50:]
        await self.throttle.offer("batch", self.batch)


class BacktestConsumer(_LiveConsumer):
    """``ws/backtest/<id>/``: progress of one of my runs until it finishes."""

    rate = 4.0
    poll_interval = 0.5

    async def authorize(self, user, kwargs: dict) -> bool:
        self.run_id = int(kwargs["run_id"])
        self.last = await database_sync_to_async(_run_progress)(user, self.run_id)
        return self.last is not None

    def groups_to_join(self) -> list[str]:
        return [group_name("backtest", str(self.run_id))]

    async def on_open(self) -> None:
        await self._send_json(self.last)

    async def backtest_progress(self, event: dict) -> None:
        await self.throttle.offer("progress", {"type": "progress", **{k: v for k, v in event.items() if k != "type"}})

    async def poll(self) -> None:
        current = await database_sync_to_async(_run_progress)(self.scope["user"], self.run_id)
        if current is not None and current != self.last:
            self.last = current
            await self.throttle.offer("progress", current)


# --- database reads (through the selectors) ----------------------------------------------------
def _market_exists(venue: str, symbol: str) -> bool:
    from apps.exchanges.selectors import market_list

    return market_list(venue=venue, symbol=symbol, active=None).exists()


def _bot_state(user, bot_id: int) -> tuple[str, str, list[dict]] | None:
    """``(actual_state, desired_state, open orders in the database)`` or ``None`` if not visible."""
    from apps.bots.selectors import bot_list
    from apps.orders.models import CLOSED_STATUSES
    from apps.orders.selectors import order_list

    row = bot_list(user=user).filter(pk=bot_id).values_list("actual_state", "desired_state").first()
    if row is None:
        return None
    orders = [
        {"side": o["side"], "price": str(o["price"]), "qty": str(o["quantity"] - o["filled_quantity"])}
        for o in order_list(user=user)
        .filter(bot_id=bot_id)
        .exclude(status__in=CLOSED_STATUSES)
        .values("side", "price", "quantity", "filled_quantity")[:200]
    ]
    return row[0], row[1], orders


def _bot_pnl(user, bot_id: int) -> dict | None:
    from apps.bots.selectors import bot_list
    from apps.dashboard.pnl import bot_pnl_live, pnl_message

    bot = bot_list(user=user).select_related("market").filter(pk=bot_id).first()
    if bot is None:
        return None
    return pnl_message(bot_pnl_live(user=user, bot=bot))


def _inventory(user) -> dict:
    import json

    from django.core.serializers.json import DjangoJSONEncoder

    from apps.portfolio.inventory import owner_inventory

    return json.loads(json.dumps(owner_inventory(owner=user), cls=DjangoJSONEncoder))


def _latest_opportunity_id(user) -> int:
    from apps.arbitrage.selectors import opportunity_list

    row = opportunity_list(user=user).values_list("id", flat=True).first()
    return row or 0


def _opportunities_after(user, last_id: int) -> tuple[list[dict], int]:
    from apps.arbitrage.selectors import opportunity_list

    rows = list(
        opportunity_list(user=user)
        .filter(id__gt=last_id)
        .values(
            "id",
            "ts",
            "symbol",
            "buy_venue",
            "sell_venue",
            "buy_price",
            "sell_price",
            "size",
            "gross_edge_bps",
            "net_edge_bps",
            "net_profit",
            "fees",
            "slippage",
            "staleness_ms",
            "executed",
        )[:50]
    )
    for row in rows:
        for key, value in row.items():
            if key not in ("id", "staleness_ms", "executed"):
                row[key] = value.isoformat() if hasattr(value, "isoformat") else str(value)
    return rows, max([last_id, *(r["id"] for r in rows)])


def _run_progress(user, run_id: int) -> dict | None:
    from apps.backtests.selectors import backtest_get

    run = backtest_get(user=user, run_id=run_id)
    if run is None:
        return None
    return {
        "type": "progress",
        "status": run.status,
        "progress": run.progress,
        "eta_seconds": run.eta_seconds,
        "error": run.error,
    }
