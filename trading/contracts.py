"""Derivative contracts: linear and inverse perpetuals next to spot, with exact arithmetic.

A perpetual is an :class:`~trading.instruments.Instrument` (tick, lot, fees: prices stay integer
ticks and sizes integer lots) plus a :class:`ContractSpec`:

* **linear** (USDT-margined, e.g. Binance ``BTC/USDT:USDT``): a contract is ``contract_size``
  units of the base; PnL, margin and funding are in the quote (= settle) currency.
  ``pnl = contracts x contract_size x (exit - entry)``.
* **inverse** (coin-margined, e.g. ``BTC/USD:BTC``): a contract is worth ``contract_size`` units
  of the quote (USD); PnL, margin and funding are in the base (= settle) coin.
  ``pnl = contracts x contract_size x (1/entry - 1/exit)``.

``1/price`` has no finite decimal expansion, so every value here is a
:class:`fractions.Fraction` — exact — and becomes a ``Decimal`` only at the boundary
(:func:`to_decimal`, rounded half-even to 18 places, the database's ``numeric(38,18)``).
Sizes are signed: positive long, negative short. Prices passed in are ``Fraction`` or
``Decimal`` in quote currency (``Instrument.price(ticks)``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from fractions import Fraction
from functools import lru_cache

from trading.instruments import InstrumentError, _to_decimal

DECIMAL_PLACES = 18


class ContractKind(enum.Enum):
    SPOT = "spot"
    LINEAR = "linear"
    INVERSE = "inverse"


class MarginMode(enum.Enum):
    CROSS = "cross"
    ISOLATED = "isolated"


class PositionMode(enum.Enum):
    """One-way: one net position per market. Hedge: a long and a short position side by side."""

    ONE_WAY = "one_way"
    HEDGE = "hedge"


def frac(value: object, field: str = "value") -> Fraction:
    """An exact Fraction from a Decimal, int, Fraction or decimal string (never a binary float)."""
    if isinstance(value, Fraction):
        return value
    if isinstance(value, int):
        return Fraction(value)
    if type(value) is Decimal and value.is_finite():
        return _decimal_fraction(value)
    return Fraction(_to_decimal(field, value))


@lru_cache(maxsize=4096)
def _decimal_fraction(value: Decimal) -> Fraction:
    # Prices, lot and contract sizes repeat: converting a Decimal costs several microseconds.
    return Fraction(value)


def to_decimal(value: Fraction, places: int = DECIMAL_PLACES) -> Decimal:
    """A Fraction as a Decimal rounded half-even to ``places`` decimals (the boundary)."""
    with localcontext() as ctx:
        ctx.prec = 80
        exact = Decimal(value.numerator) / Decimal(value.denominator)
        return exact.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)


def decimal_text(value: Fraction, places: int = DECIMAL_PLACES) -> str:
    """:func:`to_decimal` as plain text without trailing zeros or an exponent: ``0``, ``100``,
    ``-0.5`` (``str`` of a Decimal gives ``0E-12`` for a quantized zero and ``1E+2`` once
    normalized)."""
    return format(to_decimal(value, places).normalize(), "f")


@dataclass(frozen=True, slots=True)
class ContractSpec:
    """What makes an instrument a derivative: kind, contract size, settle currency, leverage cap."""

    kind: ContractKind
    contract_size: Decimal = Decimal(1)
    settle: str = ""
    max_leverage: int = 125

    @classmethod
    def create(
        cls, *, kind: object, contract_size: object = 1, settle: str = "", max_leverage: object = 125
    ) -> ContractSpec:
        try:
            kind = kind if isinstance(kind, ContractKind) else ContractKind(str(kind))
        except ValueError:
            raise InstrumentError(f"kind: {kind!r} is not a contract kind; accepted: spot, linear, inverse") from None
        size = _to_decimal("contract_size", contract_size)
        if size <= 0 or size > Decimal(10**9):
            raise InstrumentError(f"contract_size: {contract_size!r} is out of range; accepted: above 0 up to 1e9")
        if isinstance(max_leverage, bool) or not isinstance(max_leverage, int | str | Decimal):
            raise InstrumentError(f"max_leverage: {max_leverage!r} is not a whole number from 1 to 1000")
        try:
            lev = int(str(max_leverage).strip())
        except ValueError:
            raise InstrumentError(f"max_leverage: {max_leverage!r} is not a whole number from 1 to 1000") from None
        if not 1 <= lev <= 1000:
            raise InstrumentError(f"max_leverage: {max_leverage!r} is out of range; accepted: 1 to 1000")
        if kind is not ContractKind.SPOT and not settle:
            raise InstrumentError("settle: empty; a perpetual names the currency it settles in, e.g. 'USDT' or 'BTC'")
        return cls(kind=kind, contract_size=size.normalize(), settle=settle, max_leverage=lev)

    @property
    def is_perpetual(self) -> bool:
        return self.kind is not ContractKind.SPOT

    @property
    def inverse(self) -> bool:
        return self.kind is ContractKind.INVERSE

    # --- exact values (Fractions, settle currency) -------------------------------------------
    def notional(self, contracts: object, price: object) -> Fraction:
        """Absolute position value in the settle currency at ``price``."""
        q = abs(frac(contracts, "contracts")) * frac(self.contract_size)
        p = frac(price, "price")
        if self.inverse:
            if p <= 0:
                raise InstrumentError(f"price: {price!r} must be above 0 for an inverse contract")
            return q / p
        return q * p

    def pnl(self, contracts: object, entry: object, exit: object) -> Fraction:
        """PnL of a signed position of ``contracts`` opened at ``entry`` and closed at ``exit``."""
        q = frac(contracts, "contracts") * frac(self.contract_size)
        e, x = frac(entry, "entry"), frac(exit, "exit")
        if self.inverse:
            if e <= 0 or x <= 0:
                raise InstrumentError("entry/exit: prices must be above 0 for an inverse contract")
            return q * (1 / e - 1 / x)
        return q * (x - e)

    def funding_payment(self, contracts: object, mark: object, rate: object) -> Fraction:
        """What the position receives (positive) or pays (negative) at one funding time.

        A positive rate means longs pay shorts: ``-contracts x contract_size x mark x rate``
        (linear) or ``-contracts x contract_size / mark x rate`` (inverse)."""
        q = frac(contracts, "contracts")
        return -(1 if q > 0 else -1 if q < 0 else 0) * self.notional(q, mark) * frac(rate, "funding_rate")


SPOT = ContractSpec(ContractKind.SPOT)
