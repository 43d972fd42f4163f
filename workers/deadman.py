"""Exchange-side dead man's switch for a live bot (:class:`DeadMan`, run by ``LiveVenue``).

Once a second it asks Redis whether the bot's lease is still ours (and how long it has left,
``PTTL``), over its own connection with short timeouts. Then:

- **countdown venues** — while the lease is ours it (re)arms the exchange's countdown
  cancel-all for ``settings.DEADMAN_COUNTDOWN_MS`` (``MM_DEADMAN_COUNTDOWN_MS``, default 15 s): Binance USD-M / COIN-M futures
  ``countdownCancelAll`` for the bot's symbol, or ccxt ``cancelAllOrdersAfter`` where the
  exchange has it (Bybit, OKX, Kraken...; account-wide there). A host that freezes (SIGSTOP, a
  long GC, a VM pause) or loses Redis stops re-arming, and the exchange cancels the orders itself
  when the countdown runs out. The switch is shared by everything re-arming it (all bots of the
  account on that symbol), so it fires only when none of them re-arms it;
- **venues without one** (Binance spot) — when the lease could not be confirmed for half of the
  time it had left at its last confirmation, the host cancels the bot's open orders on the
  exchange itself, before the lease expires and another host may take over, and logs it
  (the cancels are not fenced: Redis is unreachable, and a cancel never adds risk).

A lease found to be someone else's ends the task (the new owner arms its own).
"""

from __future__ import annotations

import asyncio
import logging
import time

from connectors.errors import describe
from workers import metrics

logger = logging.getLogger(__name__)

CHECK_INTERVAL_S = 1.0
CHECK = """
if redis.call('get', KEYS[1]) ~= ARGV[1] then return -3 end
return redis.call('pttl', KEYS[1])
"""


def countdown_ms() -> int:
    from django.conf import settings

    return int(settings.DEADMAN_COUNTDOWN_MS)


def countdown_method(exchange, symbol: str) -> str | None:
    """How this exchange cancels our orders by itself after a countdown, or None."""
    exchange_id = str(getattr(exchange, "id", ""))
    market = (getattr(exchange, "markets", None) or {}).get(symbol) or {}
    if exchange_id.startswith("binance") and market.get("contract"):
        return "binance_linear" if market.get("linear") else "binance_inverse"
    if (getattr(exchange, "has", None) or {}).get("cancelAllOrdersAfter"):
        return "ccxt"
    return None


def _lease_client(redis):
    """A client to the bot's Redis with short timeouts and no retries (a check must not outlast
    the time it is meant to watch)."""
    import redis.asyncio as aioredis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    kw = redis.connection_pool.connection_kwargs
    return aioredis.Redis(
        host=kw.get("host", "127.0.0.1"),
        port=kw.get("port", 6379),
        db=kw.get("db", 0),
        username=kw.get("username"),
        password=kw.get("password"),
        socket_timeout=0.5,
        socket_connect_timeout=0.5,
        retry=Retry(NoBackoff(), 0),
    )


