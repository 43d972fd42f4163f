"""Hedge (long/short) position mode for a quoting bot: which leg each order opens or closes, and
each leg's margin, unrealized PnL, funding and liquidation.

In hedge mode a market holds a long leg and a short leg that never net (Binance "dual side
position"; an order names its leg with ``positionSide`` LONG / SHORT, and a close is the
opposite side on that leg: SELL LONG closes long, BUY SHORT closes short; ``reduceOnly`` is not
sent). The engine and its strategy keep trading one signed inventory, ``long - short``
(:class:`~trading.portfolio.Portfolio` books every fill that way); this module maps each order
onto a leg.

**Policy: close first.** When a new order passes pre-trade risk (:meth:`HedgeLegs.assign`):

* a buy closes the short leg when the short leg still holds the order's size after the buys
  already working against it (a close can never be larger than its leg: Binance refuses it);
  otherwise it opens / adds to the long leg;
* a sell likewise closes the long leg, or opens / adds to the short leg;
* a reduce-only order (flatten, the ``reduce_only`` risk action) always names the leg it closes.

**Flatten closes both legs** (:func:`flatten_orders`): one reduce-only IOC order per open leg,
naming it (SELL LONG closes the long leg, BUY SHORT the short one), each as large as its leg.
Closing only the net would leave equal legs (net 0) fully open.

So the bid and the ask of a flat bot open a long and a short leg, and once a leg is open the
quotes on the other side reduce it: the gross position (long + short) stays within the net
inventory plus what was working when the last quotes were placed, and margin is held on no more
than that. Both legs are open at once only when quotes placed before a fill fill after it.

A fill books on the leg its order named (:meth:`HedgeLegs.leg_of`, kept per client order id).
A fill whose order is not known here (replayed from the database at take-over, placed by an
earlier owner) books by the same rule against the legs as they stand then; a close larger than
its leg (the leg shrank by a liquidation) closes the leg and opens the rest on the other one.

**Margin per leg.** Each leg holds ``notional at the mark / leverage`` initial margin. Isolated:
each leg has its own wallet, Binance's ``isolatedWallet``: the initial margin of what it opened
(``entry notional / leverage``, released pro rata as the leg is reduced) plus the funding booked
on it; each leg has its own liquidation (:func:`leg_liquidations`) and is closed alone at its
bankruptcy price. Cross: the account's wallet backs both legs; one liquidation price for the two
(:func:`trading.margin.liquidation_price` with a long and a short), which closes both at the
account's bankruptcy price (:func:`close_legs_at_bankruptcy`). Which side of that price
liquidates is the net's: long when ``long > short``; with the legs equal the account's
equity no longer moves with the price but the maintenance margin does: it grows as a linear
price rises (short-like) and as an inverse price falls (long-like).

**Funding** is paid per leg with its own sign (a positive rate: the long leg pays, the short
leg receives), :func:`funding_by_leg`; equal legs pay and receive the same amount.

Worked numbers: ``tests/trading/test_hedge_legs.py``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from fractions import Fraction

from trading.contracts import ContractSpec, MarginMode, frac
from trading.events import PlaceOrder, TimeInForce
from trading.instruments import InstrumentError, Side
from trading.margin import BracketTable, liquidation_price
from trading.positions import PerpPosition

LONG, SHORT = "long", "short"
LEGS = (LONG, SHORT)
MAX_TRACKED = 1024


def opens(side: Side) -> str:
    """The leg an order of ``side`` opens: a buy the long leg, a sell the short leg."""
    return LONG if side is Side.BUY else SHORT


def closes(side: Side) -> str:
    """The leg an order of ``side`` closes: a buy the short leg, a sell the long leg."""
    return SHORT if side is Side.BUY else LONG


def flatten_orders(position: PerpPosition, next_id, sell_price: int, buy_price: int, reason: str = "flatten"):
    """The orders that flatten a hedge-mode position: per open leg, a reduce-only IOC close of
    the whole leg naming it (the long leg sold at ``sell_price``, the short leg bought at
    ``buy_price``, ticks). ``next_id()`` gives each its client order id."""
    out = []
    for name in LEGS:
        lots = position.legs[name].lots
        if lots:
            side = Side.SELL if name == LONG else Side.BUY
            price = sell_price if side is Side.SELL else buy_price
            out.append(
                PlaceOrder(next_id(), side, price, abs(lots), TimeInForce.IOC, reason=reason, reduce_only=True,
                           position_side=name)
            )  # fmt: skip
    return out


class HedgeLegs:
    """The leg of each order of one bot in hedge mode (module docstring: close first)."""

    def __init__(self) -> None:
        self._legs: dict[str, str] = {}

    def assign(self, position: PerpPosition, cmd, working: Iterable = ()):
        """``cmd`` (a PlaceOrder) with its ``position_side``. ``working``: the bot's working
        orders (``client_order_id``, ``side``, ``qty``, ``filled`` if any), whose closes count against
        their leg."""
        working = list(working)
        name = cmd.position_side
        if name and name not in LEGS:
            raise InstrumentError(f"position_side: {name!r} is not accepted; accepted: long, short")
        if not name:
            target = closes(cmd.side)
            room = abs(position.legs[target].lots)
            if room and not cmd.reduce_only:
                legs = self._legs
                for o in working:
                    if o.side is cmd.side and legs.get(o.client_order_id) == target:
                        room -= o.qty - getattr(o, "filled", 0)
            name = target if cmd.reduce_only or room >= cmd.qty else opens(cmd.side)
            cmd = replace(cmd, position_side=name)
        self.remember(cmd.client_order_id, name, working)
        return cmd

    def remember(self, client_order_id: str, name: str, working: Iterable = ()) -> None:
        """Note the leg of an order. Past ``MAX_TRACKED`` orders the older half of those not
        ``working`` (orders with a ``client_order_id``) is forgotten."""
        legs = self._legs
        if len(legs) >= MAX_TRACKED:
            keep = {o.client_order_id for o in working}
            old = [cid for cid in legs if cid not in keep]
            for cid in old[: max(len(old) // 2, 1)]:
                del legs[cid]
        legs[client_order_id] = name

    def leg_of(self, client_order_id: str) -> str | None:
        return self._legs.get(client_order_id)

    def known(self) -> dict[str, str]:
        return dict(self._legs)


def apply_fill(
    position: PerpPosition,
    side: Side,
    price_ticks: int,
    lots: int,
    fee: object,
    name: str | None,
    leg_funding: dict[str, Fraction] | None = None,
) -> Fraction:
    """Book a hedge-mode fill on leg ``name`` (``None``: by the close-first rule against the legs
    as they are); a close larger than its leg closes it and opens the rest on the other leg.
    ``leg_funding`` (funding booked per leg, isolated) shrinks with the leg it was booked on.
    Returns the realized PnL."""
    if name is None:
        name = closes(side) if abs(position.legs[closes(side)].lots) >= lots else opens(side)
    if name == closes(side):
        leg = position.legs[name]
        before, first = abs(leg.lots), min(abs(leg.lots), lots)
        realized = Fraction(0)
        if first:
            realized = position.apply_fill(side, price_ticks, first, fee=fee, position_side=name)
            fee = 0
            if leg_funding and name in leg_funding:
                leg_funding[name] = leg_funding[name] * (before - first) / before
        if lots > first:
            realized += position.apply_fill(side, price_ticks, lots - first, fee=fee, position_side=opens(side))
        return realized
    return position.apply_fill(side, price_ticks, lots, fee=fee, position_side=name)


def book_funding(
    position: PerpPosition, mark: object, rate: object, leg_funding: dict[str, Fraction] | None = None
) -> dict[str, Fraction]:
    """Book one funding time on both legs (each with its sign); returns what each leg got and
    adds it to ``leg_funding`` when given."""
    paid = funding_by_leg(position, mark, rate)
    position.funding += sum(paid.values(), Fraction(0))
    if leg_funding is not None:
        for name, amount in paid.items():
            if position.legs[name].lots:
                leg_funding[name] = leg_funding.get(name, Fraction(0)) + amount
    return paid


# --- per-leg figures ---------------------------------------------------------------------------
def leg_unrealized(position: PerpPosition, name: str, mark: object) -> Fraction:
    leg = position.legs[name]
    if not leg.lots:
        return Fraction(0)
    return position.spec.pnl(position.contracts(leg.lots), leg.entry(position.spec.inverse), frac(mark, "mark"))


def leg_margin(position: PerpPosition, name: str, mark: object) -> Fraction:
    """Initial margin the leg holds at ``mark``: notional / leverage."""
    lots = position.legs[name].lots
    return (
        position.spec.notional(position.contracts(lots), frac(mark, "mark")) / position.leverage
        if lots
        else Fraction(0)
    )


def leg_wallet(position: PerpPosition, name: str, funding: Fraction = Fraction(0)) -> Fraction:
    """An isolated leg's wallet: the initial margin of what it opened (entry notional /
    leverage) plus the funding booked on it (``funding``)."""
    leg = position.legs[name]
    if not leg.lots:
        return Fraction(0)
    entry = leg.entry(position.spec.inverse)
    return position.spec.notional(position.contracts(leg.lots), entry) / position.leverage + funding


def funding_by_leg(position: PerpPosition, mark: object, rate: object) -> dict[str, Fraction]:
    """What each leg receives (+) or pays (-) at one funding time."""
    spec = position.spec
    return {name: spec.funding_payment(position.contracts(position.legs[name].lots), mark, rate) for name in LEGS}


def direction(position: PerpPosition) -> int:
    """+1 when a falling mark liquidates (long-like), -1 when a rising one does (module docstring)."""
    net = position.net_lots
    if net:
        return 1 if net > 0 else -1
    return 1 if position.spec.inverse else -1


def crossed(side: int, mark: Fraction, liq: Fraction | None) -> bool:
    if liq is None:
        return False
    return mark <= liq if side > 0 else mark >= liq


def leg_liquidations(
    position: PerpPosition, table: BracketTable, wallet: Fraction, leg_funding: dict[str, Fraction] | None = None
) -> dict[str, tuple[int, Fraction]]:
    """The liquidation of each open leg as ``{name: (direction, price)}``. Isolated: each leg on
    its own wallet; cross: one price for the account (``wallet`` + realized + funding - fees as
    WB), listed under ``"account"``."""
    spec = position.spec
    open_legs = [n for n in LEGS if position.legs[n].lots]
    if not open_legs:
        return {}
    if position.margin_mode is MarginMode.ISOLATED:
        out = {}
        funding = leg_funding or {}
        for name in open_legs:
            leg = position.legs[name]
            wb = leg_wallet(position, name, funding.get(name, Fraction(0)))
            price = liquidation_price(spec, table, wb, [(position.contracts(leg.lots), leg.entry(spec.inverse))])
            if price is not None:
                out[name] = (1 if name == LONG else -1, price)
        return out
    price = position.liquidation_price(table, wallet)
    return {} if price is None else {"account": (direction(position), price)}


def bankruptcy_price_legs(spec: ContractSpec, wb: Fraction, legs: list[tuple[Fraction, Fraction]]) -> Fraction | None:
    """Where ``wb`` + the legs' unrealized PnL is zero; legs: (signed contracts, entry)."""
    cs = frac(spec.contract_size)
    sized = [(q * cs, e) for q, e in legs if q]
    net = sum((q for q, _ in sized), Fraction(0))
    if not net:
        return None
    if spec.inverse:  # wb + sum q (1/e - 1/p) = 0
        den = wb + sum((q / e for q, e in sized), Fraction(0))
        return net / den if den and net / den > 0 else None
    price = (sum((q * e for q, e in sized), Fraction(0)) - wb) / net  # wb + sum q (p - e) = 0
    return price if price > 0 else None


