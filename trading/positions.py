"""Perpetual positions: size, average entry, realized / unrealized PnL, funding, margin.

A :class:`PerpPosition` is one market's position of one bot or account, in integer lots (the
instrument's lot is a number of contracts) with prices in integer ticks at the edges and exact
``Fraction`` money inside (see :mod:`trading.contracts`). One-way mode keeps one signed leg;
hedge mode keeps a long and a short leg that never net (a fill names which leg it opens or
reduces: ``position_side``).

Average entry follows the exchanges: linear = size-weighted mean of fill prices; inverse = the
size-weighted *harmonic* mean (``contracts / sum(contracts / price)``), which makes inverse PnL
``contracts x contract_size x (1/entry - 1/exit)`` add up exactly across partial closes.
Reducing fills realize PnL on the reduced size; a fill that crosses zero in one-way mode closes
the leg and opens the rest on the other side at the fill price.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

from trading.contracts import ContractSpec, MarginMode, PositionMode, frac
from trading.instruments import Instrument, InstrumentError, Side
from trading.margin import BracketTable, initial_margin, liquidation_price


@dataclass(slots=True)
class Leg:
    """One signed position leg. ``basis`` is sum(lots x price) (linear) or sum(lots / price)
    (inverse), prices in quote currency, for the lots still open."""

    lots: int = 0
    basis: Fraction = Fraction(0)

    def entry(self, inverse: bool) -> Fraction | None:
        if self.lots == 0:
            return None
        return abs(self.lots) / self.basis if inverse else self.basis / abs(self.lots)


@dataclass
class PerpPosition:
    instrument: Instrument
    spec: ContractSpec
    mode: PositionMode = PositionMode.ONE_WAY
    margin_mode: MarginMode = MarginMode.CROSS
    leverage: int = 1
    legs: dict[str, Leg] = field(default_factory=dict)
    realized: Fraction = Fraction(0)
    funding: Fraction = Fraction(0)
    fees: Fraction = Fraction(0)

    def __post_init__(self) -> None:
        if not self.spec.is_perpetual:
            raise InstrumentError(f"{self.instrument.symbol}: a spot market has balances, not positions")
        if not 1 <= self.leverage <= self.spec.max_leverage:
            raise InstrumentError(
                f"leverage: {self.leverage!r} is out of range for {self.instrument.symbol}; "
                f"accepted: 1 to {self.spec.max_leverage}"
            )
        self._lot = frac(self.instrument.lot_size)  # contracts per lot
        names = ("both",) if self.mode is PositionMode.ONE_WAY else ("long", "short")
        for name in names:
            self.legs.setdefault(name, Leg())

    # --- state ---------------------------------------------------------------------------------
    @property
    def net_lots(self) -> int:
        return sum(leg.lots for leg in self.legs.values())

    @property
    def is_open(self) -> bool:
        """Whether any leg holds contracts (hedge mode: equal legs net to zero and are open)."""
        return any(leg.lots for leg in self.legs.values())

    def contracts(self, lots: int) -> Fraction:
        return lots * self._lot

    def entry_price(self, name: str = "both") -> Fraction | None:
        return self.legs[name].entry(self.spec.inverse)

    def _leg_name(self, side: Side, reduce: bool, position_side: str | None) -> str:
        if self.mode is PositionMode.ONE_WAY:
            if position_side not in (None, "both"):
                raise InstrumentError(f"position_side: {position_side!r}; a one-way position accepts only 'both'")
            return "both"
        if position_side in ("long", "short"):
            return position_side
        # Hedge mode without a named side: a buy opens long / reduces short by ``reduce``.
        if reduce:
            return "short" if side is Side.BUY else "long"
        return "long" if side is Side.BUY else "short"

    # --- fills -----------------------------------------------------------------------------------
    def apply_fill(
        self,
        side: Side,
        price_ticks: int,
        lots: int,
        *,
        fee: object = 0,
        reduce_only: bool = False,
        position_side: str | None = None,
    ) -> Fraction:
        """Book a fill; return the PnL it realized (settle currency, before fees)."""
        if lots <= 0 or price_ticks <= 0:
            raise InstrumentError(f"fill: lots {lots!r} and price {price_ticks!r} ticks must be above 0")
        name = self._leg_name(side, reduce_only, position_side)
        leg = self.legs[name]
        signed = lots * int(side)
        if reduce_only and (leg.lots == 0 or (leg.lots > 0) == (signed > 0) or abs(signed) > abs(leg.lots)):
            raise InstrumentError(
                f"reduce_only: a {side.name.lower()} of {lots} lots would increase the {name} position "
                f"({leg.lots} lots); accepted: at most {abs(leg.lots)} lots against it"
            )
        after = leg.lots + signed
        if (name == "long" and after < 0) or (name == "short" and after > 0):
            raise InstrumentError(
                f"position_side: a {side.name.lower()} of {lots} lots would turn the {name} leg "
                f"({leg.lots} lots) the other way; hedge-mode legs do not cross zero"
            )
        price = frac(self.instrument.price(price_ticks))
        realized = Fraction(0)
        if leg.lots and (leg.lots > 0) != (signed > 0):
            closing = min(abs(signed), abs(leg.lots))
            entry = leg.entry(self.spec.inverse)
            direction = 1 if leg.lots > 0 else -1
            realized = self.spec.pnl(direction * self.contracts(closing), entry, price)
            leg.basis -= leg.basis * closing / abs(leg.lots)
            leg.lots += direction * -closing
            signed += direction * closing
            if leg.lots == 0:
                leg.basis = Fraction(0)
        if signed:
            leg.basis += abs(signed) / price if self.spec.inverse else abs(signed) * price
            leg.lots += signed
        self.realized += realized
        self.fees += frac(fee, "fee")
        return realized

    def book_funding(self, mark: object, rate: object) -> Fraction:
        """Book one funding payment at ``mark`` (quote currency) and ``rate``; return it."""
        paid = sum(
            (self.spec.funding_payment(self.contracts(leg.lots), mark, rate) for leg in self.legs.values()),
            Fraction(0),
        )
        self.funding += paid
        return paid

    # --- valuation -----------------------------------------------------------------------------
    def unrealized(self, mark: object) -> Fraction:
        total = Fraction(0)
        for leg in self.legs.values():
            if leg.lots:
                total += self.spec.pnl(self.contracts(leg.lots), leg.entry(self.spec.inverse), frac(mark, "mark"))
        return total

    def notional(self, mark: object) -> Fraction:
        return sum(
            (self.spec.notional(self.contracts(leg.lots), mark) for leg in self.legs.values() if leg.lots),
            Fraction(0),
        )

    def margin_used(self, mark: object) -> Fraction:
        return initial_margin(self.notional(mark), self.leverage)

    def equity(self, wallet: object, mark: object) -> Fraction:
        """Margin balance: wallet + realized + funding - fees + unrealized at ``mark``."""
        return frac(wallet, "wallet") + self.realized + self.funding - self.fees + self.unrealized(mark)

    def liquidation_price(self, table: BracketTable, wallet_balance: object) -> Fraction | None:
        """Liquidation price with ``wallet_balance`` as Binance's WB (see :mod:`trading.margin`):
        the isolated wallet, or the cross wallet net of other positions. Realized PnL, funding
        and fees since the position opened are part of the wallet and are added here."""
        wb = frac(wallet_balance, "wallet_balance") + self.realized + self.funding - self.fees
        legs = [(self.contracts(leg.lots), leg.entry(self.spec.inverse)) for leg in self.legs.values() if leg.lots]
        return liquidation_price(self.spec, table, wb, legs)
