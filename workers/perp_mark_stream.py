"""The mark price, funding rate and next funding time as the exchange streams them, for a live
perpetual bot (:mod:`workers.perp_live`).

Where the bot's ccxt exchange streams the mark price (``has["watchMarkPrice"]``, a ``ccxt.pro``
class: Binance USD-M's ``<symbol>@markPrice@1s`` stream, whose ``markPriceUpdate`` events carry
the mark ``p``, the index ``i``, the funding rate ``r`` and the next funding time ``T``), a
:class:`MarkStream` task next to the REST poll takes each update as it arrives and feeds the
places the poll feeds: the mark of perpetual risk (``set_mark``: unrealized PnL, margin and the
liquidation distance), the funding rate and next funding time (``set_funding``: the strategy
context's ``funding_rate`` / ``next_funding_ts``) and the bot page's perp card (its funding
source reads ``exchange (markPrice stream)``).

Trusted and not: the stream is trusted from its first good update until it goes quiet for
``settings.PERP_MARK_STALE_MS`` (Binance sends one a second) or fails. While trusted, the poll
leaves the mark and funding alone (it still reads positions and the funding payments); while
not, the poll's ``fetchFundingRate`` and ``fetchPositions`` give them, as they do on an exchange
that does not stream the mark (an update without a funding rate leaves the rate and time to
the poll). Each change between the two is a ``perp`` event in the bot's
event log (``mark_stream_live``, ``mark_stream_stale``, ``mark_stream_down``), and on a fall
back the poll reads at once rather than at its next period. A quiet stream's connection is
reset (its pending watch rejected, the socket closed) so ccxt subscribes again on a new one.
A failed stream is retried with a backoff (0.5 s doubling to 30 s).

Each update is checked before use; one that fails is dropped and counted by reason in
:attr:`MarkStream.dropped` (``bad_mark``: not a decimal above 0 within the market's price range;
``bad_funding_rate``: not a decimal within -1 and 1; ``bad_funding_time``: not a whole number of
ms; ``wrong_symbol``; ``unusable``: anything else that fails). The figures in use stay and the
loop goes on. ccxt's unified fields are read (``markPrice``, ``indexPrice``, ``fundingRate``,
``fundingTimestamp``; :func:`parse_update`), so another exchange's stream works; Binance's own
fields (``info``: ``p``, ``i``, ``r``, ``T``) fill what ccxt leaves out (its mark price ticker has
no funding) and, where they give ccxt's float exactly, stand for it, so the figures are exact.
Where the exchange has no mark price stream but streams funding rates (``watchFundingRate``),
that stream is watched instead.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, NamedTuple

import ccxt

logger = logging.getLogger(__name__)

STREAM_SOURCE = "exchange (markPrice stream)"
RETRY_MIN_S = 0.5
RETRY_MAX_S = 30.0
MAX_TICKS = 2**63 - 1


def stale_seconds() -> float:
    from django.conf import settings

    return int(getattr(settings, "PERP_MARK_STALE_MS", 10_000)) / 1000


def supported(exchange: Any) -> bool:
    """Whether the exchange object streams the mark price (a ccxt.pro class with
    ``watchMarkPrice`` or ``watchFundingRate``)."""
    return watch_method(exchange) is not None


class BadMark(ValueError):
    """An update that cannot be used; ``reason`` is the counter it goes under."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class MarkUpdate(NamedTuple):
    mark: Decimal
    funding_rate: Decimal | None
    next_funding_ms: int | None
    index: Decimal | None = None


def _decimal(raw: object) -> Decimal | None:
    """A figure as the exchange or ccxt wrote it: a string or int exactly, a float (ccxt's
    unified numbers) through its shortest repr; ``None`` when it is not a finite number."""
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        return None
    text = repr(raw) if isinstance(raw, float) else str(raw).strip()
    try:
        value = Decimal(text)
    except (InvalidOperation, ValueError):
        return None
    return value if value.is_finite() else None


def _pick(ticker: Mapping[str, Any], unified: tuple[str, ...], raw: tuple[str, ...]) -> tuple[str, object]:
    """The first of ccxt's unified fields given, else the first of the exchange's own (``info``):
    ``(where, value)``; ``("", None)`` when neither is. A unified float that the exchange's own
    string gives exactly (ccxt parsed it from that string) is taken as that string: exact."""
    info = ticker.get("info") or {}
    info = info if isinstance(info, Mapping) else {}
    own = next(((f"info.{k}", info[k]) for k in raw if info.get(k) not in (None, "")), ("", None))
    for key in unified:
        value = ticker.get(key)
        if value in (None, ""):
            continue
        if isinstance(value, float) and isinstance(own[1], str):
            try:
                if float(own[1]) == value:
                    return own
            except ValueError:
                pass
        return key, value
    return own


