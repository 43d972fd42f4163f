"""Pre-trade checks and running risk limits.

:class:`RiskLimits` is the user's configuration in trader units (base and quote amounts,
fractions, seconds), parsed and validated by :func:`trading.config.parse_config`.
:class:`RiskManager` compiles it against an :class:`~trading.instruments.Instrument` into
integer lots and cash units for the hot path and

* checks every order before it is sent (:meth:`RiskManager.check`), including, on spot when
  the engine knows the balances, that a bid's cost (notional plus fee) fits the free quote
  balance and an ask the free base balance, and
* evaluates running limits on every event (:meth:`RiskManager.evaluate`): daily loss (resets
  at the UTC day boundary of the event time), trailing drawdown from peak equity, inventory
  deviation from the target ratio, a volatility pause and the kill switch.

Every decision carries a reason ``code`` and a ``message`` a trader can read.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, Decimal
from typing import Any, Literal

from trading.amounts import instrument_errors
from trading.config import ConfigError, parse_config
from trading.events import AmendOrder, Command, PlaceOrder
from trading.instruments import FEE_SCALE, Instrument, Side
from trading.risk_types import (
    _ACTION_BY_NAME,
    ALLOWED,
    NORMAL,
    Breach,
    RiskAction,
    RiskDecision,
    RiskState,
    RiskStatus,
)

DAY_NS = 86_400 * 10**9
HALF_SCALE = FEE_SCALE // 2

BreachAction = Literal["widen", "reduce_only", "pause", "flatten"]


@dataclass(frozen=True)
class RiskLimits:
    """Risk limits of one bot. Amounts in base or quote currency; ``None`` switches a limit off."""

    min_order_size: Decimal = field(default=Decimal(0), metadata={"min": Decimal(0), "unit": "base"})
    max_order_size: Decimal | None = field(
        default=None, metadata={"min": Decimal(0), "exclusive_min": True, "unit": "base"}
    )
    price_band: float | None = field(
        default=0.05,
        metadata={"min": 0.0, "exclusive_min": True, "max": 1.0, "help": "max distance from mid, fraction"},
    )
    max_open_orders: int = field(default=50, metadata={"min": 1, "help": "working orders at once"})
    order_rate_limit: int = field(default=50, metadata={"min": 1, "help": "new orders per window"})
    order_rate_window_s: float = field(default=1.0, metadata={"min": 0.001, "unit": "s"})
    max_position_base: Decimal | None = field(default=None, metadata={"min": Decimal(0), "unit": "base"})
    max_position_quote: Decimal | None = field(default=None, metadata={"min": Decimal(0), "unit": "quote"})
    daily_loss_limit: Decimal | None = field(
        default=None, metadata={"min": Decimal(0), "exclusive_min": True, "unit": "quote"}
    )
    max_drawdown: Decimal | None = field(
        default=None, metadata={"min": Decimal(0), "exclusive_min": True, "unit": "quote"}
    )
    max_drawdown_fraction: float | None = field(
        default=None, metadata={"min": 0.0, "exclusive_min": True, "max": 1.0, "help": "of peak equity"}
    )
    max_inventory_deviation: float | None = field(
        default=None,
        metadata={"min": 0.0, "exclusive_min": True, "max": 1.0, "help": "|base ratio - target|"},
    )
    volatility_pause: float | None = field(
        default=None,
        metadata={"min": 0.0, "exclusive_min": True, "help": "mid range / mid within the window"},
    )
    volatility_window_s: float = field(default=10.0, metadata={"min": 0.001, "unit": "s"})
    kill_switch: bool = False
    widen_multiplier: float = field(default=2.0, metadata={"min": 1.0, "max": 100.0})
    on_daily_loss: BreachAction = "pause"
    on_drawdown: BreachAction = "pause"
    on_inventory_deviation: BreachAction = "reduce_only"
    on_volatility: BreachAction = "pause"

    def validate(self) -> dict[str, str]:
        errors = {}
        if self.max_order_size is not None and self.max_order_size < self.min_order_size:
            errors["max_order_size"] = (
                f"{self.max_order_size} is below min_order_size {self.min_order_size}; "
                "accepted: at least min_order_size"
            )
        if self.on_volatility == "flatten":
            errors["on_volatility"] = "'flatten' is not accepted here; accepted: 'widen', 'reduce_only', 'pause'"
        return errors

    @classmethod
    def from_dict(cls, data: dict[str, Any], instrument: Instrument | None = None) -> RiskLimits:
        """Parse and validate (on ``instrument`` when given: amounts within int64 lots, ticks and
        notional units); raises :class:`trading.config.ConfigError` naming every bad field."""
        limits = parse_config(cls, data)
        errors = {} if instrument is None else instrument_errors(limits, instrument)
        if errors:
            raise ConfigError(errors)
        return limits


def _plain(d: Decimal) -> str:
    """Show a quantity without trailing zeros but with at least one decimal (2.0, 0.0504)."""
    text = format(d.normalize(), "f")
    return text if "." in text else text + ".0"


class RiskManager:
    """Apply :class:`RiskLimits` to one bot on one instrument (integer hot path)."""

    def __init__(self, limits: RiskLimits, instrument: Instrument) -> None:
        errors = instrument_errors(limits, instrument)
        if errors:  # the config loaders check this first (``bot_config_validate``, the bot loop)
            raise ConfigError(errors)
        self.limits = limits
        self.instrument = instrument
        lots = instrument.lots
        # Round up: an order is never allowed below the user's minimum.
        min_lots = (limits.min_order_size / instrument.lot_size).to_integral_value(rounding=ROUND_CEILING)
        self.min_qty = max(1, int(min_lots))
        self.max_qty = None if limits.max_order_size is None else lots(limits.max_order_size, round_down=True)
        self.max_pos = None if limits.max_position_base is None else lots(limits.max_position_base, round_down=True)
        cu = instrument.cash_units
        self.max_pos_value = None if limits.max_position_quote is None else cu(limits.max_position_quote)
        self.daily_loss = None if limits.daily_loss_limit is None else cu(limits.daily_loss_limit)
        self.max_dd = None if limits.max_drawdown is None else cu(limits.max_drawdown)
        # Minimum notional in whole cash units, rounded up: integer compare on the hot path.
        self.min_notional_units = int(
            (instrument.min_notional / instrument.cash_unit).to_integral_value(rounding=ROUND_CEILING)
        )
        self.rate_window_ns = int(limits.order_rate_window_s * 1e9)
        self.vol_window_ns = int(limits.volatility_window_s * 1e9)
        self.kill_switch = limits.kill_switch
        # (side, reason) while the owner's net in this base is over its limit: that side is refused.
        self.net_block: tuple[Side, str] | None = None
        # Derivatives (``BTC/USDT:USDT``) trade on margin: the spot balance check does not apply.
        self.derivative = ":" in instrument.symbol
        self._sent: deque[int] = deque()
        # running-limit state
        self.day = -1
        self.day_start_equity = 0
        self.peak: int | None = None
        self.drawdown_latched = False
        self.daily_loss_latched = False
        self._vol_max: deque[tuple[int, int]] = deque()
        self._vol_min: deque[tuple[int, int]] = deque()
        self._last_mid2 = None
        self.status = NORMAL

    # --- formatting --------------------------------------------------------------------------
    def _base(self, lots: int) -> str:
        return f"{_plain(self.instrument.quantity(lots))} {self.instrument.base}"

    def _quote(self, units: int) -> str:
        return f"{self.instrument.cash(units).quantize(Decimal('0.01'))} {self.instrument.quote}"

    # --- pre-trade ---------------------------------------------------------------------------
    def check(self, command: Command, state: RiskState) -> RiskDecision:
        """Check one command. Cancels always pass; an allowed order uses up rate budget."""
        if isinstance(command, PlaceOrder):
            d = self._check_order(command.side, command.price, command.qty, state, command)
        elif isinstance(command, AmendOrder):
            d = self._check_amend(command, state)
        else:
            return ALLOWED
        if d is ALLOWED:
            self._sent.append(state.ts)
        return d

    def _check_amend(self, command: AmendOrder, state: RiskState) -> RiskDecision:
        if self.kill_switch or state.action >= RiskAction.PAUSE:
            return RiskDecision(False, "paused", "quoting is paused; amends are not sent")
        return self._limits_common(command.price, command.qty, state)

    def _check_order(self, side: Side, price: int, qty: int, state: RiskState, cmd: PlaceOrder) -> RiskDecision:
        if self.kill_switch:
            return RiskDecision(False, "kill_switch", "kill switch is on: no new orders")
        if state.action >= RiskAction.PAUSE and not cmd.reduce_only:
            return RiskDecision(False, "paused", f"quoting is paused ({state.action.name.lower()}); order not sent")
        if self.net_block is not None and side is self.net_block[0]:
            return RiskDecision(False, "portfolio_net_limit", self.net_block[1])
        d = self._limits_common(price, qty, state)
        if d is not ALLOWED:
            return d
        if state.open_orders + 1 > self.limits.max_open_orders:
            return RiskDecision(
                False,
                "max_open_orders",
                f"{state.open_orders} orders already working, limit {self.limits.max_open_orders}",
            )
        sent = self._sent
        cutoff = state.ts - self.rate_window_ns
        while sent and sent[0] <= cutoff:
            sent.popleft()
        if len(sent) >= self.limits.order_rate_limit:
            return RiskDecision(
                False,
                "order_rate",
                f"{len(sent)} orders sent in the last {self.limits.order_rate_window_s:g}s, "
                f"limit {self.limits.order_rate_limit}",
            )
        pos = state.position
        s = int(side)
        reduces = pos != 0 and (pos > 0) != (s > 0) and qty <= abs(pos)
        verb = "buying" if s > 0 else "selling"
        if (state.action == RiskAction.REDUCE_ONLY or cmd.reduce_only) and not reduces:
            return RiskDecision(
                False,
                "reduce_only",
                f"reduce-only: {verb} {self._base(qty)} would not reduce position {self._base(pos)}",
            )
        if state.cash is not None and not self.derivative:
            d = self._check_balance(s, price, qty, state, verb)
            if d is not ALLOWED:
                return d
        if reduces:
            return ALLOWED
        working = state.working_buy if s > 0 else state.working_sell
        worst = pos + s * (qty + working)
        if self.max_pos is not None and abs(worst) > self.max_pos:
            extra = f" (with {self._base(working)} already working on that side)" if working else ""
            return RiskDecision(
                False,
                "max_position_base",
                f"max_position_base: {verb} {self._base(qty)} would take position to "
                f"{self._base(worst)}{extra}, limit {self._base(self.max_pos)}",
            )
        if self.max_pos_value is not None:
            value = abs(worst) * price * FEE_SCALE
            if value > self.max_pos_value:
                return RiskDecision(
                    False,
                    "max_position_quote",
                    f"max_position_quote: {verb} {self._base(qty)} would take position value to "
                    f"{self._quote(value)}, limit {self._quote(self.max_pos_value)}",
                )
        return ALLOWED

    def order_cost(self, price: int, qty: int) -> int:
        """What buying ``qty`` lots at ``price`` ticks takes from the quote balance: the notional
        plus the taker fee (the worst case), in cash units."""
        return price * qty * (FEE_SCALE + max(self.instrument.taker_fee_e8, self.instrument.maker_fee_e8, 0))

    def _check_balance(self, s: int, price: int, qty: int, state: RiskState, verb: str) -> RiskDecision:
        """Spot: a bid must be paid from the free quote balance, an ask from the free base."""
        inst = self.instrument
        if s > 0:
            cost = self.order_cost(price, qty)
            free = state.cash - state.working_buy_cost
            if cost > free:
                held = (
                    f" ({self._quote(state.working_buy_cost)} held by working bids)" if state.working_buy_cost else ""
                )
                return RiskDecision(
                    False,
                    "insufficient_balance",
                    f"{verb} {self._base(qty)} at {inst.price(price)} costs {self._quote(cost)} with fees; "
                    f"free {inst.quote} balance is {self._quote(max(free, 0))}{held}",
                )
        elif state.base is not None:
            free_base = state.base - state.working_sell
            if qty > free_base:
                held = f" ({self._base(state.working_sell)} held by working asks)" if state.working_sell else ""
                notional = self._quote(price * qty * FEE_SCALE)
                return RiskDecision(
                    False,
                    "insufficient_balance",
                    f"{verb} {self._base(qty)} at {inst.price(price)} (value {notional}) needs that much "
                    f"{inst.base}; free {inst.base} balance is {self._base(max(free_base, 0))}{held}",
                )
        return ALLOWED

    def _limits_common(self, price: int, qty: int, state: RiskState) -> RiskDecision:
        if qty < self.min_qty:
            return RiskDecision(
                False,
                "min_order_size",
                f"size {self._base(qty)} is below the minimum {self._base(self.min_qty)}",
            )
        if self.max_qty is not None and qty > self.max_qty:
            return RiskDecision(
                False,
                "max_order_size",
                f"size {self._base(qty)} is above the maximum {self._base(self.max_qty)}",
            )
        if price <= 0:
            return RiskDecision(False, "bad_price", f"price {price} ticks is not positive")
        if price * qty * FEE_SCALE < self.min_notional_units:
            notional = self.instrument.cash(Instrument.notional_units(price, qty))
            return RiskDecision(
                False,
                "min_notional",
                f"order value {notional.normalize()} {self.instrument.quote} is below the venue minimum "
                f"{self.instrument.min_notional} {self.instrument.quote}",
            )
        band = self.limits.price_band
        mid2 = state.mid2
        if band is not None and mid2 is not None:
            dist2 = abs(2 * price - mid2)
            if dist2 > band * mid2:
                return RiskDecision(
                    False,
                    "price_band",
                    f"price {self.instrument.price(price)} is {dist2 / mid2:.2%} from mid "
                    f"{self.instrument.price(1) * mid2 / 2}, band {band:.2%}",
                )
        return ALLOWED

    # --- running limits ----------------------------------------------------------------------
    def set_kill_switch(self, on: bool) -> None:
        self.kill_switch = on

    def reset_latches(self, equity: int | None) -> None:
        """Re-arm after an operator resumes: drawdown peak restarts at the current equity."""
        self.drawdown_latched = False
        self.peak = equity

    def evaluate(
        self,
        ts: int,
        equity: int | None,
        inventory_ratio: float | None,
        target_ratio: float | None,
        mid2: int | None,
    ) -> RiskStatus:
        """Evaluate running limits; return the combined status (same object while unchanged)."""
        lim = self.limits
        breaches: list[Breach] = []
        if self.kill_switch:
            breaches.append(Breach("kill_switch", RiskAction.KILL, "kill switch is on: all quotes pulled"))
        if equity is not None:
            day = ts // DAY_NS
            if day != self.day:
                self.day = day
                self.day_start_equity = equity
                self.daily_loss_latched = False
            if self.daily_loss is not None:
                loss = self.day_start_equity - equity
                if loss >= self.daily_loss:
                    self.daily_loss_latched = True
                if self.daily_loss_latched:
                    breaches.append(
                        Breach(
                            "daily_loss",
                            _ACTION_BY_NAME[lim.on_daily_loss],
                            f"daily loss limit {self._quote(self.daily_loss)} reached (lost "
                            f"{self._quote(max(loss, 0))} today, UTC); resets at UTC midnight",
                        )
                    )
            if self.peak is None or equity > self.peak:
                self.peak = equity
            dd = self.peak - equity
            hit = (self.max_dd is not None and dd >= self.max_dd) or (
                lim.max_drawdown_fraction is not None and self.peak > 0 and dd >= lim.max_drawdown_fraction * self.peak
            )
            if hit and not self.drawdown_latched:
                self.drawdown_latched = True
                self._dd_message = (
                    f"trailing drawdown {self._quote(dd)} from peak equity {self._quote(self.peak)} "
                    f"reached the limit; resume to re-arm"
                )
            if self.drawdown_latched:
                breaches.append(Breach("drawdown", _ACTION_BY_NAME[lim.on_drawdown], self._dd_message))
        if lim.max_inventory_deviation is not None and target_ratio is not None and inventory_ratio is not None:
            dev = inventory_ratio - target_ratio
            if abs(dev) > lim.max_inventory_deviation:
                breaches.append(
                    Breach(
                        "inventory_deviation",
                        _ACTION_BY_NAME[lim.on_inventory_deviation],
                        f"base is {inventory_ratio:.1%} of value, target {target_ratio:.1%}, "
                        f"allowed deviation {lim.max_inventory_deviation:.1%}",
                    )
                )
        if lim.volatility_pause is not None and mid2 is not None:
            move = self._volatility(ts, mid2)
            if move > lim.volatility_pause:
                breaches.append(
                    Breach(
                        "volatility",
                        _ACTION_BY_NAME[lim.on_volatility],
                        f"mid moved {move:.2%} within {lim.volatility_window_s:g}s, "
                        f"threshold {lim.volatility_pause:.2%}",
                    )
                )
        if not breaches:
            self.status = NORMAL
            return NORMAL
        prev = self.status
        if len(prev.breaches) == len(breaches) and all(
            a.code == b.code and a.action == b.action for a, b in zip(prev.breaches, breaches, strict=True)
        ):
            return prev
        action = max(b.action for b in breaches)
        mult = lim.widen_multiplier if any(b.action == RiskAction.WIDEN for b in breaches) else 1.0
        self.status = RiskStatus(action, mult, tuple(breaches))
        return self.status

    def _volatility(self, ts: int, mid2: int) -> float:
        """Range of the mid over the window as a fraction of the window low."""
        hi, lo = self._vol_max, self._vol_min
        if mid2 != self._last_mid2:
            self._last_mid2 = mid2
            while hi and hi[-1][1] <= mid2:
                hi.pop()
            hi.append((ts, mid2))
            while lo and lo[-1][1] >= mid2:
                lo.pop()
            lo.append((ts, mid2))
        cutoff = ts - self.vol_window_ns
        # Keep the newest sample even when old: it is still the current mid.
        while len(hi) > 1 and hi[0][0] < cutoff:
            hi.popleft()
        while len(lo) > 1 and lo[0][0] < cutoff:
            lo.popleft()
        low = lo[0][1]
        return (hi[0][1] - low) / low if low > 0 else 0.0
