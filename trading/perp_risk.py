"""Pre-trade and running risk for a perpetual market, beside :mod:`trading.risk`.

A :class:`PerpRisk` is handed to the engine (``Engine(..., perp=...)``) for a perpetual
instrument. It keeps its own :class:`~trading.positions.PerpPosition` from the engine's fills
(exact, in the settle currency), the mark (the venue's when it streams one, else the book's
mid), the funding rate and the next funding time (a :class:`~trading.perp_ledger.FundingSchedule`
in backtests, :meth:`PerpRisk.set_funding` from the venue live), and:

* **before each new order** (:meth:`PerpRisk.check`, wrapping the spot checks of
  :class:`~trading.risk.RiskManager`):

  - ``max_position_contracts`` / ``max_position_notional``: the position after this order and
    every working order on its side have filled (the worst case), in contracts and in the
    settle currency at the order's price;
  - the maximum leverage of the maintenance-margin bracket that worst-case notional falls in
    (Binance refuses an order that takes the position past its bracket's cap at the leverage set);
  - margin: the order's initial margin must fit the free margin. With every amount valued at
    the order's price and ``IM(lots) = notional(|lots|) / leverage``:
    ``held = IM(position + working on that side)``, ``order IM = IM(position + working + order)
    - held`` and ``free = margin balance - held``, where margin balance = wallet + realized PnL
    + funding - fees + unrealized PnL at the mark (Binance's "available balance" with the
    orders of the other side left out: they cannot fill together with these);
  - ``max_margin_usage`` (:mod:`trading.perp_limits`): ``IM(position + working + order)`` (plus
    the other leg's) at most that fraction of the margin balance; ``max_funding_cost``: once the
    net funding paid reaches it, no order that grows the position;

  an order that reduces the position (``reduce_only``, or opposite the position and no larger
  than it) skips these: it is how a position over its limits gets back within them.
  Hedge mode (:mod:`trading.hedge_legs`): an order that closes a leg skips them; one that opens
  a leg is checked against that leg, and the other leg's initial margin is held too. The base
  (spot-style) reduce-only check sees a reduce-only close against its leg, not the net (equal
  legs net to zero, and their closes must still pass: a flatten closes both).

* **on every event** (:meth:`PerpRisk.evaluate`): the liquidation distance. Quoting pauses
  (``on_liquidation_distance``: ``pause``, ``reduce_only`` or ``flatten`` with reduce-only
  IOC orders) when the mark comes within ``min_liquidation_distance`` (a fraction of the mark)
  or ``min_liquidation_ticks`` of the liquidation price, and resumes only once the mark is back
  outside ``liquidation_resume_distance`` / ``liquidation_resume_ticks`` (hysteresis; default
  1.5 times the pause distance), so a mark wobbling on the line does not toggle quoting.
  The liquidation price is recomputed when the position, the wallet or the funding changes,
  and the per-event test compares the mark against two precomputed thresholds.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from fractions import Fraction
from typing import Any

from trading import hedge_legs
from trading.config import ConfigError
from trading.contracts import ContractSpec, MarginMode, PositionMode, frac, to_decimal
from trading.events import Command, Liquidity, OrderFilled, PlaceOrder
from trading.instruments import FEE_SCALE, Instrument
from trading.isolated_wallet import IsolatedMargin
from trading.margin import BracketTable, initial_margin
from trading.perp_figures import snapshot
from trading.perp_ledger import FundingSchedule
from trading.perp_limits import PerpRiskLimits, funding_cost_refusal, margin_usage_refusal
from trading.positions import PerpPosition
from trading.risk import ALLOWED, Breach, RiskAction, RiskDecision, RiskState, RiskStatus

_ACTIONS = {"pause": RiskAction.PAUSE, "reduce_only": RiskAction.REDUCE_ONLY, "flatten": RiskAction.FLATTEN}
DEFAULT_RESUME_FACTOR = Fraction(3, 2)


class PerpRisk:
    """Perpetual risk of one bot on one market (see the module docstring)."""

    def __init__(
        self,
        limits: PerpRiskLimits,
        instrument: Instrument,
        spec: ContractSpec,
        table: BracketTable,
        *,
        wallet: object,
        leverage: int = 1,
        margin_mode: MarginMode = MarginMode.ISOLATED,
        funding: FundingSchedule | None = None,
        position_mode: PositionMode = PositionMode.ONE_WAY,
    ) -> None:
        if not spec.is_perpetual:
            raise ConfigError({"perp": f"{instrument.symbol} is a spot market; perpetual risk needs a perpetual"})
        self.limits = limits
        self.instrument = instrument
        self.spec = spec
        self.table = table
        self.wallet = frac(wallet, "wallet")
        self.position = PerpPosition(instrument, spec, position_mode, margin_mode, leverage)
        # Hedge mode (trading.hedge_legs): the leg of each order, the funding booked per leg and
        # each leg's (isolated) or the account's (cross) liquidation.
        self.hedge = hedge_legs.HedgeLegs() if position_mode is PositionMode.HEDGE else None
        self.leg_funding: dict[str, Fraction] = {}
        self.leg_liquidations: dict[str, tuple[int, Fraction]] = {}
        self.leverage = self.position.leverage
        # One-way isolated: the position's own margin (trading.isolated_wallet), whose loss is all
        # a liquidation takes; hedge mode keeps a wallet per leg (trading.hedge_legs).
        self.isolated = IsolatedMargin.of(self.position)
        self.tick = frac(instrument.tick_size)
        self.lot = frac(instrument.lot_size)
        self.places = 8 if spec.inverse else 2
        lim = limits
        self.max_lots = None if lim.max_position_contracts is None else int(frac(lim.max_position_contracts) / self.lot)
        self.max_notional = None if lim.max_position_notional is None else frac(lim.max_position_notional)
        self.pause_frac = None if lim.min_liquidation_distance is None else frac(lim.min_liquidation_distance)
        resume = lim.liquidation_resume_distance
        self.resume_frac = (
            frac(resume)
            if resume is not None
            else None
            if self.pause_frac is None
            else self.pause_frac * DEFAULT_RESUME_FACTOR
        )
        self.pause_ticks = lim.min_liquidation_ticks
        self.resume_ticks = (
            lim.liquidation_resume_ticks
            if lim.liquidation_resume_ticks is not None
            else None
            if self.pause_ticks is None
            else int(self.pause_ticks * DEFAULT_RESUME_FACTOR)
        )
        self.action = _ACTIONS[lim.on_liquidation_distance]
        self.watch = self.pause_frac is not None or self.pause_ticks is not None
        # Mark: twice the price in ticks (the engine's mid2), or the venue's mark when streamed.
        self.mark2: Fraction | None = None
        self.venue_mark2: Fraction | None = None
        self.liquidation: Fraction | None = None  # price, quote currency
        self._pause2: Fraction | None = None  # thresholds on mark2
        self._resume2: Fraction | None = None
        # The same thresholds as integers for the book's mid2 (an integer): the per-event test
        # compares ints. Long: mid2 < P <=> mid2 < ceil(P); mid2 > R <=> mid2 > floor(R).
        self._pause2_int = self._resume2_int = 0
        self._long = True
        self.too_close = False
        self.breach: Breach | None = None
        self._merged: tuple[RiskStatus, Breach, RiskStatus] | None = None
        # Funding: a schedule (backtests) or the venue's figures (live).
        self.schedule = funding
        self.funding_rate: Fraction | None = None
        self._rate_float: float | None = None  # the same, as the strategy context's float
        self.next_funding_ts: int | None = None
        # Funding booked by the schedule: (funding ts, rate, mark, amount, position lots), for the
        # caller to record.
        self.funding_log: list[tuple[int, Fraction, Fraction, Fraction, int]] = []
        # The newest fills on the position (ts, venue trade id): a hosted paper venue stores the
        # position with them, so that a new owner applies only the fills after.
        self.recent_fills: deque[tuple[int, str]] = deque(maxlen=64)
        self.venue_liquidation: tuple[int, Fraction] | None = None  # (position lots, price): live
        self._refresh_liquidation()

    @classmethod
    def from_ledger(cls, ledger: Any, limits: PerpRiskLimits | None = None) -> PerpRisk:
        """The risk of the account a :class:`~trading.perp_ledger.PerpLedger` keeps (a backtest):
        the same market, wallet, leverage, margin mode and funding schedule."""
        return cls(
            limits or PerpRiskLimits(),
            ledger.instrument,
            ledger.spec,
            ledger.table,
            wallet=ledger.wallet,
            leverage=ledger.leverage,
            margin_mode=ledger.margin_mode,
            funding=ledger.funding,
            position_mode=ledger.mode,
        )

    # --- inputs ------------------------------------------------------------------------------
    def on_fill(self, fill: OrderFilled) -> None:
        price = frac(self.instrument.price(fill.price))
        inst = self.instrument
        rate = inst.maker_fee_e8 if fill.liquidity is Liquidity.MAKER else inst.taker_fee_e8
        fee = self.spec.notional(self.position.contracts(fill.qty), price) * rate / FEE_SCALE
        if self.hedge is not None:
            leg = self.hedge.leg_of(fill.client_order_id)
            hedge_legs.apply_fill(self.position, fill.side, fill.price, fill.qty, fee, leg, self.leg_funding)
        else:
            if self.isolated is not None:
                self.isolated.on_position_fill(self.position, int(fill.side), fill.qty, price)
            self.position.apply_fill(fill.side, fill.price, fill.qty, fee=fee)
        self.recent_fills.append((fill.ts, fill.trade_id))
        self._refresh_liquidation()

    def set_mark(self, mark: object) -> None:
        """The venue's mark price (quote currency); used instead of the book's mid from now on."""
        self.venue_mark2 = 2 * frac(mark, "mark") / self.tick

    def set_wallet(self, wallet: object) -> None:
        """The wallet the position's margin comes from, as the venue reports it (isolated: the
        position's margin; cross: the cross wallet net of other positions). Realized PnL, funding
        and fees booked here since are added to it."""
        self.wallet = frac(wallet, "wallet")
        self._refresh_liquidation()

    def adopt_legs(self, legs: dict) -> None:
        """Take the venue's position (its legs: size and entry) in place of the booked one;
        realized PnL, fees and funding booked so far stay."""
        self.position.legs = dict(legs)
        self._refresh_liquidation()

    def set_liquidation(self, price: object, lots: int) -> None:
        """The venue's liquidation price of its position of ``lots`` (live): used while our
        position has that size (a fill since makes ours count until the venue says again)."""
        self.venue_liquidation = (lots, frac(price, "liquidation_price"))
        self._refresh_liquidation()

    def set_funding(self, rate: object, next_funding_ts: int | None) -> None:
        """The venue's current funding rate and next funding time (ns since the epoch)."""
        self.funding_rate = frac(rate, "funding_rate")
        self._rate_float = float(self.funding_rate)
        self.next_funding_ts = next_funding_ts

    # --- state -------------------------------------------------------------------------------
    @property
    def mark(self) -> Fraction | None:
        m2 = self.venue_mark2 if self.venue_mark2 is not None else self.mark2
        return None if m2 is None else m2 * self.tick / 2

    def margin_balance(self, mark: Fraction | None = None) -> Fraction:
        pos = self.position
        mark = self.mark if mark is None else mark
        unrealized = pos.unrealized(mark) if mark is not None and pos.is_open else Fraction(0)
        return self.wallet + pos.realized + pos.funding - pos.fees + unrealized

    def own_liquidation(self) -> Fraction | None:
        """The liquidation price from the bot's own figures: Binance's WB is the position's
        isolated wallet (isolated) or the wallet with what was booked since (cross)."""
        if self.isolated is None:
            return self.position.liquidation_price(self.table, self.wallet)
        return self.isolated.liquidation(self.position, self.table)

    def liquidation_wb(self) -> Fraction | None:
        """WB a liquidation closes against: the isolated wallet, or None (cross: the wallet and
        what was booked, ``trading.perp_ledger.close_at_bankruptcy``)."""
        return None if self.isolated is None else self.isolated.wallet

    def _refresh_liquidation(self) -> None:
        lots = self.position.net_lots
        venue = self.venue_liquidation
        long = lots > 0
        if self.hedge is not None:
            self.liquidation, long = self._hedge_liquidation()
        elif venue is not None and venue[0] == lots and lots:
            self.liquidation = venue[1]
        else:
            self.liquidation = self.own_liquidation() if lots else None
        liq = self.liquidation
        if liq is None or not self.watch:
            self._pause2 = self._resume2 = None
            self.too_close = False
            return
        liq2 = 2 * liq / self.tick
        tick2 = 2
        # Long: too close when mark < liq / (1 - d) or mark < liq + n ticks (the larger bound);
        # short: when mark > liq / (1 + d) or mark > liq - n ticks (the smaller bound).
        pause, resume = [], []
        for d, out in ((self.pause_frac, pause), (self.resume_frac, resume)):
            if d is not None:
                out.append(liq2 / (1 - d) if long else liq2 / (1 + d))
        for n, out in ((self.pause_ticks, pause), (self.resume_ticks, resume)):
            if n is not None:
                out.append(liq2 + n * tick2 if long else liq2 - n * tick2)
        pick = max if long else min
        self._pause2, self._resume2 = pick(pause), pick(resume)
        p, r = self._pause2, self._resume2
        self._long = long
        if long:
            self._pause2_int, self._resume2_int = -(-p.numerator // p.denominator), r.numerator // r.denominator
        else:
            self._pause2_int, self._resume2_int = p.numerator // p.denominator, -(-r.numerator // r.denominator)

    def _hedge_liquidation(self) -> tuple[Fraction | None, bool]:
        """Hedge mode: every leg's (isolated) or the account's (cross) liquidation; the one the
        pause watches (the account's, or the larger leg's) and whether a falling mark reaches it."""
        pos = self.position
        found = self.leg_liquidations = hedge_legs.leg_liquidations(pos, self.table, self.wallet, self.leg_funding)
        if not found:
            return None, True
        name = max(found, key=lambda n: abs(pos.legs[n].lots) if n in pos.legs else 0)
        side, price = found[name]
        return price, side > 0

    def _book_funding(self, ts: int) -> None:
        """Backtests: book every funding time passed at the current mark; then look ahead."""
        schedule = self.schedule
        if self.next_funding_ts is not None and ts >= self.next_funding_ts:
            mark = self.mark
            if mark is not None and self.position.is_open:
                for when, rate in schedule.times_between(self.next_funding_ts - 1, ts):
                    if self.hedge is not None:
                        legs = hedge_legs.book_funding(self.position, mark, rate, self.leg_funding)
                        amount = sum(legs.values(), Fraction(0))
                    else:
                        amount = self.position.book_funding(mark, rate)
                        if self.isolated is not None:
                            self.isolated.book_funding(amount)
                    self.funding_log.append((when, rate, mark, amount, self.position.net_lots))
                self._refresh_liquidation()
            self.next_funding_ts = None
        if self.next_funding_ts is None:
            upcoming = schedule.next_after(ts)
            if upcoming is None:
                self.funding_rate = self._rate_float = None
                self.next_funding_ts = 1 << 62  # no more funding in the series
            else:
                self.next_funding_ts, self.funding_rate = upcoming
                self._rate_float = float(self.funding_rate)

    # --- running limit -----------------------------------------------------------------------
    def evaluate(self, ts: int, status: RiskStatus, mid2: int | None, ctx: Any = None) -> RiskStatus:
        """Update the mark and funding at ``ts``; put the funding on ``ctx`` (the strategy
        context) and return ``status`` with the liquidation-distance breach added while it holds."""
        if mid2 is not None:
            self.mark2 = mid2
        if self.schedule is not None:
            self._book_funding(ts)
        if ctx is not None:
            rate = ctx.funding_rate = self._rate_float
            ctx.next_funding_ts = None if rate is None else self.next_funding_ts
        breach = self._liquidation_breach()
        if breach is None:
            return status
        merged = self._merged
        if merged is not None and merged[0] is status and merged[1] is breach:
            return merged[2]
        out = RiskStatus(max(status.action, breach.action), status.spread_multiplier, (*status.breaches, breach))
        self._merged = (status, breach, out)
        return out

    def _liquidation_breach(self) -> Breach | None:
        if self._pause2 is None:
            self.too_close, self.breach = False, None
            return None
        if self.venue_mark2 is not None:  # a Fraction: exact thresholds
            m2, pause2, resume2 = self.venue_mark2, self._pause2, self._resume2
        else:
            m2, pause2, resume2 = self.mark2, self._pause2_int, self._resume2_int
            if m2 is None:
                return None
        long = self._long
        if not self.too_close:
            if (m2 < pause2) if long else (m2 > pause2):
                self.too_close = True
        elif (m2 > resume2) if long else (m2 < resume2):
            self.too_close = False
        if not self.too_close:
            self.breach = None
            return None
        if self.breach is None:
            mark, liq = m2 * self.tick / 2, self.liquidation
            distance = abs(mark - liq) / mark
            self.breach = Breach(
                "liquidation_distance",
                self.action,
                f"mark {self._price(mark)} is {float(distance):.2%} ({self._ticks(abs(mark - liq))} ticks) from the "
                f"liquidation price {self._price(liq)}; limit {self._limit_text()}; resumes beyond "
                f"{self._resume_text()}",
            )
        return self.breach

    def _limit_text(self) -> str:
        parts = []
        if self.pause_frac is not None:
            parts.append(f"{float(self.pause_frac):.2%}")
        if self.pause_ticks is not None:
            parts.append(f"{self.pause_ticks} ticks")
        return " / ".join(parts)

    def _resume_text(self) -> str:
        parts = []
        if self.resume_frac is not None:
            parts.append(f"{float(self.resume_frac):.2%}")
        if self.resume_ticks is not None:
            parts.append(f"{self.resume_ticks} ticks")
        return " / ".join(parts)

    # --- pre-trade ---------------------------------------------------------------------------
    def checker(
        self, base: Callable[[Command, RiskState], RiskDecision]
    ) -> Callable[[Command, RiskState], RiskDecision]:
        """The engine's pre-trade check for this market: these checks, then ``base``'s."""

        def check(command: Command, state: RiskState) -> RiskDecision:
            if type(command) is PlaceOrder and state.action < RiskAction.PAUSE:
                d = self.check(command, state)
                if d is not ALLOWED:
                    return d
            if (
                self.hedge is not None
                and type(command) is PlaceOrder
                and command.reduce_only
                and command.position_side == hedge_legs.closes(command.side)
            ):  # hedge mode: a reduce-only close reduces its leg, whatever the net
                net, state.position = state.position, self.position.legs[command.position_side].lots
                try:
                    return base(command, state)
                finally:
                    state.position = net
            return base(command, state)

        return check

    def check(self, cmd: PlaceOrder, state: RiskState) -> RiskDecision:
        """Position, notional, leverage-bracket and margin checks of one new order."""
        pos = state.position
        s = int(cmd.side)
        qty = cmd.qty
        other = Fraction(0)  # hedge mode: the initial margin of the other leg
        if self.hedge is not None:  # the limits apply to the leg the order opens
            if cmd.reduce_only or cmd.position_side == hedge_legs.closes(cmd.side):
                return ALLOWED
            pos = self.position.legs[hedge_legs.opens(cmd.side)].lots
            other_lots = self.position.legs[hedge_legs.closes(cmd.side)].lots
            price = frac(self.instrument.price(cmd.price))
            other = initial_margin(self.spec.notional(self.position.contracts(abs(other_lots)), price), self.leverage)
        elif cmd.reduce_only or (pos != 0 and (pos > 0) != (s > 0) and qty <= abs(pos)):
            return ALLOWED
        refused = funding_cost_refusal(self.limits, self.position.funding, self.spec.settle)
        if refused is not None:
            return refused
        working = state.working_buy if s > 0 else state.working_sell
        before = pos + s * working
        worst = before + s * qty
        verb = "buying" if s > 0 else "selling"
        extra = f" (with {self._contracts(working)} already working on that side)" if working else ""
        if self.max_lots is not None and abs(worst) > self.max_lots:
            return RiskDecision(
                False,
                "max_position_contracts",
                f"max_position_contracts: {verb} {self._contracts(qty)} would take the position to "
                f"{self._contracts(worst)}{extra}, limit {self._contracts(self.max_lots)}",
            )
        price = frac(self.instrument.price(cmd.price))
        notional = self.spec.notional(self.position.contracts(abs(worst)), price)
        if self.max_notional is not None and notional > self.max_notional:
            return RiskDecision(
                False,
                "max_position_notional",
                f"max_position_notional: {verb} {self._contracts(qty)} at {self._price(price)} would take the "
                f"position's notional to {self._money(notional)}{extra}, limit {self._money(self.max_notional)}",
            )
        bracket = self.table.bracket(notional)
        if self.leverage > bracket.max_leverage:
            cap = "no cap" if bracket.cap is None else f"up to {self._money(bracket.cap)}"
            return RiskDecision(
                False,
                "max_leverage",
                f"max_leverage: {verb} {self._contracts(qty)} would take the position's notional to "
                f"{self._money(notional)}{extra}; that bracket ({cap}) allows {bracket.max_leverage}x, "
                f"the position is at {self.leverage}x",
            )
        if self.limits.max_margin_usage is not None:
            held_after = initial_margin(notional, self.leverage) + other
            what = f"{verb} {self._contracts(qty)} at {self._price(price)}{extra}"
            refused = margin_usage_refusal(self.limits, held_after, self.margin_balance(), self.spec.settle, what)
            if refused is not None:
                return refused
        if self.limits.margin_check:
            contracts = self.position.contracts
            held = initial_margin(self.spec.notional(contracts(abs(before)), price), self.leverage)
            needed = initial_margin(notional, self.leverage) - held
            held += other
            balance = self.margin_balance()
            free = balance - held
            if needed > free:
                return RiskDecision(
                    False,
                    "insufficient_margin",
                    f"{verb} {self._contracts(qty)} at {self._price(price)} needs {self._money(needed)} initial "
                    f"margin at {self.leverage}x; free margin is {self._money(max(free, Fraction(0)))} (margin "
                    f"balance {self._money(balance)}, {self._money(held)} held by the position and working "
                    f"{'buys' if s > 0 else 'sells'})",
                )
        return ALLOWED

    def snapshot(self) -> dict[str, Any]:
        """The figures a perp bot's page shows (:func:`trading.perp_figures.snapshot`)."""
        return snapshot(self)

    # --- formatting --------------------------------------------------------------------------
    def _contracts(self, lots: int) -> str:
        return f"{to_decimal(self.position.contracts(lots), 8).normalize():f} contracts"

    def _money(self, value: Fraction) -> str:
        return f"{to_decimal(value, self.places):f} {self.spec.settle}"

    def _price(self, price: Fraction) -> str:
        return f"{to_decimal(price, 8).normalize():f}"

    def _ticks(self, price_diff: Fraction) -> str:
        return f"{float(price_diff / self.tick):.0f}"


__all__ = ["PerpRisk", "PerpRiskLimits"]
