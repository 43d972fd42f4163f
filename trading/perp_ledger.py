"""A perpetual account beside the engine: position, margin, funding and liquidation over time.

The backtester (and the paper venue) hand every fill and every market event to a
:class:`PerpLedger`. It keeps the :class:`~trading.positions.PerpPosition` in the settle
currency (inverse contracts: PnL, fees and funding in the coin), marks it at the mark price —
the venue's when it streams one, else the book's mid — books funding at each funding time
(:class:`FundingSchedule`: a stored series or a constant rate every 8 hours at 00:00, 08:00 and
16:00 UTC, Binance's times), and watches the liquidation price. When the mark reaches it the
position is liquidated at the bankruptcy price (isolated margin: the position's margin is lost)
and the ledger says so (``liquidated_at``); the backtester stops there, as the account has
nothing left to trade. Every liquidation is kept in ``liquidations`` (:class:`Liquidation`).

In hedge position mode (:mod:`trading.hedge_legs`) a fill books on the leg its order named
(``position_side``), funding is booked on each leg with its sign, and the liquidation is each
isolated leg's own (on the wallet it opened with) or the account's (cross, closing both legs).
An isolated leg's liquidation closes that leg alone and the ledger goes on with the other one
(:meth:`PerpLedger.on_mark` returns it, so the backtester closes the leg in the engine too);
the account's (cross) ends a backtest as in one-way mode. The report lists both legs and every
liquidation.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any

from trading import hedge_legs
from trading.contracts import ContractSpec, MarginMode, PositionMode, frac, to_decimal
from trading.events import Liquidity, OrderFilled
from trading.instruments import FEE_SCALE, Instrument, InstrumentError
from trading.isolated_wallet import IsolatedMargin
from trading.margin import BracketTable, bankruptcy_price
from trading.positions import PerpPosition

HOUR_NS = 3_600 * 10**9
FUNDING_INTERVAL_NS = 8 * HOUR_NS


@dataclass(frozen=True)
class FundingSchedule:
    """Funding rates by time: ``series`` of ``(ts_ns, rate)`` (each rate applies at its own
    funding time), else ``constant`` every ``interval_ns`` from 00:00 UTC."""

    constant: Fraction = Fraction(0)
    series: tuple[tuple[int, Fraction], ...] = ()
    interval_ns: int = FUNDING_INTERVAL_NS

    @classmethod
    def create(
        cls, *, constant: object = 0, series: Sequence[tuple[int, object]] = (), interval_ns: int = FUNDING_INTERVAL_NS
    ) -> FundingSchedule:
        rate = frac(constant, "funding_rate")
        if abs(rate) > Fraction(3, 100):
            raise InstrumentError(f"funding_rate: {constant!r} is out of range; accepted: -0.03 to 0.03 per interval")
        points = tuple(sorted((int(ts), frac(r, "funding_rate")) for ts, r in series))
        for ts, r in points:
            if abs(r) > Fraction(3, 100):
                raise InstrumentError(f"funding_rate at {ts}: {r} is out of range; accepted: -0.03 to 0.03")
        if interval_ns <= 0:
            raise InstrumentError(f"interval_ns: {interval_ns!r} must be above 0")
        return cls(rate, points, interval_ns)

    def times_between(self, after_ns: int, until_ns: int) -> list[tuple[int, Fraction]]:
        """Funding times in ``(after_ns, until_ns]`` with their rates."""
        if self.series:
            times = [ts for ts, _ in self.series]
            lo, hi = bisect_right(times, after_ns), bisect_right(times, until_ns)
            return list(self.series[lo:hi])
        first = (after_ns // self.interval_ns + 1) * self.interval_ns
        return [(ts, self.constant) for ts in range(first, until_ns + 1, self.interval_ns)]

    def next_after(self, ts_ns: int) -> tuple[int, Fraction] | None:
        """The first funding time after ``ts_ns`` with its rate (``None`` past the series' end)."""
        if self.series:
            i = bisect_right([t for t, _ in self.series], ts_ns)
            return self.series[i] if i < len(self.series) else None
        return (ts_ns // self.interval_ns + 1) * self.interval_ns, self.constant


@dataclass
class FundingEvent:
    ts: int
    rate: Fraction
    mark: Fraction
    amount: Fraction  # received (+) / paid (-), settle currency


@dataclass(frozen=True)
class Liquidation:
    """One liquidation: ``leg`` is ``"both"`` (one-way), ``"long"`` / ``"short"`` (an isolated
    hedge-mode leg) or ``"account"`` (cross hedge mode, both legs); ``closed``: lots closed per
    leg (signed, as held); ``pnl``: the loss booked, settle currency."""

    ts: int
    leg: str
    mark: Fraction
    liquidation_price: Fraction
    price: Fraction  # the bankruptcy price the position was closed at
    pnl: Fraction
    closed: dict[str, int]

    @property
    def ends_account(self) -> bool:
        """Whether nothing is left to trade (one-way, or the cross account in hedge mode)."""
        return self.leg in ("both", "account")


def liquidation_text(done: Liquidation, settle: str) -> str:
    """``done`` in words, e.g. "mark 54200 reached the liquidation price 54216.87 of the long leg
    (isolated): closed at the bankruptcy price 54000, -24 USDT"."""

    def num(value: Fraction) -> str:
        return f"{to_decimal(value, 8).normalize():f}"

    names = {"both": "the position", "account": "the account (both legs, cross)"}
    what = names.get(done.leg, f"the {done.leg} leg (isolated)")
    return (
        f"mark {num(done.mark)} reached the liquidation price {num(done.liquidation_price)} of {what}: closed at the "
        f"bankruptcy price {num(done.price)}, {num(done.pnl)} {settle}"
    )


@dataclass
class PerpLedger:
    instrument: Instrument
    spec: ContractSpec
    table: BracketTable
    wallet: Fraction  # the position's margin (isolated) or the cross wallet, settle currency
    leverage: int = 1
    margin_mode: MarginMode = MarginMode.ISOLATED
    mode: PositionMode = PositionMode.ONE_WAY
    funding: FundingSchedule = field(default_factory=FundingSchedule)
    funding_source: str = "constant rate"
    position: PerpPosition = field(init=False)
    fundings: list[FundingEvent] = field(default_factory=list)
    mark: Fraction | None = None
    last_ts: int = 0
    liquidated_at: int | None = None
    liquidation_price_hit: Fraction | None = None
    min_liquidation_distance: Fraction | None = None  # |mark - liq| / mark, smallest seen
    max_margin_used: Fraction = Fraction(0)
    leg_funding: dict[str, Fraction] = field(default_factory=dict)  # hedge mode: funding per leg
    liquidations: list[Liquidation] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.wallet = frac(self.wallet, "wallet")
        if self.wallet <= 0:
            raise InstrumentError(f"wallet: {self.wallet} must be above 0 (the margin the position starts with)")
        self.position = PerpPosition(self.instrument, self.spec, self.mode, self.margin_mode, self.leverage)
        # One-way isolated: the position's own margin is what a liquidation takes (trading.isolated_wallet).
        self.isolated = IsolatedMargin.of(self.position)

    # --- inputs -------------------------------------------------------------------------------
    def on_fill(self, fill: OrderFilled, position_side: str | None = None) -> None:
        """Book a fill; hedge mode: on leg ``position_side`` (its order's)."""
        if self.liquidated_at is not None:
            return  # the venue cancelled everything when it liquidated the position
        price = frac(self.instrument.price(fill.price))
        rate = self.instrument.maker_fee_e8 if fill.liquidity is Liquidity.MAKER else self.instrument.taker_fee_e8
        fee = self.spec.notional(self.position.contracts(fill.qty), price) * rate / FEE_SCALE
        if self.mode is PositionMode.HEDGE:
            hedge_legs.apply_fill(self.position, fill.side, fill.price, fill.qty, fee, position_side, self.leg_funding)
        else:
            if self.isolated is not None:
                self.isolated.on_position_fill(self.position, int(fill.side), fill.qty, price)
            self.position.apply_fill(fill.side, fill.price, fill.qty, fee=fee)

    def on_mark(self, ts: int, mark: object) -> list[Liquidation]:
        """A new mark price at ``ts``: book funding due since the last one, then check margin.
        Returns the liquidations this mark caused (usually none)."""
        if self.liquidated_at is not None:
            return []
        m = frac(mark, "mark")
        if self.last_ts:
            for when, rate in self.funding.times_between(self.last_ts, ts):
                at = self.mark if self.mark is not None else m
                if self.mode is PositionMode.HEDGE:
                    amount = sum(
                        hedge_legs.book_funding(self.position, at, rate, self.leg_funding).values(), Fraction(0)
                    )
                else:
                    amount = self.position.book_funding(at, rate)
                    if self.isolated is not None and self.position.net_lots:
                        self.isolated.book_funding(amount)
                self.fundings.append(FundingEvent(when, rate, at, amount))
        self.mark, self.last_ts = m, ts
        if all(leg.lots == 0 for leg in self.position.legs.values()):
            return []
        self.max_margin_used = max(self.max_margin_used, self.position.margin_used(m))
        if self.mode is PositionMode.HEDGE:
            return self._hedge_mark(ts, m)
        liq = self.liquidation_price()
        if liq is None:
            return []
        distance = abs(m - liq) / m
        if self.min_liquidation_distance is None or distance < self.min_liquidation_distance:
            self.min_liquidation_distance = distance
        if crossed_liquidation(self.position.net_lots, m, liq):
            return [self._liquidate(ts, liq, m)]
        return []

    def _hedge_mark(self, ts: int, m: Fraction) -> list[Liquidation]:
        pos = self.position
        for _name, (_side, liq) in hedge_legs.leg_liquidations(pos, self.table, self.wallet, self.leg_funding).items():
            distance = abs(m - liq) / m
            if self.min_liquidation_distance is None or distance < self.min_liquidation_distance:
                self.min_liquidation_distance = distance
        done = hedge_legs.liquidate_crossed(pos, self.table, self.wallet, m, self.leg_funding)
        out = [Liquidation(ts, name, m, liq, price, pnl, closed) for name, liq, price, pnl, closed in done]
        self._record(out)
        return out

    def _record(self, done: list[Liquidation]) -> None:
        """Keep ``done``; the first that leaves nothing to trade ends the ledger (``liquidated_at``)."""
        self.liquidations.extend(done)
        for liquidation in done:
            if liquidation.ends_account and self.liquidated_at is None:
                self.liquidated_at, self.liquidation_price_hit = liquidation.ts, liquidation.liquidation_price

    # --- state --------------------------------------------------------------------------------
    def liquidation_price(self) -> Fraction | None:
        """The liquidation price (hedge mode: the account's, or the nearest isolated leg's to the mark)."""
        if self.mode is PositionMode.HEDGE:
            found = hedge_legs.leg_liquidations(self.position, self.table, self.wallet, self.leg_funding)
            if not found:
                return None
            prices = [price for _side, price in found.values()]
            return min(prices, key=lambda p: abs(p - self.mark)) if self.mark is not None else prices[0]
        if self.isolated is not None:
            return self.isolated.liquidation(self.position, self.table)
        return self.position.liquidation_price(self.table, self.wallet)

    def equity(self) -> Fraction:
        return self.position.equity(self.wallet, self.mark) if self.mark is not None else self.wallet

    def _liquidate(self, ts: int, liq: Fraction, mark: Fraction) -> Liquidation:
        wb = None if self.isolated is None else self.isolated.wallet
        lots = self.position.net_lots
        price, pnl, _contracts = close_at_bankruptcy(self.spec, self.position, self.wallet, liq, wb)
        done = Liquidation(ts, "both", mark, liq, price, pnl, {"both": lots})
        self._record([done])
        return done

    def report(self) -> dict[str, object]:
        """Figures for results, as exact fractions (the caller formats them)."""
        pos = self.position
        return {
            "settle": self.spec.settle,
            "kind": self.spec.kind.value,
            "contract_size": self.spec.contract_size,
            "leverage": self.leverage,
            "margin_mode": self.margin_mode.value,
            "wallet": self.wallet,
            "position_lots": pos.net_lots,
            "entry_price": pos.entry_price() if self.mode is PositionMode.ONE_WAY else None,
            "mark_price": self.mark,
            "realized": pos.realized,
            "unrealized": pos.unrealized(self.mark) if self.mark is not None else Fraction(0),
            "funding": pos.funding,
            "fees": pos.fees,
            "equity": self.equity(),
            "margin_used": pos.margin_used(self.mark) if self.mark is not None else Fraction(0),
            "max_margin_used": self.max_margin_used,
            "liquidation_price": self.liquidation_price(),
            "min_liquidation_distance": self.min_liquidation_distance,
            "liquidated_at": self.liquidated_at,
            "liquidations": list(self.liquidations),
            "fundings": list(self.fundings),
            "position_mode": self.mode.value,
            "legs": self._legs() if self.mode is PositionMode.HEDGE else None,
        }

    def _legs(self) -> dict[str, dict[str, object]]:
        pos, mark = self.position, self.mark
        return {
            name: {
                "lots": pos.legs[name].lots,
                "entry_price": pos.entry_price(name),
                "unrealized": Fraction(0) if mark is None else hedge_legs.leg_unrealized(pos, name, mark),
                "margin_used": Fraction(0) if mark is None else hedge_legs.leg_margin(pos, name, mark),
                "funding": self.leg_funding.get(name, Fraction(0)),
            }
            for name in hedge_legs.LEGS
        }


def crossed_liquidation(lots: int, mark: Fraction, liq: Fraction | None) -> bool:
    """Whether the mark has reached the liquidation price of a position of ``lots`` (signed)."""
    if not lots or liq is None:
        return False
    return mark <= liq if lots > 0 else mark >= liq


def close_at_bankruptcy(
    spec: ContractSpec, pos: PerpPosition, wallet: Fraction, liq: Fraction, wb: Fraction | None = None
) -> tuple[Fraction, Fraction, Fraction]:
    """Liquidate a one-way position: close it at the bankruptcy price (where the wallet balance
    ``wallet`` + realized + funding - fees is used up, or ``wb`` when given: an isolated
    position's own wallet; ``liq`` when there is none), book the loss as realized PnL. The
    backtest's ledger and the hosted paper venue both use this. Returns (price, realized PnL of
    the close, contracts closed, signed)."""
    contracts = pos.contracts(pos.net_lots)
    entry = pos.entry_price()
    if wb is None:
        wb = wallet + pos.realized + pos.funding - pos.fees
    price = bankruptcy_price(spec, wb, contracts, entry) or liq
    pnl = spec.pnl(contracts, entry, price)
    pos.realized += pnl
    for leg in pos.legs.values():
        leg.lots, leg.basis = 0, Fraction(0)
    return price, pnl, contracts


def perp_records(report: dict[str, Any], instrument: Instrument) -> dict[str, Any]:
    """A :meth:`PerpLedger.report` as JSON-ready values: decimal strings (8 decimals, the settle
    currency for money), distances as fractions, times as ISO 8601 strings (UTC)."""

    def dec(value: Any) -> str | None:
        return None if value is None else f"{to_decimal(Fraction(value), 8):f}"

    def iso(ts_ns: int) -> str:
        return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=ts_ns // 1000)).isoformat()

    out: dict[str, Any] = {
        key: dec(report[key])
        for key in (
            "wallet",
            "entry_price",
            "mark_price",
            "realized",
            "unrealized",
            "funding",
            "fees",
            "equity",
            "margin_used",
            "max_margin_used",
            "liquidation_price",
        )
    }
    distance = report["min_liquidation_distance"]
    out.update(
        settle=report["settle"],
        kind=report["kind"],
        contract_size=str(report["contract_size"]),
        leverage=report["leverage"],
        margin_mode=report["margin_mode"],
        position_contracts=str(instrument.quantity(report["position_lots"])),
        net_pnl=dec(report["realized"] + report["unrealized"] + report["funding"] - report["fees"]),
        min_liquidation_distance=None if distance is None else float(distance),
        position_mode=report.get("position_mode", "one_way"),
        liquidated_at=None if report["liquidated_at"] is None else iso(report["liquidated_at"]),
        fundings=[
            {
                "ts": iso(f.ts),
                "rate": f"{to_decimal(f.rate, 8):f}",
                "mark": dec(f.mark),
                "amount": dec(f.amount),
            }
            for f in report["fundings"]
        ],
        liquidations=[
            {
                "ts": iso(q.ts),
                "leg": q.leg,
                "mark": dec(q.mark),
                "liquidation_price": dec(q.liquidation_price),
                "bankruptcy_price": dec(q.price),
                "pnl": dec(q.pnl),
                "contracts": {leg: str(instrument.quantity(lots)) for leg, lots in q.closed.items()},
            }
            for q in report.get("liquidations") or ()
        ],
    )
    done = report.get("liquidations") or ()
    out["liquidation_count"] = len(done)
    if done:  # a scalar for tables that leave lists out: each liquidation in words
        out["liquidations_text"] = "; ".join(f"{iso(q.ts)}: {liquidation_text(q, report['settle'])}" for q in done[:20])
    if report.get("legs"):
        out["legs"] = {
            name: {
                "contracts": str(instrument.quantity(leg["lots"])),
                **{key: dec(leg[key]) for key in ("entry_price", "unrealized", "margin_used", "funding")},
            }
            for name, leg in report["legs"].items()
        }
    return out