def close_legs_at_bankruptcy(
    position: PerpPosition, names: Iterable[str], wb: Fraction, liq: Fraction
) -> tuple[Fraction, Fraction, dict[str, int]]:
    """Close the legs ``names`` at the price where ``wb`` plus their unrealized PnL is zero
    (``liq`` when no price is), book the loss as realized PnL. Returns (price, realized PnL,
    {leg: lots closed})."""
    spec = position.spec
    names = [n for n in names if position.legs[n].lots]
    legs = [(position.contracts(position.legs[n].lots), position.legs[n].entry(spec.inverse)) for n in names]
    price = bankruptcy_price_legs(spec, wb, legs) or liq
    pnl = sum((spec.pnl(q, e, price) for q, e in legs), Fraction(0))
    position.realized += pnl
    closed = {}
    for n in names:
        leg = position.legs[n]
        closed[n] = leg.lots
        leg.lots, leg.basis = 0, Fraction(0)
    return price, pnl, closed


def liquidate_crossed(
    position: PerpPosition,
    table: BracketTable,
    wallet: Fraction,
    mark: Fraction,
    leg_funding: dict[str, Fraction] | None = None,
) -> list[tuple[str, Fraction, Fraction, Fraction, dict[str, int]]]:
    """Liquidate what ``mark`` has reached: each isolated leg whose price it crossed, or (cross)
    both legs. Returns ``(leg or "account", liquidation price, close price, PnL, lots closed)``
    for each liquidation."""
    out = []
    funding = leg_funding if leg_funding is not None else {}
    for name, (side, liq) in leg_liquidations(position, table, wallet, funding).items():
        if crossed(side, mark, liq):
            out.append((name, liq, *liquidate_leg(position, wallet, name, liq, funding)))
    return out


