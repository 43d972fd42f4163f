"""In-process fan-out of channel-layer groups to many websocket connections.

A channel-layer ``group_send`` to a group of N consumers costs N Redis pushes and N pops. For
market data watched by many browsers, each server process instead joins the group once (a hub
channel per group) and hands every message to its local subscribers in memory, serialising the
payload once for all of them. Subscribers are added only after the consumer's permission check.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

logger = logging.getLogger(__name__)
Listener = Callable[[dict[str, Any]], Awaitable[None]]


class GroupHub:
    """One channel-layer subscription per group for this event loop, shared by local listeners."""

    def __init__(self) -> None:
        self.listeners: dict[str, set[Listener]] = {}
        self.channels: dict[str, str] = {}
        self.pumps: dict[str, asyncio.Task] = {}
        self.lock = asyncio.Lock()

    async def subscribe(self, layer, group: str, listener: Listener) -> None:
        async with self.lock:
            self.listeners.setdefault(group, set()).add(listener)
            if group not in self.pumps:
                channel = await layer.new_channel()  # same prefix as consumers: one receive loop
                await layer.group_add(group, channel)
                self.channels[group] = channel
                self.pumps[group] = asyncio.get_running_loop().create_task(self._pump(layer, group, channel))

    async def unsubscribe(self, layer, group: str, listener: Listener) -> None:
        async with self.lock:
            listeners = self.listeners.get(group)
            if listeners is None:
                return
            listeners.discard(listener)
            if listeners:
                return
            del self.listeners[group]
            pump = self.pumps.pop(group, None)
            channel = self.channels.pop(group, None)
            if pump is not None:
                pump.cancel()
            if channel is not None:
                try:
                    await layer.group_discard(group, channel)
                except Exception:  # the group entry expires on its own
                    logger.debug("hub could not leave %s", group)

    async def _pump(self, layer, group: str, channel: str) -> None:
        while True:
            try:
                message = await layer.receive(channel)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis hiccup: wait and go on; browsers show the next update
                logger.warning("hub %s receive failed: %s", group, exc)
                await asyncio.sleep(0.5)
                continue
            for listener in list(self.listeners.get(group, ())):
                try:
                    await listener(message)
                except Exception:  # one broken connection never stops the others
                    logger.debug("hub listener on %s failed", group, exc_info=True)


_hubs: dict[int, GroupHub] = {}


def hub() -> GroupHub:
    """The hub of the running event loop (uvicorn runs one loop per process)."""
    loop = asyncio.get_running_loop()
    key = id(loop)
    current = _hubs.get(key)
    if current is None or getattr(current, "_loop", None) is not loop:
        current = GroupHub()
        current._loop = loop
        _hubs[key] = current
    return current
