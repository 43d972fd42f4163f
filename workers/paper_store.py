"""The paper venue's state in Redis: what a new owner needs to continue where the last one left off.

Matching itself (``trading.fillsim.SimulatedExchange``) keeps its state in memory, in a backtest
and in a hosted bot alike; a backtest needs nothing more (it has no take-over). A hosted paper
venue (:mod:`workers.paper_venue`) also records, through a :class:`PaperStore`, what the venue
would know after a crash: the open orders, the trade log and the balance movements of one
account and symbol. Every write is a Lua script (:mod:`workers.paper_scripts`) that first checks
the writer still holds the bot's lease (fencing) and answers 0 if not.

Keys (see :mod:`workers.keys`): ``paper:<account>:<symbol>:orders`` (hash client id -> order JSON),
``...:trades`` (list of fill JSON with venue trade ids, shared by the account's bots on the symbol),
``...:delta`` (hash: base lots, notional in ticks x lots, fees in cash units moved by fills), the
place log stream (every place/cancel with the fencing token that sent it) and the bot's last-place
mark. Other writers outside a bot loop (``workers.lifecycle``, ``workers.orders``: an unowned bot's
orders cancelled under its lease) use the same ``DELETE`` script.
"""

from __future__ import annotations

import hashlib
import json

from redis.exceptions import NoScriptError, ResponseError

from trading.ports import FillReport
from workers import keys
from workers.paper_reports import read_trades
from workers.paper_scripts import BATCH, CODES, DELETE, FILL, PUT

BATCH_SHA = hashlib.sha1(BATCH.encode()).hexdigest()


class PaperStore:
    """One bot's fenced view of the paper venue state of one account and symbol in Redis (see the
    module docstring). Writes are built as ops (``put``/``remove``/``fill``) and run, in order, by
    :meth:`execute`: one call, or one pipelined round trip for several; each answers falsy when
    the lease is no longer the writer's."""

    def __init__(
        self, redis, *, account_id: int, symbol: str, bot_id: int, lease_key: str, lease_value: str, token: int
    ) -> None:
        self.redis = redis
        self.symbol = symbol
        self.bot_id = bot_id
        self.lease_key = lease_key
        self.lease_value = lease_value
        self.token = token
        self.k_orders = keys.paper(account_id, symbol, "orders")
        self.k_trades = keys.paper(account_id, symbol, "trades")
        self.k_delta = keys.paper(account_id, symbol, "delta")
        self.k_log = keys.place_log()
        self.k_last_place = keys.bot_last_place(bot_id)

    # --- reads ------------------------------------------------------------------------------
    async def orders(self, prefix: str) -> dict[str, dict]:
        """The open orders of client-id ``prefix`` (client id -> stored record)."""
        raw = await self.redis.hgetall(self.k_orders)
        mine = prefix + "-"
        return {cid.decode(): json.loads(blob) for cid, blob in raw.items() if cid.decode().startswith(mine)}

    async def order(self, client_order_id: str) -> dict | None:
        """One open order's stored record, or None."""
        blob = await self.redis.hget(self.k_orders, client_order_id)
        return None if blob is None else json.loads(blob)

    async def trades(self, prefix: str, since_ts: int = 0) -> list[FillReport]:
        """The trades of client-id ``prefix`` since ``since_ts``, oldest first (fees in cash units)."""
        return await read_trades(self.redis, self.k_trades, prefix, self.symbol, since_ts)

    async def moved(self) -> dict:
        """What fills of the account on this symbol moved: ``{b"base", b"notional", b"fees"}``
        (see :func:`workers.paper_reports.moved_balances`)."""
        return await self.redis.hgetall(self.k_delta)

    # --- fenced writes ----------------------------------------------------------------------
    def put(self, record: dict) -> tuple:
        """Store a new order (logged as a place with our token, and our last-place mark)."""
        return (PUT, 4, self.lease_key, self.k_orders, self.k_log, self.k_last_place, self.lease_value,
                record["cid"], json.dumps(record), "place", self.bot_id, self.token)  # fmt: skip

    def remove(self, client_order_id: str, action: str) -> tuple:
        """Take an order off the venue; ``action`` (e.g. ``cancel``) is logged, ``""`` is not."""
        return (DELETE, 3, self.lease_key, self.k_orders, self.k_log, self.lease_value, client_order_id, action,
                self.bot_id, self.token)  # fmt: skip

    def fill(
        self, client_order_id: str, order: dict | None, trade: dict, base: int, notional: int, trade_id: str, fee: int
    ) -> tuple:
        """Record a fill: the order's new record (``order``; None: filled in full, removed), the
        trade (``trade``, stored with ``trade_id``) and the balance movements (base lots, notional
        ticks x lots, fee cash units)."""
        return (FILL, 4, self.lease_key, self.k_orders, self.k_trades, self.k_delta, self.lease_value,
                client_order_id, "" if order is None else json.dumps(order), json.dumps(trade)[:-1],  # the script appends the venue trade id
                base, notional, trade_id, fee)  # fmt: skip

    async def execute(self, ops: list[tuple]) -> list:
        """Run fenced ops in order in one script call (``paper_scripts.BATCH``, by its SHA; the
        body is sent only when Redis does not have it, e.g. after a restart); return each op's
        answer. A refused op (its script's error) raises once all of them ran, as a pipeline of
        the single scripts would."""
        keys: list = []
        args: list = [len(ops)]
        for script, nkeys, *rest in ops:
            args += (CODES[script], nkeys, len(rest) - nkeys)
            keys += rest[:nkeys]
            args += rest[nkeys:]
        try:
            replies = await self.redis.evalsha(BATCH_SHA, len(keys), *keys, *args)
        except NoScriptError:
            replies = await self.redis.eval(BATCH, len(keys), *keys, *args)
        for reply in replies:
            if isinstance(reply, ResponseError):
                raise reply
        return replies