def liquidate_leg(
    position: PerpPosition, wallet: Fraction, name: str, liq: Fraction, leg_funding: dict[str, Fraction] | None = None
) -> tuple[Fraction, Fraction, dict[str, int]]:
    """Close what one liquidation takes: the isolated leg ``name`` on its own wallet, or
    (``"account"``, cross) both legs on the account's (``wallet`` + realized + funding - fees),
    at the bankruptcy price (``liq`` when there is none). Returns (price, realized PnL, {leg:
    lots closed}); the leg's funding leaves ``leg_funding`` with it."""
    funding = leg_funding if leg_funding is not None else {}
    if name == "account":
        wb = wallet + position.realized + position.funding - position.fees
        return close_legs_at_bankruptcy(position, LEGS, wb, liq)
    wb = leg_wallet(position, name, funding.get(name, Fraction(0)))
    done = close_legs_at_bankruptcy(position, [name], wb, liq)
    funding.pop(name, None)
    return done


__all__ = [
    "LEGS",
    "LONG",
    "SHORT",
    "HedgeLegs",
    "apply_fill",
    "book_funding",
    "close_legs_at_bankruptcy",
    "closes",
    "crossed",
    "direction",
    "flatten_orders",
    "funding_by_leg",
    "leg_liquidations",
    "leg_margin",
    "leg_unrealized",
    "leg_wallet",
    "liquidate_crossed",
    "liquidate_leg",
    "opens",
]
