"""The exchange's position as it streams, for a live perpetual bot (:mod:`workers.perp_live`).

Where the bot's ccxt exchange streams positions (``has["watchPositions"]``, a ``ccxt.pro``
class: Binance USD-M's user-data stream, whose ``ACCOUNT_UPDATE`` events carry the changed
positions ``P`` with ``s``, ``pa``, ``ep``, ``up``, ``mt``, ``iw``, ``ps``), a
:class:`PositionStream` task next to the REST poll takes each update as it arrives:

- the position rows of the bot's market replace those of the last read by position side (the
  stream carries no mark or liquidation price: those stay from the last REST read while the size
  is unchanged), so the reduce-only explanation and the isolated margin use the newest figures
  (hedge mode: each leg's ``iw``, :mod:`workers.perp_live_legs`);
- an update that agrees with the position booked from the bot's fills clears a pending
  difference. A difference still there ``settings.PERP_STREAM_CONFIRM_MS`` after the update
  that showed it (nothing booked, nothing newer from the exchange) is a sighting of it, and the
  poll reads ``fetchPositions`` at once (:meth:`ReadTimer.soon`): that read, showing the same
  difference, is the second sighting, which makes the ``position_mismatch`` incident and
  perpetual risk takes the exchange's position. The stream alone never adopts, and never sooner
  than that delay: the exchange counts a fill before the fill reaches the bot.

The REST poll (every ``settings.PERP_POLL_MS``) goes on whatever the stream does: it is the
resync, and the only source while the stream is down. A dropped or refused stream is retried
with a backoff (0.5 s doubling to 30 s); the first update after that is used again. ccxt itself
opens the stream (its listen key request and websocket); its position snapshot at subscription
is switched off, the poll's reads are the snapshots.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Mapping
from typing import Any

from connectors.ccxt_perp import PositionReport, position_from_ccxt

logger = logging.getLogger(__name__)

RETRY_MIN_S = 0.5
RETRY_MAX_S = 30.0
# Binance's stream names for the positionRisk fields position_from_ccxt reads exactly
_STREAM_FIELDS = {
    "pa": "positionAmt",
    "ps": "positionSide",
    "ep": "entryPrice",
    "up": "unRealizedProfit",
    "iw": "isolatedWallet",
}


def confirm_seconds() -> float:
    from django.conf import settings

    return int(getattr(settings, "PERP_STREAM_CONFIRM_MS", 2000)) / 1000


def supported(exchange: Any) -> bool:
    """Whether the exchange object streams positions (a ccxt.pro class that has watchPositions)."""
    return bool((getattr(exchange, "has", None) or {}).get("watchPositions")) and hasattr(exchange, "watch_positions")


def stream_report(position: Mapping[str, Any]) -> PositionReport:
    """A ccxt position from the stream (``parse_ws_position``) as a :class:`PositionReport`:
    Binance's stream fields (``pa`` the signed size as the exchange wrote it, ``ps``, ``ep``,
    ``up``, ``iw``) are read under their REST names, so the size is exact; a flat one-way
    position, whose ccxt side is ``both``, has none."""
    info = position.get("info") or {}
    if "pa" in info:
        renamed = {rest: info[ws] for ws, rest in _STREAM_FIELDS.items() if ws in info}
        position = {**position, "info": renamed}
    if position.get("side") == "both":  # ccxt's side of a flat one-way position from the stream
        position = {**position, "side": None}
    return position_from_ccxt(position)


class ReadTimer:
    """When the poll reads next: one period after the last read, or sooner when asked."""

    def __init__(self) -> None:
        self._wake = asyncio.Event()
        self._due: float | None = None

    async def wait(self, period: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + period
        while True:
            due = deadline if self._due is None else min(deadline, self._due)
            remaining = due - loop.time()
            if remaining <= 0:
                break
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), remaining)
            except TimeoutError:
                pass
        self._due = None

    def soon(self, delay: float) -> None:
        """Read no later than ``delay`` seconds from now."""
        due = asyncio.get_running_loop().time() + delay
        if self._due is None or due < self._due:
            self._due = due
            self._wake.set()


class PositionStream:
    """The streaming side of a :class:`workers.perp_live.LivePerp` (module docstring)."""

    def __init__(self, perp) -> None:
        self.perp = perp
        self.exchange = perp.venue.gateway.exchange
        self.symbol = perp.symbol
        self.up = False  # an update arrived since the last failure
        self.updates = 0  # updates of the bot's market taken
        self.failures = 0  # times the stream failed (dropped, refused, bad frame)
        self.last_error = ""
        self._task: asyncio.Task | None = None
        self._pending: tuple[tuple[int, int], float] | None = None  # a difference seen, since when
        self._confirm_task: asyncio.Task | None = None

    def start(self) -> PositionStream:
        options = self.exchange.options.setdefault("watchPositions", {})
        options["fetchPositionsSnapshot"] = False
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"perp-ws-{self.perp.runner.bot_id}")
        return self

    async def stop(self) -> None:
        for task in (self._task, self._confirm_task):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self._task = self._confirm_task = None

    async def _run(self) -> None:
        pause = RETRY_MIN_S
        while True:
            try:
                rows = await self.exchange.watch_positions([self.symbol])
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # dropped or refused: the poll carries on; retried
                self.failures += 1
                text = self.perp.venue.scrub(str(exc) or type(exc).__name__)
                if self.up or text != self.last_error:
                    logger.warning(
                        "bot %s: position stream down (%s); positions are polled until it is back",
                        self.perp.runner.bot_id,
                        text,
                    )
                self.up, self.last_error = False, text
                await asyncio.sleep(pause)
                pause = min(pause * 2, RETRY_MAX_S)
                continue
            pause = RETRY_MIN_S
            if not self.up:
                self.up = True
                if self.last_error:
                    logger.info("bot %s: position stream back", self.perp.runner.bot_id)
            try:
                self.apply(rows)
            except Exception as exc:  # a row we cannot read: the poll's next read stands
                text = self.perp.venue.scrub(str(exc))
                if text != self.last_error:
                    logger.warning("bot %s: streamed position not used: %s", self.perp.runner.bot_id, text)
                self.last_error = text

    def apply(self, rows: list[Mapping[str, Any]]) -> None:
        """Take one update's rows of the bot's market (see the module docstring)."""
        reports = [stream_report(r) for r in rows if r.get("symbol") == self.symbol]
        if not reports:
            return
        perp = self.perp
        merged = {r.position_side: r for r in perp.reports}
        for new in reports:
            old = merged.get(new.position_side)
            if old is not None:
                same_size = old.contracts == new.contracts
                new = dataclasses.replace(
                    new,
                    mark_price=old.mark_price,
                    leverage=old.leverage,
                    liquidation_price=old.liquidation_price if same_size else None,
                )
            merged[new.position_side] = new
        perp.reports = list(merged.values())
        self.updates += 1
        risk = perp.runner.engine.perp
        theirs = perp.venue_lots(perp.reports)
        isolated = [r.isolated_wallet for r in perp.reports if r.contracts and r.isolated_wallet]
        if len(isolated) == 1:
            risk.set_isolated_wallet(isolated[0], theirs)
        perp.liq.apply(perp.reports)  # hedge mode: each leg's isolated wallet (and the price kept)
        ours = risk.position.net_lots
        if ours == theirs:
            perp.mismatch = None
            self._pending = None
            return
        if self._pending is None or self._pending[0] != (ours, theirs):
            self._pending = ((ours, theirs), asyncio.get_running_loop().time())
        if self._confirm_task is None:
            self._confirm_task = asyncio.get_running_loop().create_task(self._confirm())

    async def _confirm(self) -> None:
        """A difference the stream showed, still there ``confirm_seconds()`` after it appeared
        (the bot's booked position and the exchange's last figures unchanged), is a sighting of
        it; the read asked for at once is the second."""
        loop = asyncio.get_running_loop()
        try:
            while self._pending is not None:
                seen, since = self._pending
                wait = since + confirm_seconds() - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                    continue
                perp = self.perp
                now = (perp.runner.engine.perp.position.net_lots, perp.venue_lots(perp.reports))
                self._pending = None
                if now == seen:
                    perp.mismatch = seen
                    perp.timer.soon(0)
        finally:
            self._confirm_task = None
