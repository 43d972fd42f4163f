"""The simulated venue's market side: how market data moves our queue positions and fills us.

:class:`MarketMatching` is a part of :class:`trading.fillsim.SimulatedExchange` (a mixin over
its state): depth diffs and snapshots move the queue ahead of our resting orders as the queue
model says, the opposite best crossing our price fills us whole, trades printed at or through
our price fill us, and a top-of-book-only feed is the whole book. With a shared book (one per
feed, kept by its owner) book events only make the venue look at that book again.
"""

from __future__ import annotations

from trading.book import SequenceGap
from trading.events import BookDelta, BookSnapshot, Event, TopOfBook, TradeTick
from trading.instruments import Side

BUY = Side.BUY
SELL = Side.SELL


class MarketMatching:
    """Market events against our resting orders; mixed into ``SimulatedExchange``."""

    def _on_shared_book(self, ts: int) -> None:
        """The shared book changed (its owner applied the event): see :meth:`use_shared_book`."""
        shared = self._shared
        self.book = shared  # type: ignore[assignment]  # what our taker orders took is replenished
        self._has_depth = True
        resting = self._resting
        if not resting.count:
            return
        seen = self._seen
        now: dict[tuple[Side, int], int] = {}
        qty_at = shared.qty_at  # type: ignore[union-attr]
        for side in (BUY, SELL):
            for price in resting.prices(side):
                new_qty = qty_at(side, price)
                prev_qty = seen.get((side, price), new_qty)
                if prev_qty != new_qty:
                    resting.level_changed(side, price, prev_qty, new_qty)
                now[(side, price)] = new_qty
        self._seen = now
        self._fill_crossed(ts)

    def _on_snapshot(self, event: BookSnapshot) -> None:
        if self._shared is not None:
            self._on_shared_book(event.ts)
            return
        book = self.book
        resting = self._resting
        before = [(side, price, book.qty_at(side, price)) for side in (BUY, SELL) for price in resting.prices(side)]
        try:
            book.apply_snapshot(event)
        except ValueError as exc:
            self._bad_event(event, exc)
            return
        self._has_depth = True
        if resting.count:
            for side, price, prev_qty in before:
                resting.level_changed(side, price, prev_qty, book.qty_at(side, price))
            self._fill_crossed(event.ts)

    def _bad_event(self, event: Event, exc: Exception) -> None:
        self.bad_events += 1
        if len(self.bad_event_samples) < 20:
            self.bad_event_samples.append(f"{type(event).__name__} at {event.ts}: {exc}")

    def _on_delta(self, event: BookDelta) -> None:
        if self._shared is not None:
            self._on_shared_book(event.ts)
            return
        book = self.book
        resting = self._resting
        changes: list[tuple[Side, int, int, int]] = []
        if resting.count:
            for side, levels in ((BUY, event.bids), (SELL, event.asks)):
                ours = resting.price_set(side)
                if ours and levels:
                    # We rest at a handful of prices; a delta touches many: look ours up in it.
                    touched = dict(levels)
                    for price in ours:
                        new_qty = touched.get(price)
                        if new_qty is not None:
                            changes.append((side, price, book.qty_at(side, price), new_qty))
        try:
            if not book.apply_delta(event):
                return  # older than the book: already applied (a shared book) or stale
        except SequenceGap:
            # Updates are missing: the book is unknown until the next snapshot, so it cannot
            # fill anything; whoever owns the feed resyncs.
            self.gaps += 1
            return
        except ValueError as exc:  # e.g. a negative size: skip the event, keep the venue running
            self._bad_event(event, exc)
            return
        self._has_depth = True
        if resting.count:
            for side, price, prev_qty, new_qty in changes:
                resting.level_changed(side, price, prev_qty, new_qty)
            self._fill_crossed(event.ts)

    def _on_top(self, event: TopOfBook) -> None:
        if self._shared is not None:
            self.book = self._shared  # its owner applied the ticker
        elif not self._has_depth:
            # Venues that only publish the top of the book: it is the whole book we know.
            book = self.book
            book.clear()
            if event.bid_qty > 0:
                book.set_level(BUY, event.bid_price, event.bid_qty)
            if event.ask_qty > 0:
                book.set_level(SELL, event.ask_price, event.ask_qty)
        resting = self._resting
        if resting.count:
            if event.ask_qty > 0:
                for order in resting.crossed_by(BUY, event.ask_price):
                    self._fill(order, order.leaves, order.price, True, event.ts)
            if event.bid_qty > 0:
                for order in resting.crossed_by(SELL, event.bid_price):
                    self._fill(order, order.leaves, order.price, True, event.ts)

    def _fill_crossed(self, ts: int) -> None:
        """The opposite best moved through our price: we were taken, whole remainder, as maker."""
        resting = self._resting
        best = resting.best
        our_bid = best(BUY)
        if our_bid is not None:
            ask = self.book.best_ask()
            if ask is not None and ask <= our_bid:
                for order in resting.crossed_by(BUY, ask):
                    self._fill(order, order.leaves, order.price, True, ts)
        our_ask = best(SELL)
        if our_ask is not None:
            bid = self.book.best_bid()
            if bid is not None and bid >= our_ask:
                for order in resting.crossed_by(SELL, bid):
                    self._fill(order, order.leaves, order.price, True, ts)

    def _on_trade(self, event: TradeTick) -> None:
        resting = self._resting
        side = SELL if event.aggressor is BUY else BUY  # the resting side the taker hit
        ours = resting.best(side)
        price = event.price
        if ours is None or (price > ours if side is BUY else price < ours):
            return  # the trade did not reach our best price
        # Printed through our price: the whole queue at our price was taken before it.
        for order in resting.crossed_by(side, price, strict=True):
            self._fill(order, order.leaves, order.price, True, event.ts)
        for order, qty in resting.traded_at(side, price, event.qty):
            self._fill(order, qty, order.price, True, event.ts)