def parse_update(ticker: Mapping[str, Any], symbol: str, tick: Decimal) -> MarkUpdate:
    """The mark, funding rate, next funding time (ms) and index of ``symbol`` from one streamed
    structure: a ccxt ticker (``watchMarkPrice``) or funding rate (``watchFundingRate``). ccxt's
    unified fields first (``markPrice``, ``indexPrice``, ``fundingRate``, ``fundingTimestamp`` /
    ``nextFundingTimestamp``), so any exchange ccxt streams these for works; Binance's own fields
    (``info``: ``p`` / ``mp``, ``i``, ``r``, ``T``) where ccxt left a unified one out (its mark
    price ticker carries no funding). :class:`BadMark` names what is wrong."""
    if ticker.get("symbol") != symbol:
        raise BadMark("wrong_symbol", f"symbol: {ticker.get('symbol')!r} in a mark update of {symbol}")
    where, raw = _pick(ticker, ("markPrice",), ("p", "mp"))
    mark = _decimal(raw)
    if mark is None or mark <= 0 or mark / tick > MAX_TICKS:
        raise BadMark(
            "bad_mark",
            f"mark price{f' ({where})' if where else ''}: {raw!r}; accepted: a decimal above 0 and at most "
            f"{MAX_TICKS} ticks of {tick:f}",
        )
    where, raw = _pick(ticker, ("indexPrice",), ("i",))
    index = _decimal(raw)
    if index is not None and (index <= 0 or index / tick > MAX_TICKS):
        index = None  # shown only; an absurd index does not spoil the mark
    rate = None
    where, raw = _pick(ticker, ("fundingRate",), ("r",))
    if where:
        rate = _decimal(raw)
        if rate is None or not -1 <= rate <= 1:
            raise BadMark("bad_funding_rate", f"funding rate ({where}): {raw!r}; accepted: a decimal from -1 to 1")
    next_ms = None
    where, when = _pick(ticker, ("fundingTimestamp", "nextFundingTimestamp"), ("T",))
    if where and when not in (0, "0"):
        raw = when
        if isinstance(when, str) and when.isdigit():
            when = int(when)
        if isinstance(when, float) and when.is_integer():
            when = int(when)
        if isinstance(when, bool) or not isinstance(when, int) or not 0 < when < 2**53:
            raise BadMark("bad_funding_time", f"next funding time ({where}): {raw!r}; accepted: ms since the epoch")
        next_ms = when
    return MarkUpdate(mark, rate, next_ms, index)


def watch_method(exchange: Any) -> str | None:
    """The ccxt stream that gives the mark: ``watch_mark_price`` where the exchange has it, else
    ``watch_funding_rate`` (a funding rate structure carries the mark on the exchanges that
    stream one); ``None`` when neither."""
    has = getattr(exchange, "has", None) or {}
    for unified, method in (("watchMarkPrice", "watch_mark_price"), ("watchFundingRate", "watch_funding_rate")):
        if has.get(unified) and hasattr(exchange, method):
            return method
    return None