class DeadMan:
    """The switch of one live bot (see the module docstring)."""

    def __init__(self, venue, *, countdown: int | None = None, interval_s: float = CHECK_INTERVAL_S) -> None:
        self.venue = venue
        self.countdown = countdown if countdown is not None else countdown_ms()
        self.interval_s = interval_s
        self.method: str | None = None
        self.armed = 0  # successful (re)arms
        self.fallback_cancels = 0  # orders the host cancelled itself
        self._task: asyncio.Task | None = None
        self._client = None
        # Last confirmation of the lease and the time it had left then; nothing to fall back on
        # before a first one (the lease was just acquired).
        self._confirmed_at = time.monotonic()
        self._left_s = float("inf")
        self._fallen_back = False

    def start(self) -> DeadMan:
        gateway = self.venue.gateway
        self.method = countdown_method(gateway.exchange, self.venue.symbol)
        self._client = _lease_client(self.venue.redis)
        self._task = asyncio.create_task(self._run(), name=f"deadman-{self.venue.bot_id}")
        logger.info(
            "bot %s: dead man's switch %s",
            self.venue.bot_id,
            f"on the exchange ({self.method}, {self.countdown} ms)" if self.method else "in the host (no countdown)",
        )
        return self

    async def stop(self) -> None:
        """Stop watching. The bot's loop also ends on a Redis error, often before the watch has
        seen the lease go silent long enough: on a venue without a countdown, a lease that cannot
        be confirmed now (neither ours nor another's: Redis unreachable) gets the fallback here."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        watching = self.method is None and self._client is not None and not self._fallen_back
        if watching and await self._lease_left_ms() is None:
            await self._cancel_own(time.monotonic() - self._confirmed_at, self._left_s)
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _lease_left_ms(self) -> int | None:
        """Milliseconds the lease has left if it is ours, -3 if it is not, None if unknown."""
        try:
            return int(await self._client.eval(CHECK, 1, self.venue.lease_key, self.venue.lease_value))
        except Exception:
            return None

    async def _run(self) -> None:
        venue = self.venue
        while True:
            left = await self._lease_left_ms()
            now = time.monotonic()
            if left == -3:
                logger.info("bot %s: lease no longer ours; the dead man's switch stops re-arming", venue.bot_id)
                self._fallen_back = True  # the new owner has the orders: nothing to cancel at stop
                return
            if left is not None and left > 0:
                self._confirmed_at, self._left_s, self._fallen_back = now, left / 1000, False
                if self.method is not None:
                    await self._arm()
            elif self.method is None and not self._fallen_back and now - self._confirmed_at >= self._left_s / 2:
                self._fallen_back = True
                await self._cancel_own(now - self._confirmed_at, self._left_s)
            await asyncio.sleep(self.interval_s)

    async def _arm(self) -> None:
        gateway, symbol = self.venue.gateway, self.venue.symbol
        exchange = gateway.exchange
        try:
            await gateway.limiter.acquire(1)
            if self.method == "ccxt":
                await exchange.cancel_all_orders_after(self.countdown)
            else:
                params = {"symbol": exchange.market_id(symbol), "countdownTime": self.countdown}
                if self.method == "binance_linear":
                    await exchange.fapiPrivatePostCountdownCancelAll(params)
                else:
                    await exchange.dapiPrivatePostCountdownCancelAll(params)
            self.armed += 1
            metrics.DEADMAN_ARMS.inc()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the next round tries again; the switch set before still runs
            metrics.DEADMAN_ARM_FAILURES.inc()
            logger.warning(
                "bot %s: countdown cancel-all not re-armed: %s", self.venue.bot_id, self.venue.scrub(describe(exc))
            )

    async def _cancel_own(self, silent_s: float, left_s: float) -> None:
        """Cancel the bot's open orders straight through ccxt: the gateway's rate limiter lives
        in Redis too, which is what cannot be reached here (a few calls stay within any limit)."""
        venue = self.venue
        exchange, codec = venue.gateway.exchange, venue.gateway.codec
        try:
            orders = [
                o
                for o in await exchange.fetch_open_orders(venue.symbol)
                if str(codec.decode(o.get("clientOrderId")) or "").startswith(venue.prefix + "-")
            ]
        except Exception as exc:
            logger.error(
                "bot %s: lease not confirmed for %.1f s (%.1f s were left) and the exchange's open orders "
                "cannot be read: %s; nothing cancelled",
                venue.bot_id, silent_s, left_s, venue.scrub(describe(exc)),
            )  # fmt: skip
            return
        logger.warning(
            "bot %s: lease not confirmed for %.1f s of the %.1f s it had left (Redis unreachable); the "
            "venue has no countdown cancel-all, so the host cancels the bot's %d open orders itself "
            "before the lease expires",
            venue.bot_id, silent_s, left_s, len(orders),
        )  # fmt: skip
        for order in orders:
            try:
                await exchange.cancel_order(order["id"], venue.symbol)
                self.fallback_cancels += 1
                metrics.DEADMAN_FALLBACK_CANCELS.inc()
            except Exception as exc:
                logger.error(
                    "bot %s: cancel of order %s failed: %s", venue.bot_id, order["id"], venue.scrub(describe(exc))
                )
