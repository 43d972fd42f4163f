"""The hosted paper venue's perpetual position of one bot, kept in Redis, and its liquidation.

The position itself is the bot's :class:`~trading.perp_risk.PerpRisk` (``engine.perp``): contracts,
entry, realized PnL, fees and funding booked at each funding time, the mark from the book, margin
used and free against the account's settle balance at the bot's leverage, and the liquidation
price (``trading.margin``, Binance's tiers). What this module adds is what a paper *venue* must
do beyond the bot's pre-trade risk:

- **state that survives take-over**: ``paper:<account>:<symbol>:perp:<bot>`` holds the position
  (legs as integer lots and an exact basis, realized, fees, funding as exact fractions), the newest
  fill it includes (ts, venue trade id) and the liquidation if one happened, as JSON. It is written
  by a fenced script (the bot's lease is checked, as every paper write) whenever it changed, at
  the loop's snapshot step (every second) and at once on a liquidation. A new owner restores it
  and applies only the recorded fills after that fill: funding booked since the last PnL snapshot
  is no longer lost with the process, and a liquidation (which no fill records) is kept.
- **liquidation**: when the mark reaches the liquidation price the position is closed at the
  bankruptcy price (:func:`trading.perp_ledger.close_at_bankruptcy`, the backtester's formula),
  the loss booked as realized PnL; an incident (``liquidation``) and a ``risk_breach`` notification
  are written, the bot's risk pause is set with the reason (a new owner starts it paused) and the
  loop pauses quoting (control ``liquidated``: its orders cancelled, the reason in its event log
  and state).
- **every price counts**: a bot's cycle sees only the newest book (those it fell behind on are
  conflated), so the mark a cycle reads may have come back from beyond the liquidation price.
  The mid of every book the host hands the bot (``BotRunner.push_market``, and the superseded
  snapshots the host skips, ``workers.fanout``) goes into a :class:`~trading.perp_liquidation.MarkRange`;
  each check (before a cycle, the venue's answers and the timer step apply fills; after a
  cycle; at the snapshot step) compares the lowest and highest mark since the last check with
  the liquidation price: a long (one-way, the long leg, a long-like cross account) is liquidated
  by the lowest, a short by the highest. A venue's own mark (``venue_mark2``), when one is
  streamed, is the only mark used. The marks noted while an answer's fill was being applied
  within the same cycle are judged against the position after that fill.
- **hedge position mode** (``position_mode: hedge``): both legs are stored, with the funding booked
  on each and the leg of each working order (``order_legs``), so the fills a new owner applies
  book on the leg their order named; the liquidation is each isolated leg's own or the account's
  (cross, both legs), :mod:`workers.paper_perp_hedge`.
"""

from __future__ import annotations

import json
import logging
from fractions import Fraction
from typing import Any

from trading.contracts import to_decimal
from trading.events import OrderFilled
from trading.instruments import Side
from trading.perp_ledger import close_at_bankruptcy, crossed_liquidation
from trading.perp_liquidation import MarkRange
from trading.perp_liquidation import close_fill as _close_fill
from workers import keys, liquidation_fills, paper_perp_hedge

logger = logging.getLogger(__name__)

