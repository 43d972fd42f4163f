"""Live order entry for one bot: the venue port :class:`trading.ports.BotVenue`, which the bot
loop (:mod:`workers.botloop`) drives and the paper venue implements too, backed by
:class:`CcxtGateway` on a real exchange account:

- **fencing**: an exchange cannot run our Lua script, so before EVERY place and cancel a Redis
  script compares the bot's lease key with our lease value (and logs the action with our
  fencing token, as the paper venue does); a mismatch raises :class:`LeaseLost` and nothing is
  sent;
- **order events**: the gateway's events (accepted, fills, cancels, rejects) are pumped by a task
  into the bot's inbox, so they reach the engine and the database exactly like paper ones (fills
  are deduplicated by trade id in the gateway and stored with ``ON CONFLICT DO NOTHING``);
- **take-over**: open orders, our trades and balances come from the exchange, filtered by the
  bot's client-id prefix;
- **dead man's switch** (:mod:`workers.deadman`): the exchange's countdown cancel-all re-armed
  while the lease is ours, or, where the venue has none, the host cancelling the bot's orders
  when the lease cannot be confirmed before it expires;
- **authentication**: an :class:`AuthFailure` (raised by a place/cancel or reported by the
  gateway's stream/poll) reaches the loop, which puts the bot in ``error`` with the message.

Tests point the exchange at a local fake server with ``MM_LIVE_HTTP_BASE`` (the URL rewrite of
:func:`connectors.ccxt_venue.point_urls_at`); it is honoured only for loopback addresses, so
production code never sends orders or keys anywhere but the exchange.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from connectors import ccxt_normalize as norm
from connectors.ccxt_gateway import CcxtGateway
from connectors.ccxt_venue import make_exchange
from connectors.errors import AuthFailure, ErrorKind, classify, describe
from connectors.ratelimit import LocalRateLimiter, RateLimiter, RedisRateLimiter, rate_limit_key, route_listen_key_calls
from mmsite import env
from trading.events import CancelOrder, OrderEvent, PlaceOrder
from trading.instruments import Instrument
from trading.ports import FillReport, OrderReport
from trading.runner import NoMatching
from workers import keys
from workers.deadman import DeadMan
from workers.paper_venue import LeaseLost

logger = logging.getLogger(__name__)

UNOWNED_STOP_TIMEOUT_S = 30.0  # a stop without an owner gives up (and is retried) after this

FENCE = """
if redis.call('get', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('xadd', KEYS[2], 'MAXLEN', '~', '100000', '*', 'bot', ARGV[2], 'token', ARGV[3], 'cid', ARGV[4],
           'action', ARGV[5])
if ARGV[5] == 'place' then redis.call('set', KEYS[3], ARGV[4]) end
return 1
"""


def account_credentials(account_id: int) -> tuple[str, tuple[str, str, str]]:
    """(ccxt exchange id, (api key, secret, passphrase)) of a live account, decrypted (never log them)."""
    from apps.exchanges.models import ExchangeAccount
    from apps.exchanges.services import exchange_account_credentials

    account = ExchangeAccount.objects.get(pk=account_id)
    creds = exchange_account_credentials(account=account)
    return account.venue, (creds.api_key, creds.secret, creds.passphrase)


def account_options(account_id: int) -> dict[str, Any] | None:
    """The account's ccxt options for a derivatives account (``{"defaultType": "swap"}``); None
    for a spot one (ccxt's own default)."""
    from apps.exchanges.models import ExchangeAccount

    account = ExchangeAccount.objects.get(pk=account_id)
    return account.ccxt_options if account.is_derivatives else None


def build_gateway(
    exchange_id: str,
    credentials: tuple[str, str, str],
    *,
    account_id: int,
    redis_url: str | None = None,
    exchange_factory: Callable[..., Any] | None = None,
    options: dict[str, Any] | None = None,
) -> CcxtGateway:
    """A :class:`CcxtGateway` for one live account (rate limit shared by the account's bots).
    ``options`` are the account's ccxt options (:func:`account_options`: a derivatives account's
    ``defaultType``), passed only when given."""
    api_key, secret, passphrase = credentials
    http_base = env.live_http_base()
    extra = {"options": options} if options else {}
    exchange = (exchange_factory or make_exchange)(
        exchange_id,
        api_key=api_key or None,
        secret=secret or None,
        password=passphrase or None,
        streaming=True,  # a ccxt.pro class: its REST is async_support's, and it can stream
        http_base=http_base,
        enable_rate_limit=http_base is None,
        **extra,
    )
    rate = 1000.0 / float(getattr(exchange, "rateLimit", 100) or 100)
    limiter: RateLimiter
    if redis_url:
        limiter = RedisRateLimiter(redis_url, rate_limit_key(exchange_id, str(account_id)), rate, max(1.0, rate))
    else:
        limiter = LocalRateLimiter(rate, max(1.0, rate))
    route_listen_key_calls(exchange, limiter)  # ccxt's own user-data stream requests spend it too
    return CcxtGateway(
        exchange,
        limiter=limiter,
        # the fake servers stream no order updates: fills and order states are polled there
        streaming=None if http_base is None else False,
        poll_interval_s=2.0 if http_base is None else 0.2,
    )


class LiveVenue:
    """Order entry on a live exchange account for one bot: a :class:`trading.ports.BotVenue`
    (see the module docstring)."""

    holds_orders = False  # order rows are written before the place reaches the exchange
    reports_later = True  # order events arrive through the gateway's pump
    unconfirmed = False  # nothing is deferred: every call waits for the exchange
    round_trips = 0  # places and cancels sent (each waits for the exchange)

    def __init__(
        self,
        redis,
        gateway: CcxtGateway,
        *,
        instrument: Instrument,
        bot_id: int,
        prefix: str,
        lease_key: str,
        lease_value: str,
        token: int,
        deliver: Callable[[OrderEvent], None],
        secrets: tuple[str, ...] = (),
    ) -> None:
        self.redis = redis
        self._secrets = tuple(s for s in secrets if s)  # masked out of every message we build
        self.gateway = gateway
        self.instrument = instrument
        self.symbol = instrument.symbol
        self.bot_id = bot_id
        self.prefix = prefix
        self.lease_key = lease_key
        self.lease_value = lease_value
        self.token = token
        self._deliver = deliver
        self._k_log = keys.place_log()
        self._pump: asyncio.Task | None = None
        self.failure: AuthFailure | None = None  # reported by the gateway's poll/stream
        self._order_client_ids: dict[str, str] = {}  # venue order id -> our client id
        self.deadman: DeadMan | None = None  # exchange countdown or host fallback (workers.deadman)
        self.perp = None  # a perpetual market's workers.perp_live.LivePerp (set at start)
        self._matching = NoMatching(self.check)

    # --- lifecycle --------------------------------------------------------------------------
    async def start(self) -> None:
        """Connect (load markets, start polling/streaming), check the market matches the bot's
        instrument, and start pumping order events to the bot. Raises AuthFailure or ValueError."""
        await self.gateway.connect()
        venue_inst = await self.gateway.instrument(self.symbol)
        mine = self.instrument
        if (venue_inst.tick_size, venue_inst.lot_size) != (mine.tick_size, mine.lot_size):
            raise ValueError(
                f"market {self.symbol}: the exchange has tick {venue_inst.tick_size} / lot "
                f"{venue_inst.lot_size} but the bot's market has tick {mine.tick_size} / lot {mine.lot_size}; "
                "refresh the market metadata before starting the bot"
            )
        self._pump = asyncio.create_task(self._pump_events(), name=f"live-events-{self.bot_id}")
        self.deadman = DeadMan(self).start()

    async def close(self) -> None:
        """Stop the dead man's switch (an armed countdown is left to run: a bot stopped cleanly
        has no order left for it to cancel), the pump, and close the exchange connections."""
        if self.deadman is not None:
            await self.deadman.stop()
            self.deadman = None
        if self.perp is not None:
            await self.perp.stop()
        if self._pump is not None:
            self._pump.cancel()
            await asyncio.gather(self._pump, return_exceptions=True)
            self._pump = None
        await self.gateway.close()

    async def _pump_events(self) -> None:
        async for item in self.gateway.events():
            if isinstance(item, AuthFailure):
                self.failure = self.auth_failure(item)
                self._deliver_failure()
                continue
            if isinstance(item, BaseException):
                logger.warning("bot %s: gateway reported %s", self.bot_id, self.scrub(str(item)))
                continue
            self._deliver(item if self.perp is None else self.perp.explain(item))

    def _deliver_failure(self) -> None:
        """Wake the loop so it sees ``failure`` on its next step."""
        self._deliver(None)

    @property
    def matching(self) -> NoMatching:
        """The exchange matches itself; the runner's timer steps check the event pump (``check``)."""
        return self._matching

    def check(self) -> None:
        """Raise the authentication failure the gateway reported, if any."""
        if self.failure is not None:
            raise self.failure

    def scrub(self, text: str) -> str:
        """``text`` with the account's key/secret/passphrase masked (as the account check does)
        and key-like fields redacted: safe for logs, events and the bot's state reason."""
        from apps.exchanges.crypto import mask
        from apps.exchanges.log_redaction import redact

        for secret in self._secrets:
            text = text.replace(secret, mask(secret))
        return redact(text)

    def auth_failure(self, exc: BaseException) -> AuthFailure:
        """An :class:`AuthFailure` whose message carries no credential."""
        if isinstance(exc, AuthFailure):
            return AuthFailure(exc.venue, self.scrub(exc.detail))
        return AuthFailure(self.gateway.venue, self.scrub(describe(exc)))

    @property
    def settle_s(self) -> float:
        """How long the gateway may take to deliver an event (one poll, bounded)."""
        return min(3.0, max(0.2, 1.5 * float(self.gateway.poll_interval_s)))

    async def confirm(self) -> None:
        """Nothing is deferred here (see ``unconfirmed``)."""

    async def fetch_order(self, client_order_id: str) -> OrderReport | None:
        """The exchange's view of one of our orders by client id (None: the exchange does not know it)."""
        return await self.gateway.fetch_order(self.symbol, client_order_id)

    async def _fence(self, cid: str, action: str) -> None:
        ok = await self.redis.eval(
            FENCE,
            3,
            self.lease_key,
            self._k_log,
            keys.bot_last_place(self.bot_id),
            self.lease_value,
            self.bot_id,
            self.token,
            cid,
            action,
        )
        if not ok:
            raise LeaseLost(f"{action} {cid} not sent: lease no longer ours")

    # --- reads ------------------------------------------------------------------------------
    def _ours(self, cid: str) -> bool:
        return cid.startswith(self.prefix + "-")

    async def restore(self) -> list[OrderReport]:
        """Our open orders at the exchange, tracked so their fills map back to them."""
        self.check()
        reports = await self.fetch_open_orders()
        for rep in reports:
            if rep.client_order_id not in self.gateway.tracker.orders:
                self.gateway.tracker.adopt(self.symbol, rep)
        return reports

    async def fetch_open_orders(self) -> list[OrderReport]:
        """The exchange's open orders on the bot's symbol with the bot's prefix."""
        reports = await self.gateway.fetch_open_orders(self.symbol)
        return [r for r in reports if self._ours(r.client_order_id)]

    async def fetch_my_trades(self, since_ts: int = 0) -> list[FillReport]:
        """Our trades (this prefix) since ``since_ts`` from the exchange, fees in cash units."""
        trades = await self.gateway.fetch_my_trades(self.symbol, since_ts)
        inst = self.instrument
        out = []
        for t in trades:
            cid = t.client_order_id or await self._client_id_of_order(t.venue_order_id)
            if not self._ours(cid) or t.ts < since_ts:
                continue
            out.append(
                FillReport(
                    trade_id=t.trade_id,
                    client_order_id=cid,
                    venue_order_id=t.venue_order_id,
                    symbol=t.symbol,
                    side=t.side,
                    price=t.price,
                    qty=t.qty,
                    fee=Decimal(norm.fee_cash_units(inst, t)),
                    fee_currency=t.fee_currency,
                    maker=t.maker,
                    ts=t.ts,
                )
            )
        return out

    async def _client_id_of_order(self, venue_order_id: str) -> str:
        """Our client id of an order this process never tracked (a trade row of an order that
        filled while no one owned the bot carries only the venue's order id): asked once each."""
        if not venue_order_id:
            return ""
        if venue_order_id not in self._order_client_ids:
            gateway = self.gateway
            try:
                await gateway.limiter.acquire(1)
                order = await gateway.exchange.fetch_order(venue_order_id, self.symbol)
                cid = gateway.codec.decode(order.get("clientOrderId"))
            except Exception as exc:
                if classify(exc) is ErrorKind.AUTH:
                    raise self.auth_failure(exc) from exc
                # Anything else: the trade stays unattributed (the next take-over asks again).
                logger.info(
                    "bot %s: order %s not looked up: %s", self.bot_id, venue_order_id, self.scrub(describe(exc))
                )
                return ""
            self._order_client_ids[venue_order_id] = cid
        return self._order_client_ids[venue_order_id]

    async def fetch_balances(self) -> dict[str, Decimal]:
        return await self.gateway.fetch_balances()

    # --- order entry ------------------------------------------------------------------------
    async def send_many(self, commands: list) -> tuple[list[OrderEvent], list[tuple[object, Exception]]]:
        """Places and cancels in order, each fenced and sent on its own (an exchange takes no
        batch of mixed commands); a failed one is returned with its error for the caller to
        recover by client id, as with :meth:`place`. A refused fence or credential stops all."""
        events: list[OrderEvent] = []
        failed: list[tuple[object, Exception]] = []
        for cmd in commands:
            try:
                if type(cmd) is PlaceOrder:
                    events += await self.place(cmd)
                else:
                    events += await self.cancel(cmd.client_order_id, cmd.reason)
            except (LeaseLost, AuthFailure, asyncio.CancelledError):
                raise
            except Exception as exc:
                failed.append((cmd, exc))
        return events, failed

    async def place(self, command: PlaceOrder) -> list[OrderEvent]:
        """Fenced place; its outcome (accepted, rejected, fills) arrives through the pump."""
        self.check()
        await self._fence(command.client_order_id, "place")
        self.round_trips += 1
        if self.perp is not None:
            self.perp.sent(command)
        await self.gateway.place(self.symbol, command)
        return []

    async def recover_place(self, command: PlaceOrder) -> list[OrderEvent] | None:
        """The gateway already looks an order up by client id before re-sending; here: is it there?"""
        report = await self.gateway.fetch_order(self.symbol, command.client_order_id)
        return [] if report is not None else None

    async def cancel(self, client_order_id: str, reason: str = "cancel") -> list[OrderEvent]:
        """Fenced cancel; the confirmation arrives through the pump."""
        self.check()
        await self._fence(client_order_id, "cancel")
        self.round_trips += 1
        await self.gateway.cancel(self.symbol, CancelOrder(client_order_id, reason))
        return []

    async def on_market(self, event) -> list[OrderEvent]:
        """The exchange matches orders itself: nothing to simulate."""
        return self._matching.on_market(event)

    async def advance(self) -> list[OrderEvent]:
        self.check()
        return []

    def matches(self, client_order_id: str) -> bool:
        """Whether the gateway tracks the order (placed or adopted by this process)."""
        return client_order_id in self.gateway.tracker.orders

    async def remove(self, client_order_id: str, action: str = "cancel") -> None:
        """Cancel an order this process does not track (e.g. left by an earlier owner)."""
        await self.cancel(client_order_id, action)


async def _cancel_unowned(venue: LiveVenue, since: int, cids: list[str]) -> tuple[int, list, list, dict]:
    """Cancel our open orders, then read our trades since ``since`` and the final state of
    ``cids`` (and of every traded order). Returns (cancelled, still open, trades, reports by cid)."""
    await venue.start()
    try:
        cancelled = 0
        left = await venue.restore()
        for _attempt in range(3):
            for rep in left:
                await venue.cancel(rep.client_order_id, "stop")
                cancelled += 1
            left = await venue.fetch_open_orders()
            if not left:
                break
            await asyncio.sleep(0.2)
        trades = await venue.fetch_my_trades(since)
        reports = {}
        for cid in sorted(set(cids) | {t.client_order_id for t in trades}):
            reports[cid] = await venue.fetch_order(cid)
        return cancelled, left, trades, reports
    finally:
        await venue.close()


def stop_unowned_live(bot_id: int, lease, reason: str, redis_url: str, setup=None, *, close_rows: bool = True) -> int:
    """Stop a LIVE bot no one owns (e.g. its owner's stop was not confirmed) under ``lease``
    (a held :class:`workers.leases.SyncLease`): cancel its open orders on the exchange (fenced),
    record the trades it made meanwhile once, and close each order row with the exchange's status.
    ``setup``: one leg of a hedged bot (its account, market and client-id family), by default the
    bot's own; ``close_rows``: close the bot's order rows still open at the end (the caller does
    it after the last leg). Returns how many orders were cancelled; raises RuntimeError when some
    are still open."""
    import redis.asyncio as aioredis

    from apps.orders.services import fills_record, open_orders_close, orders_update
    from trading.ports import OrderStatus
    from workers import records

    open_cids = records.open_order_ids(bot_id)
    if setup is None:
        setup = records.bot_setup(bot_id)
    else:  # one leg: its own client-id family
        open_cids = [cid for cid in open_cids if cid.startswith(setup.prefix + "-")]
    exchange_id, credentials = account_credentials(setup.account_id)
    options = account_options(setup.account_id)
    since = max(0, setup.fills[-1][0] - 10 * 1_000_000_000) if setup.fills else 0

    async def run() -> tuple[int, list, list, dict]:
        client = aioredis.Redis.from_url(redis_url, socket_connect_timeout=3)
        venue = LiveVenue(
            client,
            build_gateway(exchange_id, credentials, account_id=setup.account_id, redis_url=redis_url, options=options),
            instrument=setup.instrument,
            bot_id=bot_id,
            prefix=setup.prefix,
            lease_key=lease.key,
            lease_value=lease.value,
            token=lease.token,
            deliver=lambda _event: None,  # the venue is read directly below
            secrets=tuple(credentials),
        )
        try:  # bounded: the supervisor calling this must never hang on an exchange
            return await asyncio.wait_for(_cancel_unowned(venue, since, open_cids), UNOWNED_STOP_TIMEOUT_S)
        except AuthFailure as exc:
            raise venue.auth_failure(exc) from None
        finally:
            await client.aclose()

    cancelled, left, trades, reports = asyncio.run(run())
    known = records.stored_trade_ids(setup.account_id, [t.trade_id for t in trades]) if trades else set()
    rows = [
        records.fill_row(setup, t.ts, t.client_order_id, t.side, t.price, t.qty, int(t.fee), t.maker, t.trade_id)
        for t in trades
        if t.trade_id not in known
    ]
    if rows:
        fills_record(rows)
    final = {
        OrderStatus.FILLED: "filled",
        OrderStatus.REJECTED: "rejected",
        OrderStatus.EXPIRED: "expired",
        OrderStatus.CANCELLED: "cancelled",
    }
    updates = [
        (cid, final[rep.status], rep.venue_order_id, rep.filled_qty, reason, setup.instrument)
        for cid, rep in reports.items()
        if rep is not None and rep.status in final
    ]
    if updates:
        orders_update(updates)
    if left:
        raise RuntimeError(f"{len(left)} orders still open on the exchange after cancelling")
    if close_rows:
        open_orders_close(bot_id, set(), "cancelled", reason)
    return cancelled
