"""The hedged maker bot: two legs, quotes on the maker venue, hedges on the hedge venue.

Events in, commands out, like :class:`trading.engine.Engine`, except that every command is a
``(venue, command)`` pair with venue ``"maker"`` or ``"hedge"``. The books are read, never
written: their owners (the venues' feeds, or the simulated exchanges of a backtest) keep them.

* Quotes: one bid and one ask of ``order_lots`` priced by :func:`trading.hedging.price_side`
  from the hedge book, post-only, never crossing the maker book; a side is quoted only while a
  fill of it (with every resting order of that side) keeps the net exposure within
  ``max_unhedged_base``, and (``max_maker_base``) keeps the maker leg's own position within its
  limit however well it is hedged. Requotes on timers.
* Hedge on fill: a maker fill (partial or full) changes the net exposure (maker + hedge base,
  plus hedges in flight); the hedge for the whole hedge lots of it is sent at once, as an IOC
  taker order or (``hedge_mode="limit"``) an aggressive limit cancelled at ``hedge_timeout``.
* Safety: a hedge that is rejected (e.g. HTTP 429), cancelled short (the IOC found too little),
  unanswered or timed out, a hedge book that is unsynced or has not updated for
  ``stale_after``, and exposure above half a hedge lot for longer than ``max_unhedged`` stop
  maker quoting at once (every quote cancelled) with a note saying why and the exposure left.
  A failed hedge is retried after ``retry_backoff`` up to ``retry_budget`` times; when the
  budget is spent a note says the exposure is left unhedged and the bot stays stopped. Quoting
  resumes by itself only when the exposure is flat again (within half a hedge lot, no hedge in
  flight) and the hedge book is fresh, or on :meth:`resume`.
* Liquidation (:meth:`on_liquidation`): a perpetual leg the venue liquidated loses its position;
  quoting stops and nothing is re-hedged until the trader resumes; a note gives the exposure left.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from trading.book import OrderBook
from trading.events import (
    CancelOrder,
    Command,
    OrderAccepted,
    OrderAmended,
    OrderCancelled,
    OrderEvent,
    OrderFilled,
    OrderRejected,
    PlaceOrder,
    TimeInForce,
)
from trading.hedge_attribution import AttributionLedger, MakerFillRecord
from trading.hedging import FEE_SCALE, HedgeConfig, HedgeLegs, HedgePrice, hedge_limit_price, price_side
from trading.instruments import Side
from trading.order_ids import ClientOrderIds

MAKER = "maker"
HEDGE = "hedge"
VenueCommand = tuple[str, Command]


@dataclass(frozen=True, slots=True)
class HedgeNote:
    """A readable event of the hedged bot (shown in results and the bot log)."""

    ts: int
    code: str  # hedge_failed, hedge_timeout, hedge_retry, hedge_budget_exhausted, quoting_stopped, ...
    message: str
    exposure: str  # net unhedged base when the note was made


@dataclass(slots=True)
class _MakerOrder:
    side: Side
    price: int
    leaves: int
    expected: HedgePrice | None
    cancelling: bool = False


@dataclass(slots=True)
class _HedgeOrder:
    side: Side
    leaves: int
    sent_ts: int
    cancel_ts: int | None = None


class HedgedMaker:
    def __init__(
        self, legs: HedgeLegs, config: HedgeConfig, maker_book: OrderBook, hedge_book: OrderBook, *, prefix: str = "hm"
    ) -> None:
        self.legs = legs
        self.config = config
        self.maker_book = maker_book
        self.hedge_book = hedge_book
        self.maker_ids = ClientOrderIds(prefix + "m")
        self.hedge_ids = ClientOrderIds(prefix + "h")
        self.maker_position = 0  # maker lots, signed
        self.hedge_position = 0  # hedge lots, signed
        self.maker_orders: dict[str, _MakerOrder] = {}
        self.hedge_orders: dict[str, _HedgeOrder] = {}
        self.notes: list[HedgeNote] = []
        self.ledger = AttributionLedger()
        self.halted: str | None = None  # why quoting is stopped
        self.exhausted = False
        self.retries = 0
        self.next_hedge_ts = 0
        self.unhedged_since: int | None = None
        self.hedge_book_ts: int | None = None
        self.hedge_sent: list[tuple[int, str, int]] = []  # (ts, client id, lots): for reports
        self._half_lot = legs.hedge.base_per_lot / 2
        self._hedge_fee = Fraction(legs.hedge.instrument.taker_fee_e8, FEE_SCALE)

    # --------------------------------------------------------------------------------------
    def exposure(self) -> Fraction:
        """Net base position over both legs (positive long)."""
        legs = self.legs
        return legs.base(legs.maker, self.maker_position) + legs.base(legs.hedge, self.hedge_position)

    def _in_flight(self) -> Fraction:
        hedge = self.legs.hedge
        return sum((hedge.base_per_lot * o.side * o.leaves for o in self.hedge_orders.values()), Fraction(0))

    def flat(self) -> bool:
        return abs(self.exposure()) <= self._half_lot and not self.hedge_orders

    def _note(self, ts: int, code: str, message: str) -> None:
        self.notes.append(HedgeNote(ts, code, message, str(float(self.exposure()))))

    # --------------------------------------------------------------------------------------
    def on_market(self, venue: str, ts: int) -> list[VenueCommand]:
        """A market event of ``venue`` was applied to its book."""
        if venue == HEDGE:
            self.hedge_book_ts = ts
            if self.halted == "hedge_book_stale" and self._fresh(ts):
                return self._check(ts)
        return []

    def on_timer(self, ts: int) -> list[VenueCommand]:
        out: list[VenueCommand] = []
        timeout = self.config.hedge_timeout_ns
        for cid, order in list(self.hedge_orders.items()):
            if order.cancel_ts is None and ts - order.sent_ts >= timeout:
                order.cancel_ts = ts
                self._note(
                    ts, "hedge_timeout", f"hedge {cid} unanswered or unfilled after {timeout / 1e6:g} ms; cancelling"
                )
                out.append((HEDGE, CancelOrder(cid, "hedge timeout")))
            elif order.cancel_ts is not None and ts - order.cancel_ts >= timeout:
                # Neither the order nor its cancel was answered: count it failed (noted) and retry.
                del self.hedge_orders[cid]
                out += self._failed(ts, f"hedge {cid} and its cancel unanswered; treated as not filled")
        out += self._hedge(ts)
        out += self._check(ts)
        out += self._requote(ts)
        return out

    def on_liquidation(self, venue: str, ts: int, lots: int, why: str) -> list[VenueCommand]:
        """The venue liquidated ``lots`` (signed, as held) of the ``venue`` leg: the leg's position
        loses them, and the exposure they were hedging is now unhedged. Quoting stops at once (every
        quote cancelled) and nothing is re-hedged on its own (the account that hedged it was just
        liquidated): a note gives the exposure left, and the bot stays stopped until the trader
        resumes it (:meth:`resume`)."""
        if venue == MAKER:
            self.maker_position -= lots
        else:
            self.hedge_position -= lots
        base = self.legs.maker.instrument.base
        self._note(ts, "liquidated", f"{venue} leg liquidated: {why}; exposure {float(self.exposure()):g} {base} "
                                     "left unhedged; quoting stays stopped until the trader resumes")  # fmt: skip
        self.exhausted = True
        out = self._halt(ts, "liquidated", f"{venue} leg liquidated")
        self.halted = "liquidated"  # also over an earlier stop: only the trader resumes now
        return out

    def resume(self, ts: int, reason: str = "resumed by the trader") -> None:
        """Resume quoting now, flat or not (the trader's explicit decision)."""
        self.halted = None
        self.exhausted = False
        self.retries = 0
        self._note(ts, "quoting_resumed", reason)

    # --------------------------------------------------------------------------------------
    def on_order(self, venue: str, event: OrderEvent) -> list[VenueCommand]:
        if venue == MAKER:
            return self._on_maker(event)
        return self._on_hedge(event)

    def _on_maker(self, event: OrderEvent) -> list[VenueCommand]:
        order = self.maker_orders.get(event.client_order_id)
        ts = event.ts
        t = type(event)
        if t is OrderFilled:
            sign = int(event.side)
            self.maker_position += sign * event.qty
            maker = self.legs.maker.instrument
            expected = order.expected if order is not None else None
            self.ledger.on_maker_fill(
                MakerFillRecord(
                    ts=ts,
                    side=sign,
                    price=Fraction(event.price) * Fraction(maker.tick_size),
                    base=self.legs.base(self.legs.maker, event.qty),
                    fee=Fraction(maker.cash(event.fee)),
                    expected_hedge=expected.hedge_vwap(self.legs.hedge.instrument) if expected else None,
                    expected_hedge_fee_rate=self._hedge_fee,
                )
            )
            if order is not None:
                order.leaves = event.leaves_qty
                if order.leaves <= 0:
                    del self.maker_orders[event.client_order_id]
            out = self._hedge(ts)
            return out + self._check(ts) + self._requote(ts)
        if order is None:
            return []
        if t is OrderCancelled or t is OrderRejected:
            del self.maker_orders[event.client_order_id]
        elif t is OrderAmended:
            order.price, order.leaves = event.price, event.qty
        return []

    def _on_hedge(self, event: OrderEvent) -> list[VenueCommand]:
        cid = event.client_order_id
        order = self.hedge_orders.get(cid)
        ts = event.ts
        t = type(event)
        if t is OrderFilled:
            self.hedge_position += int(event.side) * event.qty
            hedge = self.legs.hedge
            self.ledger.on_hedge_fill(
                ts,
                int(event.side),
                Fraction(event.price) * Fraction(hedge.instrument.tick_size),
                hedge.base_per_lot * event.qty,
                Fraction(hedge.instrument.cash(event.fee)),
            )
            if order is not None:
                order.leaves = event.leaves_qty
                if order.leaves <= 0:
                    del self.hedge_orders[cid]
            return self._check(ts) + self._requote(ts)
        if t is OrderAccepted or order is None:
            return []
        if t is OrderRejected and event.code == "already_filled":
            return []  # the cancel lost the race; the fill is on its way
        if t is OrderCancelled or t is OrderRejected:
            left = order.leaves
            del self.hedge_orders[cid]
            if left > 0:
                what = "rejected" if t is OrderRejected else "cancelled"
                code = f" ({event.code})" if t is OrderRejected and event.code else ""
                return self._failed(ts, f"hedge {cid} {what}{code}: {event.reason}; {left} lots not filled")
        return []

    # --------------------------------------------------------------------------------------
    def _failed(self, ts: int, why: str) -> list[VenueCommand]:
        self.retries += 1
        budget = self.config.retry_budget
        self._note(ts, "hedge_failed", why)
        out = self._halt(ts, "hedge_failed", why)
        if self.retries > budget:
            if not self.exhausted:
                self.exhausted = True
                self._note(
                    ts,
                    "hedge_budget_exhausted",
                    f"{budget} hedge retries spent; exposure {float(self.exposure()):g} {self.legs.maker.instrument.base} "
                    "left unhedged; quoting stays stopped until the trader resumes",
                )
        else:
            self.next_hedge_ts = ts + self.config.retry_backoff_ns
            self._note(
                ts, "hedge_retry", f"retry {self.retries} of {budget} after {self.config.retry_backoff_ns / 1e6:g} ms"
            )
        return out

    def _hedge(self, ts: int) -> list[VenueCommand]:
        """Send the hedge for the whole hedge lots of the exposure not yet covered by hedges in flight."""
        if self.exhausted or ts < self.next_hedge_ts:
            return []
        lots = self.legs.hedge_lots(-(self.exposure() + self._in_flight()))
        if not lots:
            return []
        side = Side.BUY if lots > 0 else Side.SELL
        qty = abs(lots)
        price = hedge_limit_price(self.legs, self.config, self.hedge_book, side, qty)
        if price is None:
            return self._failed(ts, "hedge book has no opposite side to hedge against")
        cid = self.hedge_ids.next()
        self.hedge_orders[cid] = _HedgeOrder(side, qty, ts)
        self.hedge_sent.append((ts, cid, lots))
        tif = TimeInForce.IOC if self.config.hedge_mode == "ioc" else TimeInForce.GTC
        return [(HEDGE, PlaceOrder(cid, side, price, qty, tif, "hedge"))]

    def _fresh(self, ts: int) -> bool:
        last = self.hedge_book_ts
        return self.hedge_book.is_synced and last is not None and ts - last <= self.config.stale_after_ns

    def _check(self, ts: int) -> list[VenueCommand]:
        """Safety: stale hedge book, exposure held too long or too large; resume when flat."""
        exposure = abs(self.exposure())
        if exposure > self._half_lot:
            if self.unhedged_since is None:
                self.unhedged_since = ts
        else:
            self.unhedged_since = None
        if not self._fresh(ts):
            if self.halted is None:
                return self._halt(ts, "hedge_book_stale", "hedge venue's book unsynced or not updated")
            return []
        if self.unhedged_since is not None and ts - self.unhedged_since > self.config.max_unhedged_ns:
            if self.halted is None:
                return self._halt(ts, "exposure_time_limit", f"unhedged for {(ts - self.unhedged_since) / 1e6:g} ms")
            return []
        if exposure > self.config.max_unhedged_base and self.halted is None:
            return self._halt(ts, "exposure_limit", f"exposure {float(exposure):g} above the limit")
        if self.halted is not None and not self.exhausted and self.flat():
            self._note(ts, "quoting_resumed", f"flat again after {self.halted}")
            self.halted = None
            self.retries = 0
        return []

    def _halt(self, ts: int, code: str, why: str) -> list[VenueCommand]:
        out = self._cancel_quotes()
        if self.halted is None:
            self.halted = code
            base = self.legs.maker.instrument.base
            self._note(
                ts, "quoting_stopped", f"{why}; maker quotes cancelled; exposure {float(self.exposure()):g} {base}"
            )
        return out

    def _cancel_quotes(self) -> list[VenueCommand]:
        out: list[VenueCommand] = []
        for cid, order in self.maker_orders.items():
            if not order.cancelling:
                order.cancelling = True
                out.append((MAKER, CancelOrder(cid, "hedged maker stopped")))
        return out

    def _requote(self, ts: int) -> list[VenueCommand]:
        if self.halted is not None:
            return self._cancel_quotes()
        out: list[VenueCommand] = []
        legs, config = self.legs, self.config
        exposure = self.exposure()
        bid, ask = self.maker_book.best_bid(), self.maker_book.best_ask()
        if bid is None or ask is None or not self.maker_book.is_synced:
            return self._cancel_quotes()  # no quote on a maker book we cannot trust
        for side in (Side.BUY, Side.SELL):
            live = [(cid, o) for cid, o in self.maker_orders.items() if o.side is side and not o.cancelling]
            resting = sum(o.leaves for o in self.maker_orders.values() if o.side is side)
            target = price_side(legs, config, self.hedge_book, side, config.order_lots)
            price = None
            if target is not None:
                price = min(target.maker_price, ask - 1) if side is Side.BUY else max(target.maker_price, bid + 1)
            keep = None
            for cid, o in live:
                if price is not None and keep is None and abs(o.price - price) <= config.requote_ticks:
                    keep = cid
                else:
                    o.cancelling = True
                    out.append((MAKER, CancelOrder(cid, "requote")))
            if keep is not None or price is None:
                continue
            worst = exposure + side * legs.base(legs.maker, resting + config.order_lots)
            if abs(worst) > config.max_unhedged_base:
                continue
            cap = config.max_maker_base
            after = self.maker_position + side * (resting + config.order_lots)
            if cap is not None and abs(legs.base(legs.maker, after)) > cap and abs(after) > abs(self.maker_position):
                # the maker leg at (or past) its limit: only the side that reduces it is quoted, also
                # when it is already past the limit (a lowered limit, a take-over)
                continue
            cid = self.maker_ids.next()
            self.maker_orders[cid] = _MakerOrder(side, price, config.order_lots, target)
            out.append((MAKER, PlaceOrder(cid, side, price, config.order_lots, TimeInForce.POST_ONLY, "hedged quote")))
        return out
