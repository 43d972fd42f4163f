"""The engine's outgoing side: from the quotes it wants to the commands it sends.

:class:`QuoteActions` is a part of :class:`trading.engine.Engine` (a mixin over the engine's
state): it adjusts the strategy's quotes for running risk (widen, reduce-only, pause), diffs
them against the working orders, adds flatten and rebalancing orders, runs pre-trade risk on
every new order and records what is sent. A diff is skipped while nothing it reads changed.
"""

from __future__ import annotations

from trading import hedge_legs
from trading.events import CancelOrder, Command, PlaceOrder, TimeInForce
from trading.instruments import Side
from trading.oms import OrderState, diff_quotes
from trading.rebalance import Rebalancer
from trading.risk import RiskAction, RiskStatus
from trading.strategy import Quote, QuoteSet

NS = 1_000_000_000
EMPTY = QuoteSet((), (), "pulled")


class QuoteActions:
    """Deciding what to send; mixed into :class:`trading.engine.Engine`, whose state it uses."""

    def _effective_quotes(self, status: RiskStatus, mid2: int | None) -> QuoteSet:
        desired = self.desired
        if desired is None or self.paused or not self.book_ok or mid2 is None:
            return EMPTY
        action = status.action
        if action >= RiskAction.PAUSE:
            return EMPTY
        if action == RiskAction.REDUCE_ONLY:
            return _reduce_only(desired, self.portfolio.position)
        if action == RiskAction.WIDEN:
            return _widen(desired, mid2, status.spread_multiplier)
        return desired

    def _act(
        self, ts: int, status: RiskStatus, bid: int | None, ask: int | None, mid2: int | None, timer: bool
    ) -> list[Command]:
        orders = self.orders
        key = (self.desired, orders.version, status, self.paused, self.book_ok, mid2 is None)
        due = self._next_expiry is not None and ts >= self._next_expiry
        blocked = self._blocked
        if blocked and ts >= min(blocked.values()):
            due = True
            for k in [k for k, until in blocked.items() if until <= ts]:
                del blocked[k]
        if key == self._applied and not due and (not timer or self._settled):
            return []
        quotes = self._effective_quotes(status, mid2)
        if blocked:
            quotes = _without_blocked(quotes, blocked)
        working = [o for o in orders.orders.values() if o.reason == "quote"]
        commands = diff_quotes(
            quotes,
            working,
            ts,
            self.refresh_tolerance,
            self.max_order_age_ns,
            next_client_id=self.ids.next,
            size_tolerance=self.size_tolerance,
            allow_amend=self.allow_amend,
        )
        if self.hanging_orders:
            commands[:0] = self._hanging_cancels(ts, status, quotes is EMPTY)
        if bid is not None and ask is not None and mid2 is not None:
            extra = self._risk_orders(ts, status, bid, ask)
            if extra:
                commands.extend(extra)
        out = self._send(ts, commands, mid2, status.action) if commands else commands
        self._applied = (self.desired, orders.version, status, self.paused, self.book_ok, mid2 is None)
        action = status.action
        self._settled = (
            len(out) == len(commands)
            and (action is RiskAction.NONE or action is RiskAction.PAUSE)
            and self.rebalancer is None
            and not self.hanging_orders
        )
        if self.max_order_age_ns:
            placed = [
                o.placed_ts
                for o in orders.orders.values()
                if (o.reason == "quote" or o.reason == "hanging") and o.status is not OrderState.PENDING_CANCEL
            ]
            self._next_expiry = min(placed) + self.max_order_age_ns if placed else None
        return out

    def _hanging_cancels(self, ts: int, status: RiskStatus, pulled: bool) -> list[Command]:
        """Hanging orders go when quoting stops, risk turns defensive, or they reach max age."""
        out: list[Command] = []
        defensive = pulled or status.action >= RiskAction.REDUCE_ONLY
        age = self.max_order_age_ns
        for o in self.orders.orders.values():
            if o.reason != "hanging" or o.status is OrderState.PENDING_CANCEL:
                continue
            if defensive:
                out.append(CancelOrder(o.client_order_id, "hanging_pulled"))
            elif age and ts - o.placed_ts >= age:
                out.append(CancelOrder(o.client_order_id, "max_age"))
        return out

    def _risk_orders(self, ts: int, status: RiskStatus, bid: int, ask: int) -> list[Command]:
        """Flatten and rebalancing orders, at most one of each in flight."""
        port = self.portfolio
        legs = None if self.perp is None or self.perp.hedge is None else self.perp.position
        open_ = port.position != 0 if legs is None else legs.is_open  # hedge mode: either leg
        flatten = status.action == RiskAction.FLATTEN and open_
        if not flatten and (self.rebalancer is None or self.paused or status.action >= RiskAction.PAUSE):
            return []
        in_flight = {o.reason for o in self.orders.orders.values()}
        if flatten and "flatten" not in in_flight and ts - self._last_flatten_ts >= NS:
            # At most one flatten a second: an IOC that found no liquidity is not retried per event.
            self._last_flatten_ts = ts
            sell_price, buy_price = max(1, bid - self.flatten_cross_ticks), ask + self.flatten_cross_ticks
            if legs is not None:  # hedge position mode: each open leg closed by its own order
                cmds = hedge_legs.flatten_orders(legs, self.ids.next, sell_price, buy_price)
                what = " and ".join(f"the {c.position_side} leg {self.instrument.quantity(c.qty)}" for c in cmds)
            else:
                side = Side.SELL if port.position > 0 else Side.BUY
                qty = abs(port.position)
                price = sell_price if side is Side.SELL else buy_price
                cmds = [PlaceOrder(self.ids.next(), side, price, qty, TimeInForce.IOC, reason="flatten",
                                   reduce_only=True)]  # fmt: skip
                what = f"{self.instrument.quantity(qty)} {self.instrument.base} at {self.instrument.price(price)}"
            self._note(ts, "flatten", "flatten", f"flattening {what} IOC ({', '.join(status.codes)})")
            return cmds
        rb = self.rebalancer
        if rb is None or self.paused or status.action >= RiskAction.PAUSE or "rebalance" in in_flight:
            return []
        plan = rb.plan(ts, port.base_balance, port.cash, bid, ask)
        if plan is None:
            return []
        self._note(ts, "rebalance", "rebalance", plan.message)
        return [Rebalancer.order(plan, self.ids.next())]

    def _send(
        self, ts: int, commands: list[Command], mid2: int | None = None, action: RiskAction = RiskAction.NONE
    ) -> list[Command]:
        """Run pre-trade risk on every new order, record what is sent, return it."""
        rs = self.risk_state
        rs.ts = ts
        rs.position = self.portfolio.position
        rs.mid2 = mid2 if mid2 is not None else self.portfolio.mid2
        rs.action = action
        if self.paused:
            rs.action = max(action, RiskAction.PAUSE)
        orders = self.orders.orders
        cancelling = {c.client_order_id for c in commands if type(c) is CancelOrder}
        open_orders = buy = sell = buy_cost = 0
        balances = self.balance_check
        for o in orders.values():
            if o.status is OrderState.PENDING_CANCEL or o.client_order_id in cancelling:
                continue
            open_orders += 1
            if o.side is Side.BUY:
                buy += o.qty - o.filled
                if balances:
                    buy_cost += self.risk.order_cost(o.price, o.qty - o.filled)
            else:
                sell += o.qty - o.filled
        rs.open_orders, rs.working_buy, rs.working_sell = open_orders, buy, sell
        if balances:
            port = self.portfolio
            rs.cash, rs.base, rs.working_buy_cost = port.cash, port.base_balance, buy_cost
        approved: list[Command] = []
        check = self.risk.check if self.perp is None else self.perp.checker(self.risk.check)
        hedge = None if self.perp is None else self.perp.hedge
        if hedge is not None:  # hedge position mode: each new order names its leg
            working = [o for o in orders.values() if o.status is not OrderState.PENDING_CANCEL]
            working = [o for o in working if o.client_order_id not in cancelling]
        for cmd in commands:
            if type(cmd) is CancelOrder:
                approved.append(cmd)
                continue
            if hedge is not None and type(cmd) is PlaceOrder:
                cmd = hedge.assign(self.perp.position, cmd, working)
            decision = check(cmd, rs)
            if not decision.allowed:
                self._reject(ts, decision.code, decision.message)
                continue
            approved.append(cmd)
            if type(cmd) is PlaceOrder:
                if hedge is not None:
                    working.append(cmd)
                rs.open_orders += 1
                if cmd.side is Side.BUY:
                    rs.working_buy += cmd.qty
                    if balances:
                        rs.working_buy_cost += self.risk.order_cost(cmd.price, cmd.qty)
                else:
                    rs.working_sell += cmd.qty
        if approved:
            self.orders.on_commands_sent(approved, ts)
        return approved

    def _reject(self, ts: int, code: str, message: str) -> None:
        # The same reject repeats on every event while the condition lasts: log it once a second.
        last_code, last_ts = self._last_reject
        if code != last_code or ts - last_ts >= NS:
            self._last_reject = (code, ts)
            self._note(ts, "risk_reject", code, message)


