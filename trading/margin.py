"""Margin, maintenance-margin tiers and liquidation prices, the way Binance documents them.

**Tiers** (Binance "leverage brackets"): a position's notional falls in one bracket, which gives
the maximum leverage, the maintenance margin rate (MMR) and the maintenance amount (``cum``):
``maintenance margin = notional x MMR - cum``. ``cum`` of bracket n is
``floor_n x (MMR_n - MMR_(n-1)) + cum_(n-1)``, so the maintenance margin is continuous across
brackets (``BracketTable.create`` computes it, and refuses a table that is not ordered).
Tables change over time; the live venue reads them through ccxt (``fetch_leverage_tiers``), and
two dated default tables ship here, each with its source:

* ``BINANCE_USDM_BTCUSDT``: USD-M BTCUSDT, brackets 1-10 (notional in USDT), from Binance's
  announcement "Updates to Leverage and Margin Tiers of Binance Futures Contracts (2021-03-18)".
* ``BINANCE_COINM_BTCUSD``: COIN-M BTCUSD perpetual, brackets 1-9 (notional in BTC), from
  Binance's FAQ "Leverage and Margin in Coin-Margined Futures Contracts" (maximum positions 10,
  20, 30, 50, 100, 200, 400, 1,000 BTC at 125x-3x, 2x above) with MMR = half the initial margin
  rate; the FAQ's worked maintenance amounts (level 5: 1.81 BTC; a 300 BTC position: 12.5 %,
  11.81 BTC) follow from it and are tested. The 1x bracket above 1,000 BTC is not implemented:
  bracket 9 extends without cap.

**Liquidation price** (Binance's formulas, derived here from "margin balance = maintenance
margin" so the code can be read against them). With ``WB`` the wallet balance
(cross: ``crossWalletBalance - TMM1 + UPNL1``, the maintenance margin and unrealized PnL of the
account's *other* positions; isolated: the position's isolated wallet, ``TMM1 = UPNL1 = 0``),
long size ``L`` at entry ``EPL``, short size ``S`` at ``EPS`` (one-way: one of them), sizes in
base units (linear: contracts x contract size) or USD (inverse: contracts x contract size):

* linear:  ``LP = (WB + cumL + cumS - L x EPL + S x EPS) / (L x MMR_L + S x MMR_S - L + S)``
* inverse: ``LP = (L x MMR_L + S x MMR_S + L - S) / (WB + cumL + cumS + L / EPL - S / EPS)``

The bracket is the one the position's notional *at the liquidation price* falls in: computed
first with the bracket at entry, then again with the bracket of the result until it stays
(Binance's note on positions whose level changes). A result at or below zero means the position
cannot be liquidated (fully collateralised): ``None``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction

from trading.contracts import ContractSpec, frac
from trading.instruments import InstrumentError


@dataclass(frozen=True, slots=True)
class Bracket:
    floor: Fraction  # notional from (exclusive, but 0 is inclusive)
    cap: Fraction | None  # notional up to (inclusive); None: no cap
    max_leverage: int
    mmr: Fraction
    cum: Fraction


@dataclass(frozen=True, slots=True)
class BracketTable:
    """Ordered maintenance-margin brackets of one market; notional in the settle currency."""

    symbol: str
    brackets: tuple[Bracket, ...]
    source: str = ""

    @classmethod
    def create(cls, symbol: str, rows: Iterable[tuple[object, object, object]], source: str = "") -> BracketTable:
        """Build from ``(cap, max_leverage, mmr)`` rows in order (the last cap may be None)."""
        brackets: list[Bracket] = []
        floor, prev_mmr, cum = Fraction(0), Fraction(0), Fraction(0)
        rows = list(rows)
        if not rows:
            raise InstrumentError(f"brackets for {symbol}: empty; give at least one (cap, max_leverage, mmr)")
        for n, (cap, lev, mmr) in enumerate(rows, 1):
            cap_f = None if cap is None else frac(cap, f"bracket {n} cap")
            mmr_f = frac(mmr, f"bracket {n} mmr")
            if not 0 < mmr_f < 1:
                raise InstrumentError(f"bracket {n} mmr: {mmr!r} is out of range; accepted: above 0, below 1")
            if mmr_f < prev_mmr:
                raise InstrumentError(f"bracket {n} mmr: {mmr!r} is below the previous bracket's {prev_mmr}")
            if cap_f is not None and cap_f <= floor:
                raise InstrumentError(f"bracket {n} cap: {cap!r} must be above its floor {floor}")
            if cap_f is None and n != len(rows):
                raise InstrumentError(f"bracket {n} cap: only the last bracket may have no cap")
            cum += floor * (mmr_f - prev_mmr)
            brackets.append(Bracket(floor, cap_f, int(lev), mmr_f, cum))
            prev_mmr = mmr_f
            if cap_f is not None:
                floor = cap_f
        return cls(symbol, tuple(brackets), source)

    def bracket(self, notional: Fraction) -> Bracket:
        """The bracket a notional falls in (the last one past every cap)."""
        for b in self.brackets:
            if b.cap is None or notional <= b.cap:
                return b
        return self.brackets[-1]

    def maintenance_margin(self, notional: Fraction) -> Fraction:
        b = self.bracket(notional)
        return notional * b.mmr - b.cum

    def max_leverage(self, notional: Fraction) -> int:
        return self.bracket(notional).max_leverage


def initial_margin(notional: Fraction, leverage: int) -> Fraction:
    if leverage < 1:
        raise InstrumentError(f"leverage: {leverage!r} must be 1 or more")
    return notional / leverage


def _lp_once(spec: ContractSpec, wb: Fraction, legs: Sequence[tuple[Fraction, Fraction, Bracket]]) -> Fraction | None:
    """One evaluation of the formula; legs are (signed size in base/USD units, entry, bracket)."""
    cum = sum((b.cum for _, _, b in legs), Fraction(0))
    if spec.inverse:
        num = sum((abs(q) * b.mmr + q for q, _, b in legs), Fraction(0))
        den = wb + cum + sum((q / e for q, e, _ in legs), Fraction(0))
    else:
        num = wb + cum - sum((q * e for q, e, _ in legs), Fraction(0))
        den = sum((abs(q) * b.mmr - q for q, _, b in legs), Fraction(0))
    if den == 0:
        return None
    price = num / den
    return price if price > 0 else None


def liquidation_price(
    spec: ContractSpec,
    table: BracketTable,
    wallet_balance: object,
    legs: Sequence[tuple[object, object]],
) -> Fraction | None:
    """Liquidation price of one market's position(s).

    ``legs``: ``(signed contracts, entry price)`` — one for one-way mode, a long and a short for
    hedge mode. ``wallet_balance`` is WB as in the module docstring (cross: already net of the
    other positions' maintenance margin and unrealized PnL). ``None`` when no price liquidates.
    """
    wb = frac(wallet_balance, "wallet_balance")
    cs = frac(spec.contract_size)
    sized = [(frac(q, "contracts") * cs, frac(e, "entry")) for q, e in legs if frac(q, "contracts") != 0]
    if not sized:
        return None

    def notional_at(price: Fraction, q: Fraction) -> Fraction:
        return abs(q) / price if spec.inverse else abs(q) * price

    chosen = [table.bracket(notional_at(e, q)) for q, e in sized]
    price: Fraction | None = None
    for _ in range(len(table.brackets) + 1):
        price = _lp_once(spec, wb, [(q, e, b) for (q, e), b in zip(sized, chosen, strict=True)])
        if price is None:
            return None
        at_lp = [table.bracket(notional_at(price, q)) for q, _ in sized]
        if at_lp == chosen:
            return price
        chosen = at_lp
    return price


def bankruptcy_price(spec: ContractSpec, wallet_balance: object, contracts: object, entry: object) -> Fraction | None:
    """The price at which an isolated one-way position's margin balance is zero (where a
    liquidated paper position is closed). ``None`` when no positive price does that."""
    wb = frac(wallet_balance, "wallet_balance")
    q = frac(contracts, "contracts") * frac(spec.contract_size)
    e = frac(entry, "entry")
    if q == 0:
        return None
    if spec.inverse:
        inv = 1 / e + wb / q  # wb + q (1/e - 1/p) = 0
        return 1 / inv if inv > 0 else None
    price = e - wb / q  # wb + q (p - e) = 0
    return price if price > 0 else None


BINANCE_USDM_BTCUSDT = BracketTable.create(
    "BTC/USDT:USDT",
    [
        (50_000, 125, "0.004"),
        (250_000, 100, "0.005"),
        (1_000_000, 50, "0.01"),
        (10_000_000, 20, "0.025"),
        (20_000_000, 10, "0.05"),
        (50_000_000, 5, "0.10"),
        (100_000_000, 4, "0.125"),
        (200_000_000, 3, "0.15"),
        (300_000_000, 2, "0.25"),
        (500_000_000, 1, "0.50"),
    ],
    source="Binance announcement 2021-03-18, BTCUSDT 125x perpetual, brackets 1-10",
)

BINANCE_COINM_BTCUSD = BracketTable.create(
    "BTC/USD:BTC",
    [
        (10, 125, "0.004"),
        (20, 100, "0.005"),
        (30, 50, "0.01"),
        (50, 20, "0.025"),
        (100, 10, "0.05"),
        (200, 5, "0.10"),
        (400, 4, "0.125"),
        (1_000, 3, "0.15"),
        (None, 2, "0.25"),
    ],
    source="Binance FAQ 'Leverage and Margin in Coin-Margined Futures Contracts', BTCUSD perpetual, brackets 1-9",
)

DEFAULT_TABLES = {t.symbol: t for t in (BINANCE_USDM_BTCUSDT, BINANCE_COINM_BTCUSD)}
