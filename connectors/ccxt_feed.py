"""Live market data from any ccxt exchange: websockets via ``ccxt.pro``, REST polling fallback.

:class:`CcxtFeed` implements :class:`trading.ports.MarketDataFeed` for one symbol. Two producer
tasks (order book, trades) turn ccxt structures into validated ``trading`` events:

- websockets (``watch_order_book``/``watch_trades``) when ``exchange.has`` says so, otherwise
  REST polling (``fetch_order_book``/``fetch_trades``) every ``poll_interval_s``;
- each book update becomes a depth-limited :class:`BookSnapshot` (exact ticks/lots, the venue's
  update id as ``sequence``); each trade a :class:`TradeTick` (deduplicated by trade id);
- a bad message is rejected and counted by reason (``stats.rejected``) and the feed goes on;
- a sequence gap (ccxt ``InvalidNonce``/``ChecksumError``) counts a gap and resubscribes, which
  makes ccxt fetch a fresh REST snapshot (health ``RESYNCING`` until it arrives);
- a network error marks the feed ``RECONNECTING`` and retries with exponential backoff and
  jitter (``Backoff`` with an injectable ``random.Random``); ccxt.pro reopens the socket and
  resubscribes on the next watch call;
- no message for ``stale_after_s`` reports ``STALE``; authentication errors close the feed and
  are raised from ``events()`` as :class:`connectors.errors.AuthFailure`.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any

import ccxt

from connectors import ccxt_normalize as norm
from connectors.ccxt_venue import guard_ws_messages
from connectors.errors import AuthFailure, Backoff, ErrorKind, classify, describe
from connectors.feed_support import EventQueue, EventValidator, FeedCounters, default_validator
from trading.events import MarketEvent
from trading.instruments import Instrument
from trading.ports import FeedHealth


def wall_clock_ns() -> int:
    return time.time_ns()


class CcxtFeed:
    """Normalized, validated book snapshots and trades for one symbol on one ccxt exchange."""

    def __init__(
        self,
        exchange: Any,
        instrument: Instrument,
        *,
        depth: int = 20,
        watch_limit: int | None = None,
        trades: bool = True,
        streaming: bool | None = None,
        poll_interval_s: float = 1.0,
        stale_after_s: float = 15.0,
        validator: EventValidator | None = None,
        backoff: Backoff | None = None,
        clock_ns: Callable[[], int] = wall_clock_ns,
        monotonic: Callable[[], float] = time.monotonic,
        close_exchange: bool = True,
        resync_after_rejects: int = 1,
    ) -> None:
        self.instrument = instrument
        self.symbol = instrument.symbol
        self.exchange = exchange
        self.depth = depth
        self.watch_limit = watch_limit
        self.with_trades = trades
        has = getattr(exchange, "has", {}) or {}
        if streaming is None:
            streaming = bool(has.get("watchOrderBook")) and hasattr(exchange, "watch_order_book")
        self.streaming = streaming
        self.stream_trades = streaming and bool(has.get("watchTrades"))
        self.poll_interval_s = poll_interval_s
        self.stale_after_s = stale_after_s
        self.validator = validator or default_validator(instrument, max_staleness_ns=int(stale_after_s * 1e9))
        self.backoff = backoff or Backoff()
        self.stats = FeedCounters()
        self._clock_ns = clock_ns
        self._monotonic = monotonic
        self._close_exchange = close_exchange
        self._queue = EventQueue()
        self._tasks: list[asyncio.Task] = []
        self._state = FeedHealth.CONNECTING
        self._last_message = monotonic()
        self._seen_trades: deque[str] = deque(maxlen=5000)
        self._seen_set: set[str] = set()
        self._last_book_sequence = 0
        self._closed = False
        if self.streaming and hasattr(exchange, "client"):
            guard_ws_messages(exchange, self._on_bad_frame)
        self.resync_after_rejects = resync_after_rejects
        self._book_rejects_in_a_row = 0

    # --- port -------------------------------------------------------------------------------
    @property
    def health(self) -> FeedHealth:
        if self._state is FeedHealth.LIVE and self._monotonic() - self._last_message > self.stale_after_s:
            return FeedHealth.STALE
        return self._state

    def stats_dict(self) -> dict:
        """Feed counters plus the validator's (accept/reject counts, latency percentiles)."""
        out = self.stats.as_dict()
        validator_stats = getattr(self.validator, "stats", None)
        if validator_stats is not None and hasattr(validator_stats, "as_dict"):
            out["validator"] = validator_stats.as_dict()
        return out

    async def connect(self) -> None:
        """Start the book (and trade) producers; events arrive on :meth:`events`."""
        if self._tasks:
            return
        self._state = FeedHealth.CONNECTING
        self._tasks.append(asyncio.create_task(self._run("book", self._book_once), name=f"feed-book-{self.symbol}"))
        if self.with_trades:
            self._tasks.append(
                asyncio.create_task(self._run("trades", self._trades_once), name=f"feed-trades-{self.symbol}")
            )

    async def close(self) -> None:
        """Stop producers, close the exchange's connections and end :meth:`events`."""
        if self._closed:
            return
        self._closed = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._state = FeedHealth.CLOSED
        if self._close_exchange:
            try:
                await self.exchange.close()
            except Exception as exc:
                self.stats.last_error = describe(exc)
        self._queue.close()

    def events(self) -> AsyncIterator[MarketEvent]:
        return self._queue.iterate()

    # --- producers --------------------------------------------------------------------------
    async def _run(self, stream: str, once: Callable[[], Any]) -> None:
        failures = 0
        while not self._closed:
            try:
                await once()
                failures = 0
            except asyncio.CancelledError:
                raise
            except (ccxt.InvalidNonce, ccxt.ChecksumError) as exc:
                # ccxt dropped its book on a gap; the next watch resubscribes and re-snapshots.
                self.stats.sequence_gaps += 1
                self.stats.resyncs += 1
                self.stats.last_error = describe(exc)
                self._state = FeedHealth.RESYNCING
                self._reset_sequence()
            except Exception as exc:
                kind = classify(exc)
                self.stats.errors[type(exc).__name__] += 1
                self.stats.last_error = describe(exc)
                if kind is ErrorKind.AUTH:
                    self._state = FeedHealth.CLOSED
                    self._queue.put(AuthFailure(self.exchange.id, describe(exc)))
                    self._closed = True
                    return
                failures += 1
                if isinstance(exc, ccxt.NotSupported) and self._fall_back_to_polling(stream):
                    continue
                if kind is ErrorKind.TEMPORARY:
                    self.stats.reconnects += 1
                    if stream == "book":
                        self._reset_sequence()
                self._state = FeedHealth.RECONNECTING
                await asyncio.sleep(self.backoff.delay(failures))
            if not self.streaming or (stream == "trades" and not self.stream_trades):
                await asyncio.sleep(self.poll_interval_s)

    def _fall_back_to_polling(self, stream: str) -> bool:
        """The exchange refused a websocket stream: poll that stream over REST instead."""
        if stream == "trades" and self.stream_trades:
            self.stream_trades = False
            return True
        if stream == "book" and self.streaming:
            self.streaming = False
            self.stream_trades = False
            return True
        return False

    def _on_bad_frame(self, exc: BaseException, frame: Any) -> None:
        self.stats.received += 1
        self.stats.reject("malformed")
        self.stats.last_error = f"{describe(exc)} in frame {str(frame)[:120]!r}"

    async def _watch(self, call: Any, timeout_s: float | None) -> Any:
        """Await a ccxt watch call; past ``timeout_s`` of silence, reopen the sockets."""
        if timeout_s is None:
            return await call
        task = asyncio.ensure_future(call)
        try:
            done, _ = await asyncio.wait({task}, timeout=timeout_s)
        except asyncio.CancelledError:
            task.cancel()
            raise
        if task in done:
            return task.result()
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
        self.stats.errors["silent_socket"] += 1
        await self._reopen_sockets()
        raise ccxt.RequestTimeout(f"no book update for {timeout_s}s on {self.symbol}; reconnecting")

    async def _reopen_sockets(self) -> None:
        for client in list((getattr(self.exchange, "clients", None) or {}).values()):
            try:
                await client.close()
            except Exception as exc:
                self.stats.last_error = describe(exc)

    def _reset_sequence(self) -> None:
        self._last_book_sequence = 0
        reset = getattr(self.validator, "reset", None)
        if callable(reset):
            reset()

    async def _book_once(self) -> None:
        if self.streaming:
            book = await self._watch(self.exchange.watch_order_book(self.symbol, self.watch_limit), self.stale_after_s)
        else:
            book = await self.exchange.fetch_order_book(self.symbol, self.watch_limit or self.depth)
        self._mark_message()
        if self._emit_book(book):
            self._book_rejects_in_a_row = 0
            return
        self._book_rejects_in_a_row += 1
        if self.streaming and self._book_rejects_in_a_row >= self.resync_after_rejects:
            # A garbage level stays in ccxt's book until overwritten: start over from a snapshot.
            self._book_rejects_in_a_row = 0
            await self._resync()

    async def _resync(self) -> None:
        """Drop ccxt's book and subscription so the next watch fetches a fresh snapshot."""
        self.stats.resyncs += 1
        self._state = FeedHealth.RESYNCING
        self._reset_sequence()
        try:
            if (self.exchange.has or {}).get("unWatchOrderBook"):
                await self.exchange.un_watch_order_book(self.symbol)
                return
        except Exception as exc:
            self.stats.last_error = describe(exc)
        await self._reopen_sockets()

    async def _trades_once(self) -> None:
        if self.stream_trades:
            trades = await self.exchange.watch_trades(self.symbol)
        else:
            trades = await self.exchange.fetch_trades(self.symbol)
        self._mark_message()
        for trade in trades:
            self._emit_trade(trade)

    def _mark_message(self) -> None:
        self._last_message = self._monotonic()
        if self._state is not FeedHealth.CLOSED:
            self._state = FeedHealth.LIVE

    # --- normalization ----------------------------------------------------------------------
    def _emit_book(self, book: dict) -> bool:
        """Normalize and queue one book; False when the book itself was unusable."""
        self.stats.received += 1
        now = self._clock_ns()
        try:
            event = norm.book_snapshot(self.instrument, book, now, depth=self.depth)
        except norm.RejectedMessage as exc:
            self.stats.reject(exc.reason)
            self.stats.last_error = str(exc)
            return False
        if event.sequence and event.sequence <= self._last_book_sequence:
            # ccxt hands back the same book object when nothing newer arrived (e.g. polling).
            self.stats.reject("duplicate_sequence")
            return True
        reason = self._accept(event, now)
        if event.sequence and reason is None:
            self._last_book_sequence = event.sequence
        # Stale or outlier books are the venue's news; a crossed one means our copy is broken.
        return reason != "crossed"

    def _emit_trade(self, trade: dict) -> None:
        self.stats.received += 1
        trade_id = str(trade.get("id") or "")
        if trade_id and trade_id in self._seen_set:
            self.stats.reject("duplicate_trade")
            return
        now = self._clock_ns()
        try:
            event = norm.trade_tick(self.instrument, trade, now)
        except norm.RejectedMessage as exc:
            self.stats.reject(exc.reason)
            self.stats.last_error = str(exc)
            return
        if trade_id:
            if len(self._seen_trades) == self._seen_trades.maxlen:
                self._seen_set.discard(self._seen_trades[0])
            self._seen_trades.append(trade_id)
            self._seen_set.add(trade_id)
        self._accept(event, now)

    def _accept(self, event: MarketEvent, now: int) -> str | None:
        reason = self.validator.check(event, now)
        if reason is not None:
            self.stats.reject(reason)
            return reason
        self.stats.emitted += 1
        self.stats.last_event_ns = now
        observe = getattr(getattr(self.validator, "stats", None), "observe_latency", None)
        if callable(observe):
            observe(venue_ts=getattr(event, "venue_ts", 0), recv_ts=now, processed_ts=self._clock_ns())
        self._queue.put(event)
        return None