def _without_blocked(quotes: QuoteSet, blocked: dict[tuple[Side, int], int]) -> QuoteSet:
    """Drop quotes at a side and price the venue rejected moments ago."""
    bids = tuple(q for q in quotes.bids if (Side.BUY, q.price) not in blocked)
    asks = tuple(q for q in quotes.asks if (Side.SELL, q.price) not in blocked)
    if len(bids) == len(quotes.bids) and len(asks) == len(quotes.asks):
        return quotes
    return QuoteSet(bids, asks, quotes.reason)


def _reduce_only(desired: QuoteSet, position: int) -> QuoteSet:
    """Keep only quotes on the side that reduces the position, sized to at most the position."""
    if position == 0:
        return QuoteSet((), (), "reduce-only: flat")
    quotes = desired.asks if position > 0 else desired.bids
    left = abs(position)
    kept: list[Quote] = []
    for q in quotes:
        if left <= 0:
            break
        qty = min(q.qty, left)
        kept.append(q if qty == q.qty else Quote(q.side, q.price, qty, q.level))
        left -= qty
    kept_t = tuple(kept)
    return QuoteSet((), kept_t, "reduce-only") if position > 0 else QuoteSet(kept_t, (), "reduce-only")


def _widen(desired: QuoteSet, mid2: int, multiplier: float) -> QuoteSet:
    """Push every quote ``multiplier`` times as far from the mid (bids down, asks up)."""
    bids = tuple(
        Quote(q.side, int((mid2 - (mid2 - 2 * q.price) * multiplier) // 2), q.qty, q.level) for q in desired.bids
    )
    asks = tuple(
        Quote(q.side, -int(-(mid2 + (2 * q.price - mid2) * multiplier) // 2), q.qty, q.level) for q in desired.asks
    )
    return QuoteSet(bids, asks, f"widened x{multiplier:g}: {desired.reason}")