class MarkStream:
    """The mark price side of a :class:`workers.perp_live.LivePerp` (module docstring)."""

    def __init__(self, perp) -> None:
        self.perp = perp
        self.exchange = perp.venue.gateway.exchange
        self.symbol = perp.symbol
        self.tick = Decimal(str(perp.runner.engine.instrument.tick_size))
        self.method = watch_method(self.exchange) or "watch_mark_price"
        self.index: Decimal | None = None  # the index price of the last good update, when streamed
        self.trusted = False  # the stream's figures are in use
        self.funding = False  # its last good update carried the funding rate
        self.updates = 0  # good updates taken
        self.failures = 0  # times the stream failed (dropped, refused)
        self.stale = 0  # times it went quiet past the limit
        self.dropped: Counter[str] = Counter()  # updates not used, by reason
        self.last_error = ""
        self.last_update = 0.0  # loop time of the last good update
        self._task: asyncio.Task | None = None
        self._watchdog: asyncio.Task | None = None

    def start(self) -> MarkStream:
        loop = asyncio.get_running_loop()
        bot = self.perp.runner.bot_id
        self._task = loop.create_task(self._run(), name=f"perp-mark-{bot}")
        self._watchdog = loop.create_task(self._watch_staleness(), name=f"perp-mark-stale-{bot}")
        return self

    async def stop(self) -> None:
        for task in (self._watchdog, self._task):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self._task = self._watchdog = None

    def fresh(self) -> bool:
        """Whether the poll should leave the mark and funding to the stream."""
        return self.trusted and asyncio.get_running_loop().time() - self.last_update < stale_seconds()

    async def _run(self) -> None:
        pause = RETRY_MIN_S
        while True:
            try:
                ticker = await getattr(self.exchange, self.method)(self.symbol)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # dropped, refused or reset: the poll takes over; retried
                self.failures += 1
                text = self.perp.venue.scrub(str(exc) or type(exc).__name__)
                self.last_error = text
                self._distrust("mark_stream_down", f"the mark price stream failed ({text})")
                await asyncio.sleep(pause)
                pause = min(pause * 2, RETRY_MAX_S)
                continue
            pause = RETRY_MIN_S
            try:
                self.apply(ticker)
            except Exception as exc:  # an update nothing above foresaw: dropped, the loop goes on
                self.dropped["unusable"] += 1
                self.last_error = self.perp.venue.scrub(str(exc) or type(exc).__name__)
                logger.warning("bot %s: streamed mark not used: %s", self.perp.runner.bot_id, self.last_error)

    def apply(self, ticker: Mapping[str, Any]) -> bool:
        """Use one update (module docstring); False when it was dropped."""
        try:
            mark, rate, next_ms, index = parse_update(ticker, self.symbol, self.tick)
        except BadMark as exc:
            if not self.dropped[exc.reason] or str(exc) != self.last_error:
                logger.warning("bot %s: streamed mark not used: %s", self.perp.runner.bot_id, exc)
            self.dropped[exc.reason] += 1
            self.last_error = str(exc)
            return False
        risk = self.perp.runner.engine.perp
        risk.set_mark(mark)
        self.index = index
        self.funding = rate is not None
        if self.funding:
            risk.set_funding(rate, None if next_ms is None else next_ms * 1_000_000)
            risk.funding_source = STREAM_SOURCE
        self.updates += 1
        self.last_update = asyncio.get_running_loop().time()
        if not self.trusted:
            self.trusted = True
            self.perp.runner._event(
                "perp",
                "mark_stream_live",
                f"{self.symbol}: the mark price, funding rate and next funding time come from the exchange's "
                f"stream (mark {mark.normalize():f}); the poll reads the positions and funding payments",
                {"mark": f"{mark:f}"},
            )
        return True

    def _distrust(self, code: str, why: str) -> None:
        if not self.trusted:
            return
        from workers.perp_live import FUNDING_SOURCE, poll_seconds

        self.trusted = False
        self.perp.runner.engine.perp.funding_source = FUNDING_SOURCE
        self.perp.timer.soon(0)  # the poll reads now rather than at its next period
        logger.warning("bot %s: %s; the mark and funding are polled", self.perp.runner.bot_id, why)
        self.perp.runner._event(
            "perp",
            code,
            f"{self.symbol}: {why}; the mark price, funding rate and next funding time are read by the poll "
            f"(fetchFundingRate, fetchPositions every {poll_seconds():g} s) until the stream is back",
            {"updates": self.updates, "dropped": dict(self.dropped)},
        )

    async def _watch_staleness(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            limit = stale_seconds()
            await asyncio.sleep(min(limit / 4, 1.0))
            if self.trusted and loop.time() - self.last_update >= limit:
                self.stale += 1
                self._distrust("mark_stream_stale", f"no mark price update for {limit:g} s")
                self._reset_connection()

    def _reset_connection(self) -> None:
        """Reject the quiet subscription's pending watch and close its socket; the next watch
        opens a new connection and subscribes again."""
        clients = getattr(self.exchange, "clients", None) or {}
        for url, client in list(clients.items()):
            hashes = [str(h) for h in (getattr(client, "subscriptions", None) or {})]
            if any(self.symbol in h and ("mark" in h.lower() or "funding" in h.lower()) for h in hashes):
                client.reset(ccxt.NetworkError(f"no mark price update for {stale_seconds():g} s"))
                clients.pop(url, None)
                asyncio.get_running_loop().create_task(client.aiohttp_close())
