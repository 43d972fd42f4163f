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

from collections import deque
from decimal import Decimal
from fractions import Fraction

from trading.contracts import frac
from trading.isolated_wallet import IsolatedMargin
from trading.live_legs import VenueLeg, chosen_liquidations, split_funding
from trading.perp_figures import dec
from trading.perp_risk import PerpRisk


class LivePerpRisk(PerpRisk):
    """:class:`PerpRisk` of a live bot: funding payments booked as the exchange reports them
    (:meth:`book_payment`; hedge mode: per leg, :func:`trading.live_legs.split_funding`), in
    isolated mode the exchange's own isolated wallet taken at each read
    (:meth:`set_isolated_wallet`; between reads :class:`PerpRisk` keeps it from the fills), and in
    hedge mode the exchange's liquidation price and isolated wallet of each leg
    (:meth:`set_venue_legs`, :mod:`trading.live_legs`)."""

    def __init__(self, *args, **kwargs) -> None:
        # read by _refresh_liquidation, which the base constructor calls
        self.venue_legs: dict[str, VenueLeg] = {}
        self.own_leg_liquidations: dict[str, tuple[int, Fraction]] = {}
        self.leg_sources: dict[str, str] = {}
        self.last_shares: dict = {}  # the legs' shares of the last payment booked (hedge mode)
        super().__init__(*args, **kwargs)
        # hedge mode: (ts ns, long lots, short lots) after each change, to split a payment by the
        # legs as they were at its funding time
        self.leg_history: deque[tuple[int, int, int]] = deque([(0, 0, 0)], maxlen=512)

    def on_fill(self, fill) -> None:
        super().on_fill(fill)
        self._note_legs(fill.ts)

    def adopt_legs(self, legs: dict, ts: int | None = None) -> None:
        """The venue's legs in place of the booked ones (``ts``: when, ns; default the newest)."""
        super().adopt_legs(legs)
        self._note_legs(ts)

    def _note_legs(self, ts: int | None) -> None:
        if self.hedge is None:
            return
        last = self.leg_history[-1][0]
        ts = last if ts is None else max(int(ts), last)
        self.leg_history.append((ts, self.position.legs["long"].lots, self.position.legs["short"].lots))

    def legs_at(self, ts_ns: int) -> tuple[int, int]:
        """The (long, short) lots held at ``ts_ns`` (the oldest known when it is older)."""
        found = self.leg_history[0]
        for row in self.leg_history:
            if row[0] > ts_ns:
                break
            found = row
        return found[1], found[2]

    def book_payment(self, amount: object, ts_ms: int | None = None, position_side: str | None = None) -> Fraction:
        """A funding payment the exchange made on the position (+ received, - paid). Hedge mode:
        split over the legs held at ``ts_ms`` (or as they are) unless the exchange named the leg
        (``position_side``); the split is :attr:`last_shares` (``{leg: Decimal}``, ``{}`` one-way)."""
        paid = frac(amount, "funding")
        self.position.funding += paid
        shares: dict = {}
        if self.hedge is not None:
            long, short = (
                self.legs_at(ts_ms * 1_000_000)
                if ts_ms is not None
                else (self.position.legs["long"].lots, self.position.legs["short"].lots)
            )
            rate = self.funding_rate
            shares = split_funding(Decimal(str(amount)), long, short, rate, position_side)
            for name, share in shares.items():
                if self.position.legs[name].lots:  # a leg closed since keeps no funding of its own
                    self.leg_funding[name] = self.leg_funding.get(name, Fraction(0)) + frac(share)
        elif self.isolated is not None and self.position.net_lots:
            self.isolated.book_funding(paid)
        self.last_shares = shares
        self._refresh_liquidation()
        return paid

    def set_isolated_wallet(self, wallet: object, lots: int) -> None:
        """The exchange's isolated wallet of its position of ``lots`` (taken while ours has that size)."""
        if self.isolated is not None and lots == self.position.net_lots and lots:
            self.isolated.set(wallet)
            self._refresh_liquidation()

    def set_venue_legs(self, legs: dict[str, VenueLeg]) -> None:
        """Hedge mode: the exchange's legs as last reported (size, liquidation price, isolated wallet)."""
        self.venue_legs = dict(legs)
        self._refresh_liquidation()

    def _hedge_liquidation(self) -> tuple[Fraction | None, bool]:
        used, self.own_leg_liquidations, self.leg_sources = chosen_liquidations(self)
        self.leg_liquidations = used
        if not used:
            return None, True
        pos = self.position
        name = max(used, key=lambda n: abs(pos.legs[n].lots) if n in pos.legs else 0)
        side, price = used[name]
        return price, side > 0

    def snapshot(self) -> dict:
        """:meth:`PerpRisk.snapshot`, each hedge leg with the exchange's figures beside ours:
        ``exchange_liquidation_price``, ``exchange_isolated_wallet`` (as last reported for a leg
        of that size, else ``None``) and ``liquidation_source`` (``exchange`` / ``own``)."""
        out = super().snapshot()
        for name, leg in (out.get("legs") or {}).items():
            theirs = self.venue_legs.get(name)
            current = theirs is not None and theirs.lots == self.position.legs[name].lots and theirs.lots
            leg["exchange_liquidation_price"] = dec(theirs.liquidation) if current else None
            leg["exchange_isolated_wallet"] = dec(theirs.isolated_wallet) if current else None
            key = name if name in self.leg_sources else "account"
            leg["liquidation_source"] = self.leg_sources.get(key)
        return out


__all__ = ["IsolatedMargin", "LivePerpRisk"]
