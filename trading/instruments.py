"""Instruments and exact arithmetic.

Inside ``trading/`` prices are integer *ticks* and quantities integer *lots*; ``Decimal``
appears only at the boundary (``Instrument.price`` / ``Instrument.ticks`` and friends).

Money inside the core is an integer count of *cash units*: one cash unit is
``tick_size * lot_size / FEE_SCALE`` of the quote currency. The notional of ``q`` lots at
``p`` ticks is therefore ``p * q * FEE_SCALE`` cash units, and a fee at a rate of ``r``
(expressed in 1e-8, i.e. ``fee_e8``) is ``p * q * r`` cash units — exact, with no rounding,
for any rate with at most eight decimals (every exchange fee schedule we know of).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation
from functools import lru_cache

FEE_SCALE = 10**8
_COUNT_MAX = 2**63 - 1  # ticks and lots are int64 everywhere (engine, Redis scripts, bigint columns)


class Side(enum.IntEnum):
    """Order or aggressor side. The integer value is the sign of the position change."""

    BUY = 1
    SELL = -1

    @property
    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY


class InstrumentError(ValueError):
    """A value that cannot be represented on an instrument (names field, value, what is accepted)."""


class OutOfRange(InstrumentError):
    """A price or size beyond 2**63 - 1 ticks or lots."""


def _to_decimal(field: str, value: object) -> Decimal:
    if isinstance(value, float):
        # Floats are accepted only through their shortest repr, never their binary expansion.
        value = repr(value)
    try:
        result = Decimal(str(value))
    except (InvalidOperation, ValueError) as exc:
        raise InstrumentError(f"{field}: {value!r} is not a number; give a decimal such as '0.01'") from exc
    if not result.is_finite():
        raise InstrumentError(f"{field}: {value!r} is not finite; give a decimal such as '0.01'")
    return result


def fee_rate_e8(field: str, rate: object) -> int:
    """Convert a fee rate (e.g. ``Decimal('0.001')``, negative for a rebate) to integer 1e-8 units."""
    d = _to_decimal(field, rate)
    scaled = d * FEE_SCALE
    if scaled != scaled.to_integral_value():
        raise InstrumentError(f"{field}: {rate!r} has more than 8 decimals; fee rates are kept to 1e-8")
    if not Decimal("-0.01") <= d <= Decimal("0.05"):
        raise InstrumentError(f"{field}: {rate!r} is outside the accepted range -0.01 to 0.05")
    return int(scaled)


@dataclass(frozen=True, slots=True)
class Instrument:
    """A tradable market: symbol with tick, lot, minimum notional and fees.

    Build with :meth:`create` from decimals; the integer fields are what the core uses.
    """

    symbol: str
    base: str
    quote: str
    tick_size: Decimal
    lot_size: Decimal
    min_notional: Decimal = Decimal(0)
    maker_fee_e8: int = 0
    taker_fee_e8: int = 0
    venue: str = ""

    @classmethod
    def create(
        cls,
        *,
        symbol: str,
        tick_size: object,
        lot_size: object,
        min_notional: object = 0,
        maker_fee: object = 0,
        taker_fee: object = 0,
        base: str | None = None,
        quote: str | None = None,
        venue: str = "",
    ) -> Instrument:
        """Validate decimals and build an instrument; errors name the field and the value."""
        if not symbol or not isinstance(symbol, str):
            raise InstrumentError(f"symbol: {symbol!r} is empty; give a market symbol such as 'BTC/USDT'")
        tick = _to_decimal("tick_size", tick_size)
        lot = _to_decimal("lot_size", lot_size)
        notional = _to_decimal("min_notional", min_notional)
        if tick <= 0:
            raise InstrumentError(f"tick_size: {tick_size!r} must be greater than 0")
        if lot <= 0:
            raise InstrumentError(f"lot_size: {lot_size!r} must be greater than 0")
        if notional < 0:
            raise InstrumentError(f"min_notional: {min_notional!r} must be 0 or more")
        if base is None or quote is None:
            b, _, q = symbol.partition("/")
            q = q.split(":")[0]
            base = base or b
            quote = quote or q or "QUOTE"
        return cls(
            symbol=symbol,
            base=base,
            quote=quote,
            tick_size=tick.normalize(),
            lot_size=lot.normalize(),
            min_notional=notional,
            maker_fee_e8=fee_rate_e8("maker_fee", maker_fee),
            taker_fee_e8=fee_rate_e8("taker_fee", taker_fee),
            venue=venue,
        )

    def __reduce__(self):
        # Instruments travel with every order update to the database writer process: as plain
        # fields they pickle in ~2/3 of the time of the dataclass default, and the receiving
        # process rebuilds each distinct instrument once (``_instrument_from_fields``).
        return (
            _instrument_from_fields,
            (
                self.symbol,
                self.base,
                self.quote,
                str(self.tick_size),
                str(self.lot_size),
                str(self.min_notional),
                self.maker_fee_e8,
                self.taker_fee_e8,
                self.venue,
            ),
        )

    # --- price <-> ticks -------------------------------------------------------------------
    def ticks(self, price: object, *, side: Side | None = None, field: str = "price") -> int:
        """Convert a price to ticks. Off-grid prices round in the safe direction for ``side``
        (bids down, asks up); with no side, an off-grid price is an error."""
        d = _to_decimal(field, price)
        q = d / self.tick_size
        if abs(q) > _COUNT_MAX:
            raise OutOfRange(
                f"{field}: {price!r} is out of range; accepted: at most {(self.tick_size * _COUNT_MAX).normalize():f}"
                " (prices are 64-bit counts of the tick size)"
            )
        if q == q.to_integral_value():
            return int(q)
        if side is Side.BUY:
            return int(q.to_integral_value(rounding=ROUND_FLOOR))
        if side is Side.SELL:
            return int(q.to_integral_value(rounding=ROUND_CEILING))
        raise InstrumentError(f"{field}: {price!r} is not a multiple of the tick size {self.tick_size}")

    def price(self, ticks: int) -> Decimal:
        """Convert ticks to a price."""
        return ticks * self.tick_size

    # --- quantity <-> lots -----------------------------------------------------------------
    def lots(self, quantity: object, *, field: str = "quantity", round_down: bool = False) -> int:
        """Convert a quantity to lots. Off-lot quantities are an error unless ``round_down``."""
        d = _to_decimal(field, quantity)
        q = d / self.lot_size
        if abs(q) > _COUNT_MAX:
            raise OutOfRange(
                f"{field}: {quantity!r} is out of range; accepted: at most {(self.lot_size * _COUNT_MAX).normalize():f}"
                " (sizes are 64-bit counts of the lot size)"
            )
        if q == q.to_integral_value():
            return int(q)
        if round_down:
            return int(q.to_integral_value(rounding=ROUND_FLOOR))
        raise InstrumentError(f"{field}: {quantity!r} is not a multiple of the lot size {self.lot_size}")

    def quantity(self, lots: int) -> Decimal:
        """Convert lots to a quantity in base currency."""
        return lots * self.lot_size

    # --- money -----------------------------------------------------------------------------
    @property
    def cash_unit(self) -> Decimal:
        """Quote currency per integer cash unit (see the module docstring)."""
        return self.tick_size * self.lot_size / FEE_SCALE

    def cash(self, units: int) -> Decimal:
        """Convert integer cash units to quote currency."""
        return (units * self.tick_size * self.lot_size) / FEE_SCALE

    def cash_units(self, amount: object, *, field: str = "amount") -> int:
        """Convert a quote-currency amount to cash units, rounding toward zero."""
        d = _to_decimal(field, amount)
        return int((d / self.cash_unit).to_integral_value(rounding="ROUND_DOWN"))

    @staticmethod
    def notional_units(price_ticks: int, qty_lots: int) -> int:
        """Notional of ``qty_lots`` at ``price_ticks`` in cash units."""
        return price_ticks * qty_lots * FEE_SCALE

    def fee_units(self, price_ticks: int, qty_lots: int, *, maker: bool) -> int:
        """Fee in cash units (negative = rebate received)."""
        return price_ticks * qty_lots * (self.maker_fee_e8 if maker else self.taker_fee_e8)

    def min_notional_ok(self, price_ticks: int, qty_lots: int) -> bool:
        """Whether an order meets the minimum notional."""
        return price_ticks * qty_lots * self.tick_size * self.lot_size >= self.min_notional


@lru_cache(maxsize=1024)
def _instrument_from_fields(
    symbol: str, base: str, quote: str, tick: str, lot: str, notional: str, maker: int, taker: int, venue: str
) -> Instrument:
    """Unpickle an :class:`Instrument` (one object per distinct instrument: it is immutable)."""
    return Instrument(symbol, base, quote, Decimal(tick), Decimal(lot), Decimal(notional), maker, taker, venue)
