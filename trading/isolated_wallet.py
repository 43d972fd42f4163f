"""The isolated wallet of a one-way perpetual position (Binance's ``isolatedWallet``, WB of
:mod:`trading.margin` in isolated mode), kept from the position's fills and funding the way the
exchange allocates it; :mod:`trading.isolated_margin` has the rules and a worked example.

Paper, backtests and live all keep it (:class:`trading.perp_risk.PerpRisk`,
:class:`trading.perp_ledger.PerpLedger`): an isolated position's liquidation and bankruptcy prices
come from this wallet, never from the account's whole balance (which would make isolated margin
behave as cross)."""

from __future__ import annotations

from fractions import Fraction

from trading.contracts import MarginMode, PositionMode, frac
from trading.margin import BracketTable, liquidation_price


class IsolatedMargin:
    """The isolated wallet of one one-way position (settle currency, exact; module docstring)."""

    def __init__(self, spec, leverage: int) -> None:
        self.spec = spec
        self.leverage = leverage
        self.wallet = Fraction(0)

    @classmethod
    def of(cls, position) -> IsolatedMargin | None:
        """The isolated wallet of a :class:`~trading.positions.PerpPosition`, or None when it has
        none of its own (cross margin; hedge mode keeps a wallet per leg, trading.hedge_legs)."""
        one_way_isolated = position.mode is PositionMode.ONE_WAY and position.margin_mode is MarginMode.ISOLATED
        return cls(position.spec, position.leverage) if one_way_isolated else None

    def on_position_fill(self, position, side: int, lots: int, price: Fraction) -> None:
        """A fill of ``lots`` on ``side`` (+1 buy, -1 sell) at ``price``, before ``position`` books it."""
        self.on_fill(position.contracts(position.net_lots), position.contracts(lots) * side, price)

    def liquidation(self, position, table: BracketTable) -> Fraction | None:
        """The position's liquidation price with this wallet as Binance's WB (None when flat)."""
        legs = [
            (position.contracts(leg.lots), leg.entry(self.spec.inverse)) for leg in position.legs.values() if leg.lots
        ]
        return liquidation_price(self.spec, table, self.wallet, legs) if legs else None

    def on_fill(self, before: Fraction, signed: Fraction, price: Fraction) -> None:
        """A fill of ``signed`` contracts (+ buy, - sell) at ``price`` on a position of ``before``
        contracts (signed)."""
        if before and (before > 0) != (signed > 0):  # reduces (and maybe flips)
            closing = min(abs(signed), abs(before))
            self.wallet -= self.wallet * closing / abs(before)
            opened = abs(signed) - closing
        else:
            opened = abs(signed)
        if opened:
            self.wallet += self.spec.notional(opened, price) / self.leverage

    def book_funding(self, amount: object) -> None:
        self.wallet += frac(amount, "funding")

    def set(self, wallet: object) -> None:
        """The exchange's own figure for the position (Binance ``isolatedWallet``)."""
        self.wallet = frac(wallet, "isolated_wallet")


__all__ = ["IsolatedMargin"]
