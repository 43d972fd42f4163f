"""The exchange's own figures for each leg of a LIVE hedge-mode (long/short) position, and the
exchange's funding payments booked per leg (:class:`trading.isolated_margin.LivePerpRisk`).

**Liquidation per leg.** The exchange reports, for each leg it holds (Binance ``positionRisk`` /
ccxt ``fetchPositions``, ``info``), its ``liquidationPrice`` and, isolated, its
``isolatedWallet`` (:class:`VenueLeg`). The price the liquidation-distance guard watches for a
leg is the exchange's while the bot's leg has the size the exchange reported; otherwise (a fill
since, or none reported) the bot's own (:func:`trading.hedge_legs.leg_liquidations`), computed
with the exchange's isolated wallet when it reported one for a leg of that size, else with the
wallet the bot keeps. Cross: one price for the account; the exchange's is the one it reports on
the larger leg, taken while both legs have the sizes it reported. :func:`disagreements` compares
the exchange's figure with the bot's own (its own book-keeping throughout): a difference of more
than ``threshold`` of the exchange's price is material.

**Funding per leg.** Binance's ``FUNDING_FEE`` income rows name no position side. When the
exchange does not say the leg (:func:`split_funding`), a payment is split by the legs' signed
notional at the funding time. Both legs are valued at the same mark, so that is the split by the
legs' signed contracts ``L`` (long, >= 0) and ``-S`` (short): the long leg's share is
``amount x L / (L - S)`` and the short's ``amount x -S / (L - S)``. This is exact funding
arithmetic, not an approximation: with rate ``r`` at mark ``m`` the exchange pays
``amount = -r m (L - S)``, so the long's share is ``-r m L`` (a positive rate: the long pays)
and the short's ``+r m S`` (it receives). Rounding: the leg with fewer contracts gets its share
rounded half-even to the payment's own decimal places, and the other leg gets the rest, so the
two add up to the payment exactly (Decimal throughout). With only one leg open it gets it all.
With equal legs (signed notional 0, the exchange posting one row per leg) a row goes by its sign
under the funding rate in force (a positive rate: a payment is the long's, a receipt the
short's; a negative rate the reverse); with no rate known it is halved, the remainder to the
long leg.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from fractions import Fraction

from trading.contracts import MarginMode
from trading.hedge_legs import LEGS, LONG, SHORT, leg_liquidations
from trading.margin import liquidation_price


@dataclass(frozen=True, slots=True)
class VenueLeg:
    """What the exchange reported for one leg: its size in lots (signed), its liquidation price
    and its isolated wallet (``None`` when it gave none)."""

    lots: int
    liquidation: Fraction | None = None
    isolated_wallet: Fraction | None = None


def _places(amount: Decimal) -> Decimal:
    exp = amount.as_tuple().exponent
    return Decimal(1).scaleb(exp) if isinstance(exp, int) and exp < 0 else Decimal(1)


def _share(amount: Decimal, num: int, den: int) -> Decimal:
    """``amount x num / den`` rounded half-even to ``amount``'s own decimal places."""
    with localcontext() as ctx:
        ctx.prec = 80
        exact = amount * Decimal(num) / Decimal(den)
        return exact.quantize(_places(amount), rounding=ROUND_HALF_EVEN)


def split_funding(
    amount: Decimal, long_lots: int, short_lots: int, rate: object = None, position_side: str | None = None
) -> dict[str, Decimal]:
    """The legs' shares of one funding payment ``amount`` (+ received, - paid) made while the
    legs held ``long_lots`` (>= 0) and ``short_lots`` (<= 0); the shares add up to ``amount``
    exactly (module docstring). ``position_side`` (``long`` / ``short``): the exchange said the
    leg, which gets it all. ``{}`` when neither leg was open (the account's)."""
    if not isinstance(amount, Decimal) or not amount.is_finite():
        raise ValueError(f"amount: {amount!r}; accepted: a finite Decimal")
    if position_side in LEGS:
        return {position_side: amount}
    long, short = abs(int(long_lots)), abs(int(short_lots))
    if not long and not short:
        return {}
    if not short:
        return {LONG: amount}
    if not long:
        return {SHORT: amount}
    if long != short:
        net = long - short  # signed notional / (contract value at the mark), the same for both legs
        if long < short:
            small = _share(amount, long, net)
            return {LONG: small, SHORT: amount - small}
        small = _share(amount, -short, net)
        return {LONG: amount - small, SHORT: small}
    sign = 0 if rate is None else (Fraction(rate) > 0) - (Fraction(rate) < 0)
    if sign and amount:
        payer = LONG if sign > 0 else SHORT  # the leg that pays at this rate
        return {payer if amount < 0 else (SHORT if payer == LONG else LONG): amount}
    half = _share(amount, 1, 2)
    return {LONG: amount - half, SHORT: half}


def chosen_liquidations(risk) -> tuple[dict[str, tuple[int, Fraction]], dict[str, tuple[int, Fraction]], dict]:
    """``(in use, own, sources)``: the liquidation the guard watches per leg (isolated) or for the
    account (cross), the bot's own figures, and where each in-use figure comes from
    (``exchange`` / ``own``). See the module docstring."""
    pos = risk.position
    own = leg_liquidations(pos, risk.table, risk.wallet, risk.leg_funding)
    venue: dict[str, VenueLeg] = risk.venue_legs
    used = dict(own)
    sources = dict.fromkeys(own, "own")
    if pos.margin_mode is MarginMode.ISOLATED:
        spec = pos.spec
        for name in list(used):
            leg, theirs = pos.legs[name], venue.get(name)
            if theirs is None or theirs.lots != leg.lots or not leg.lots:
                continue
            if theirs.liquidation is not None:
                used[name] = (used[name][0], theirs.liquidation)
                sources[name] = "exchange"
            elif theirs.isolated_wallet is not None:  # ours, on the exchange's wallet of that leg
                price = liquidation_price(
                    spec, risk.table, theirs.isolated_wallet, [(pos.contracts(leg.lots), leg.entry(spec.inverse))]
                )
                if price is not None:
                    used[name] = (used[name][0], price)
    elif "account" in used:
        same = all((venue.get(n).lots if n in venue else 0) == pos.legs[n].lots for n in LEGS)
        larger = max(LEGS, key=lambda n: abs(pos.legs[n].lots))
        theirs = venue.get(larger)
        if same and theirs is not None and theirs.liquidation is not None:
            used["account"] = (used["account"][0], theirs.liquidation)
            sources["account"] = "exchange"
    return used, own, sources


def disagreements(risk, threshold: Fraction) -> dict[str, tuple[Fraction, Fraction]]:
    """``{leg or "account" or "position": (the exchange's price, ours)}`` where the exchange's
    liquidation price in use differs from the bot's own by more than ``threshold`` of it."""
    out = {}
    if risk.hedge is None:
        venue, lots = risk.venue_liquidation or (None, 0), risk.position.net_lots
        if venue[0] == lots and lots:
            own = risk.own_liquidation()
            pairs = {"position": (venue[1], own)}
        else:
            pairs = {}
    else:
        pairs = {
            name: (price, risk.own_leg_liquidations.get(name, (0, None))[1])
            for name, (_side, price) in risk.leg_liquidations.items()
            if risk.leg_sources.get(name) == "exchange"
        }
    for name, (theirs, own) in pairs.items():
        if own is None or abs(theirs - own) > threshold * theirs:
            out[name] = (theirs, own)
    return out


__all__ = ["VenueLeg", "chosen_liquidations", "disagreements", "split_funding"]