# KEYS: lease, state. ARGV: lease value, sequence, state JSON. Writes only for the lease holder
# and only a newer state than the stored one (saves are sent from tasks that may overtake).
SAVE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local seq = tonumber(redis.call('HGET', KEYS[2], 'seq') or '-1')
if seq >= tonumber(ARGV[2]) then return 1 end
redis.call('HSET', KEYS[2], 'seq', ARGV[2], 'state', ARGV[3])
return 1
"""


def state_key(account_id: int, symbol: str, bot_id: int) -> str:
    return keys.paper(account_id, symbol, f"perp:{bot_id}")


def dump(perp, liquidated: dict | None, closes: list | None = None, working=()) -> str:
    """The position of ``perp`` (a PerpRisk) as the stored JSON (fractions as exact ``n/d``), the
    last liquidation and every liquidation close (``[ts, side, price ticks, lots, bankruptcy
    price, pnl, settle]``; the last three are its Fill row's, ``workers.liquidation_fills``); hedge
    mode: also the funding per leg and the legs of the ``working`` orders (client order ids)."""
    pos = perp.position
    extra = {} if perp.hedge is None else paper_perp_hedge.dump(perp, working)
    return json.dumps(
        extra
        | {
            "legs": {name: [leg.lots, str(leg.basis)] for name, leg in pos.legs.items()},
            "realized": str(pos.realized),
            "fees": str(pos.fees),
            "funding": str(pos.funding),
            "last_fill": last_fill(perp.recent_fills),
            "liquidated": liquidated,
            "liquidations": closes,
            "isolated": None if perp.isolated is None else str(perp.isolated.wallet),
        },
        sort_keys=True,
    )


def restore(perp, state: dict) -> None:
    """Put a stored position back on a fresh ``perp`` (before the fills after ``last_fill``)."""
    pos = perp.position
    for name, (lots, basis) in state["legs"].items():
        leg = pos.legs[name]
        leg.lots, leg.basis = int(lots), Fraction(basis)
    pos.realized, pos.fees, pos.funding = (Fraction(state[k]) for k in ("realized", "fees", "funding"))
    if perp.isolated is not None:
        stored = state.get("isolated")
        if stored is not None:
            perp.isolated.set(Fraction(stored))
        elif pos.net_lots:  # stored before the isolated wallet was: the open position's initial margin
            perp.isolated.set(perp.spec.notional(abs(pos.contracts(pos.net_lots)), pos.entry_price()) / perp.leverage)
    if perp.hedge is not None:
        paper_perp_hedge.restore(perp, state)
    last = state.get("last_fill")
    if last:
        perp.recent_fills.extend((int(last[0]) * 1000, trade_id) for trade_id in last[1])
    perp._refresh_liquidation()


async def load(redis, setup) -> dict | None:
    """The stored state of the bot's paper position, or None (a spot bot, a live account, or
    nothing stored yet)."""
    if setup.perp is None or setup.account_kind != "paper":
        return None
    raw = await redis.hget(state_key(setup.account_id, setup.symbol, setup.bot_id), "state")
    return None if raw is None else json.loads(raw)


def last_fill(recent) -> list | None:
    """``[us, [trade ids]]``: the microsecond of the newest fill on the position and the trade
    ids of its fills in that microsecond. Microseconds, because the fills a new owner reads back
    from the database (``Fill.ts``) carry no more."""
    if not recent:
        return None
    us = max(ts for ts, _ in recent) // 1000
    return [us, [trade_id for ts, trade_id in recent if ts // 1000 == us]]


def after(fills: list, marker: list | None) -> list:
    """The recorded fills (setup rows: ts in ns first, trade id last) not in a position stored
    with ``marker`` (:func:`last_fill`): later ones, or in the same microsecond with another id."""
    if not marker:
        return list(fills)
    us, ids = int(marker[0]), set(marker[1])
    return [f for f in fills if f[0] // 1000 > us or (f[0] // 1000 == us and f[-1] not in ids)]


class PaperPerp:
    """The paper venue's perpetual side of one hosted bot (see the module docstring)."""

    def __init__(self, runner, state: dict | None = None) -> None:
        self.runner = runner
        setup = runner.setup
        self.key = state_key(setup.account_id, setup.symbol, setup.bot_id)
        self.liquidated: dict | None = (state or {}).get("liquidated")
        self.closes: list = list((state or {}).get("liquidations") or [])
        self.saved = None if state is None else dump(runner.engine.perp, self.liquidated, self.closes, self._working())
        self.seq = 0
        self._liq: Fraction | None = None  # the liquidation price the bound below is for
        self._bound = 0
        self._long = True
        self.marks = MarkRange()  # every book's mid since the last check (module docstring)

    def step(self, ts: int) -> None:
        """The snapshot step: liquidate if the mark has crossed, then store what changed."""
        self.check(ts)
        self.save()

    def check(self, ts: int) -> None:
        """Liquidate as soon as a mark since the last check has crossed. The test is on integers
        (twice the worst mark in ticks against the liquidation price's bound, recomputed only
        when the liquidation price changes): a few comparisons per check."""
        perp = self.runner.engine.perp
        liq = perp.liquidation
        if liq is None:
            self.marks.take()  # what the market did while flat liquidates nothing
            return
        if perp.hedge is not None:
            paper_perp_hedge.check(self, ts)
            return
        if liq is not self._liq:
            self._liq = liq
            liq2 = 2 * liq / perp.tick
            long = perp.position.net_lots > 0
            # long: mark2 <= liq2 <=> mark2 <= floor(liq2); short: mark2 >= ceil(liq2)
            self._bound = (liq2.numerator // liq2.denominator) if long else -(-liq2.numerator // liq2.denominator)
            self._long = long
        if perp.venue_mark2 is not None:  # a venue's mark (a Fraction): the exact test
            self.marks.take()
            mark = perp.venue_mark2 * perp.tick / 2
            if crossed_liquidation(perp.position.net_lots, mark, liq):
                self.liquidate(ts, mark)
            return
        low, high = self.marks.take(perp.mark2)
        m2 = low if self._long else high
        if m2 is not None and ((m2 <= self._bound) if self._long else (m2 >= self._bound)):
            self.liquidate(ts, Fraction(m2) * perp.tick / 2)

    def _working(self):
        return self.runner.engine.orders.orders.keys()

    def save(self) -> None:
        blob = dump(self.runner.engine.perp, self.liquidated, self.closes, self._working())
        if blob == self.saved:
            return
        self.saved = blob
        self.seq += 1
        runner = self.runner
        lease = runner.lease
        # seq: this owner's fencing token first, so a newer owner's saves always win.
        seq = lease.token * 1_000_000_000 + self.seq
        runner.host.loop.create_task(self._write(lease.key, lease.value, seq, blob))

    async def _write(self, lease_key: str, lease_value: str, seq: int, blob: str) -> None:
        try:
            ok = await self.runner.host.redis.eval(SAVE, 2, lease_key, self.key, lease_value, seq, blob)
            if not ok:
                logger.warning("bot %s: paper perp state not stored: the lease is no longer ours", self.runner.bot_id)
        except Exception as exc:  # Redis away: the loop stops on its own next write; the next save retries
            self.saved = None
            logger.warning("bot %s: paper perp state not stored: %s", self.runner.bot_id, exc)

    def liquidate(self, ts: int, mark: Fraction) -> None:
        runner = self.runner
        perp = runner.engine.perp
        setup = runner.setup
        liq = perp.liquidation
        lots = perp.position.net_lots
        entry = perp.position.entry_price()
        price, pnl, contracts = close_at_bankruptcy(perp.spec, perp.position, perp.wallet, liq, perp.liquidation_wb())
        if perp.isolated is not None:
            perp.isolated.set(0)  # the position's margin is gone with it
        perp._refresh_liquidation()
        settle, places = perp.spec.settle, perp.places
        reason = (
            f"liquidated: mark {_num(mark)} reached the liquidation price {_num(liq)}; "
            f"{perp._contracts(abs(lots))} {'long' if lots > 0 else 'short'} from {_num(entry)} closed at the "
            f"bankruptcy price {_num(price)}, {to_decimal(pnl, places):f} {settle}"
        )
        self.liquidated = {
            "ts": ts,
            "mark": f"{to_decimal(mark, 8):f}",
            "liquidation_price": f"{to_decimal(liq, 8):f}",
            "bankruptcy_price": f"{to_decimal(price, 8):f}",
            "entry": f"{to_decimal(entry, 8):f}",
            "contracts": f"{to_decimal(contracts, 8):f}",
            "pnl": f"{to_decimal(pnl, 18):f}",
            "settle": settle,
        }
        # The engine's own (spot-style) position, which the strategy's inventory reads, closes too.
        side = Side.SELL if lots > 0 else Side.BUY
        ticks = runner.setup.instrument.ticks(to_decimal(price, 18), side=side)
        close = [ts, side.name.lower(), ticks, abs(lots), self.liquidated["bankruptcy_price"],
                 self.liquidated["pnl"], settle]  # fmt: skip
        self.closes.append(close)
        runner.engine.portfolio.on_fill(close_fill(close))
        self.save()
        liquidation_fills.record(runner, close)  # the close's Fill row: trade log and PnL
        runner.liquidated_reason = reason
        # Quoting stops now: the pause's cancels go with this cycle's commands (the control
        # below records the state and sends them when no cycle is under way).
        runner.runner.command(runner.engine.pause(ts, reason))
        runner.host.db.submit(liquidation_record, setup.bot_id, ts, reason, self.liquidated)
        runner.push_control("liquidated")


def close_fill(close: list) -> OrderFilled:
    """A stored liquidation close as a fill of the engine's portfolio (the venue's close, no
    order; the price rounded to the tick, as the portfolio keeps integer ticks)."""
    ts, side, price, lots = close[:4]
    return _close_fill(ts, lots if side == "sell" else -lots, price, f"liquidation-{ts}")


def replay_closes(engine, state: dict | None) -> None:
    """Take-over: the liquidation closes (which no recorded fill holds) onto the rebuilt portfolio."""
    for close in (state or {}).get("liquidations") or []:
        engine.portfolio.on_fill(close_fill(close))


def _num(value: Fraction) -> str:
    return f"{to_decimal(value, 8).normalize():f}"


def liquidation_record(
    bot_id: int, ts: int, reason: str, data: dict[str, Any], resume: str = "Quoting is paused until you resume the bot."
) -> None:
    """Database thread: the liquidation's incident, its ``risk_breach`` notification (``resume``:
    what the trader does next) and bot event."""
    from apps.bots.models import Bot
    from apps.bots.services import bot_events_record
    from apps.core.models import Incident
    from apps.notifications.services import notify

    bot = Bot.objects.select_related("owner").get(pk=bot_id)
    bot_events_record([(bot_id, ts, "perp", "liquidated", reason, data)])  # notified below, not by the scan
    Incident.objects.create(
        owner=bot.owner, bot=bot, account_id=bot.exchange_account_id, kind="liquidation",
        message=f"{bot.name}: {reason}", data=data,
    )  # fmt: skip
    notify(
        user=bot.owner,
        kind="risk_breach",
        key=f"liquidation:{bot_id}:{ts}",
        subject=f"{bot.name} liquidated",
        body=f"{bot.name}: {reason}. {resume}",
        data=data,
        bot=bot,
    )
