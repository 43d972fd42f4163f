"""The isolated margin of a live one-way perpetual position, and the perpetual risk of a live bot
that uses it (:class:`LivePerpRisk`).

On an exchange in isolated margin mode the position's liquidation price comes from the margin
allocated to that position (Binance's ``isolatedWallet``, WB in :mod:`trading.margin`), not from
the account's wallet. The exchange reports it, and its liquidation price, at each read of the
position (:mod:`workers.perp_live`); between reads (a fill since) the bot computes it from its own
book-keeping of that margin, :class:`IsolatedMargin`, the way Binance allocates it:

* a fill that opens or adds ``q`` contracts at price ``p`` moves ``notional(q, p) / leverage``
  (the initial margin of what it added) into the isolated wallet;
* a fill that reduces the position by ``c`` of its ``|L|`` contracts releases the same fraction of
  the isolated wallet (``wallet x c / |L|``) to the cross wallet, with the realized PnL, so the
  rest of the position keeps its liquidation price; a position closed to zero releases it all;
  a fill through zero closes the old side, then opens the rest at its price;
* a funding payment is settled against the isolated wallet (+ received, - paid);
* trading fees are not part of it (they are charged to the cross wallet here); where the
  exchange charges them to the isolated margin its ``isolatedWallet`` at the next read corrects
  the figure (:meth:`IsolatedMargin.set`).

Worked example (``tests/trading/test_isolated_margin.py``): long 0.004 BTC at 59,940 USDT at 10x
on Binance USD-M BTCUSDT (bracket 1: MMR 0.4 %, cum 0): isolated wallet 0.004 x 59,940 / 10 =
23.976 USDT; liquidation ``(23.976 - 0.004 x 59,940) / (0.004 x 0.004 - 0.004)`` =
59,940 x 0.9 / 0.996 = 54,162.6506... USDT.
"""

from __future__ import annotations

from fractions import Fraction

from trading.contracts import frac
from trading.isolated_wallet import IsolatedMargin
from trading.perp_risk import PerpRisk


class LivePerpRisk(PerpRisk):
    """:class:`PerpRisk` of a live bot: funding payments booked as the exchange reports them
    (:meth:`book_payment`), and in isolated mode the exchange's own isolated wallet taken at each
    read (:meth:`set_isolated_wallet`; between reads :class:`PerpRisk` keeps it from the fills)."""

    def book_payment(self, amount: object) -> Fraction:
        """A funding payment the exchange made on the position (+ received, - paid)."""
        paid = frac(amount, "funding")
        self.position.funding += paid
        if self.isolated is not None and self.position.net_lots:
            self.isolated.book_funding(paid)
        self._refresh_liquidation()
        return paid

    def set_isolated_wallet(self, wallet: object, lots: int) -> None:
        """The exchange's isolated wallet of its position of ``lots`` (taken while ours has that size)."""
        if self.isolated is not None and lots == self.position.net_lots and lots:
            self.isolated.set(wallet)
            self._refresh_liquidation()


__all__ = ["IsolatedMargin", "LivePerpRisk"]
