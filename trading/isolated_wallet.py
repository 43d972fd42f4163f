"""The isolated wallet of a one-way perpetual position (Binance's ``isolatedWallet``, WB of
:mod:`trading.margin` in isolated mode), kept from the position's fills and funding the way the
exchange allocates it; :mod:`trading.isolated_margin` has the rules and a worked example.

Paper, backtests and live all keep it (:class:`trading.perp_risk.PerpRisk`,
:class:`trading.perp_ledger.PerpLedger`): an isolated position's liquidation and bankruptcy prices
come from this wallet, never from the account's whole balance (which would make isolated margin
behave as cross)."""

from __future__ import annotations

from fractions import Fraction

from trading.contracts import frac


class IsolatedMargin:
    """The isolated wallet of one one-way position (settle currency, exact; module docstring)."""

    def __init__(self, spec, leverage: int) -> None:
        self.spec = spec
        self.leverage = leverage
        self.wallet = Fraction(0)

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
