"""A live perpetual account through ccxt: leverage, margin mode, positions and funding.

:class:`CcxtPerpAccount` wraps one ccxt exchange (e.g. ``binanceusdm``) for the calls a perp
bot needs besides order entry (:class:`connectors.ccxt_gateway.CcxtGateway` already sends
``reduceOnly`` for reduce-only orders):

- :meth:`~CcxtPerpAccount.set_leverage` (ccxt ``setLeverage``): refused before anything is sent
  when the leverage is not a whole number from 1 to the market's maximum;
- :meth:`~CcxtPerpAccount.set_margin_mode` (ccxt ``setMarginMode``): ``cross`` or ``isolated``;
  a switch while the venue reports an open position is refused before anything is sent (the
  exchange refuses it too), and "already set" is not an error;
- :meth:`~CcxtPerpAccount.check_position_mode` / :meth:`~CcxtPerpAccount.set_position_mode`
  (ccxt ``fetchPositionMode`` / ``setPositionMode``, Binance ``/fapi/v1/positionSide/dual``):
  ``one_way`` or ``hedge``. Binance keeps one position mode for the whole account and refuses a
  switch while a position or an open order exists; a switch with a position or an open order on
  the bot's market is refused before anything is sent, and the exchange's own refusal (another
  market's) is said plainly. In hedge mode orders carry ``positionSide`` LONG / SHORT
  (:class:`connectors.ccxt_gateway.CcxtGateway`) and never ``reduceOnly``;
- :meth:`~CcxtPerpAccount.fetch_positions` (ccxt ``fetchPositions``) as
  :class:`connectors.ccxt_perp.PositionReport`, and :func:`perp_position` maps one onto the
  core's :class:`trading.positions.PerpPosition` (integer lots, exact entry);
- :meth:`~CcxtPerpAccount.fetch_funding` (ccxt ``fetchFundingRate``): rate, next funding time
  and mark, for :meth:`trading.perp_risk.PerpRisk.set_funding` / ``set_mark``;
- :meth:`~CcxtPerpAccount.fetch_funding_payments` (ccxt ``fetchFundingHistory``, Binance
  ``/fapi/v1/income`` ``FUNDING_FEE``): the funding the exchange paid or charged on the
  position, as :class:`connectors.ccxt_perp.FundingPayment` (each with the exchange's id);
- :func:`position_mismatch`: our position against the venue's beyond a tolerance, as a
  sentence for an incident (``workers.reconcile.reconcile_position``).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from fractions import Fraction
from typing import Any

import ccxt

from connectors.ccxt_perp import (
    FundingPayment,
    FundingRate,
    PerpPayloadError,
    PositionReport,
    contract_spec_from_market,
    funding_payment_from_ccxt,
    funding_rate_from_ccxt,
    position_from_ccxt,
)
from trading.contracts import ContractSpec, MarginMode, PositionMode, frac
from trading.instruments import Instrument
from trading.positions import Leg, PerpPosition


class PerpVenueError(ValueError):
    """A perp account request refused before it reached the venue (names field and value)."""


class CcxtPerpAccount:
    def __init__(self, exchange: Any) -> None:
        self.exchange = exchange

    async def _market(self, symbol: str) -> tuple[dict, ContractSpec]:
        if not getattr(self.exchange, "markets", None):
            await self.exchange.load_markets()
        market = (self.exchange.markets or {}).get(symbol)
        if market is None:
            raise PerpVenueError(f"symbol: {symbol!r} is not a market of {self.exchange.id}")
        spec = contract_spec_from_market(market)
        if not spec.is_perpetual:
            raise PerpVenueError(f"symbol: {symbol} is a spot market; leverage and margin mode apply to perpetuals")
        return market, spec

    async def contract(self, symbol: str) -> tuple[dict, ContractSpec]:
        """The ccxt market and its contract (refused for an unknown symbol or a spot market)."""
        return await self._market(symbol)

    async def set_leverage(self, symbol: str, leverage: object) -> int:
        _, spec = await self._market(symbol)
        if isinstance(leverage, bool) or not isinstance(leverage, int) or not 1 <= leverage <= spec.max_leverage:
            raise PerpVenueError(
                f"leverage: {leverage!r} is not accepted for {symbol}; accepted: a whole number from 1 to "
                f"{spec.max_leverage}"
            )
        await self.exchange.set_leverage(leverage, symbol)
        return leverage

    async def set_margin_mode(self, symbol: str, mode: object) -> bool:
        """Switch to ``mode``; ``False`` when the venue already had it."""
        await self._market(symbol)
        try:
            wanted = MarginMode(mode)
        except ValueError:
            raise PerpVenueError(f"margin_mode: {mode!r} is not accepted; accepted: cross, isolated") from None
        open_ = [p for p in await self.fetch_positions(symbol) if p.contracts != 0]
        if open_ and any(p.margin_mode is not wanted for p in open_):
            sizes = ", ".join(f"{p.contracts:f}" for p in open_)
            raise PerpVenueError(
                f"margin_mode: cannot switch {symbol} to {wanted.value} with an open position ({sizes} contracts, "
                f"{open_[0].margin_mode.value}); accepted: a switch once the position is closed"
            )
        try:
            reply = await self.exchange.set_margin_mode(wanted.value, symbol)
        except ccxt.MarginModeAlreadySet:  # binanceusdm raises Binance's -4046 "No need to change"
            return False
        return not (isinstance(reply, dict) and str(reply.get("code")) == "-4046")

    async def position_mode(self, symbol: str) -> PositionMode:
        reply = await self.exchange.fetch_position_mode(symbol)
        return PositionMode.HEDGE if reply.get("hedged") else PositionMode.ONE_WAY

    async def check_position_mode(self, symbol: str, mode: object) -> PositionMode | None:
        """The position mode to switch to (``None``: the venue has it already); a switch while the
        venue reports a position or an open order on ``symbol`` is refused (nothing is sent)."""
        await self._market(symbol)
        try:
            wanted = PositionMode(mode)
        except ValueError:
            raise PerpVenueError(f"position_mode: {mode!r} is not accepted; accepted: one_way, hedge") from None
        current = await self.position_mode(symbol)
        if current is wanted:
            return None
        open_ = [p for p in await self.fetch_positions(symbol) if p.contracts != 0]
        orders = await self.exchange.fetch_open_orders(symbol)
        if open_ or orders:
            held = []
            if open_:
                held.append(f"an open position ({', '.join(f'{p.contracts:f}' for p in open_)} contracts)")
            if orders:
                held.append(f"{len(orders)} open order{'s' if len(orders) > 1 else ''}")
            raise PerpVenueError(
                f"position_mode: cannot switch the {self.exchange.id} account from {current.value} to {wanted.value} "
                f"while {symbol} has {' and '.join(held)}; accepted: a switch once every position is closed and no "
                f"order is open (the exchange keeps one position mode for the whole account)"
            )
        return wanted

    async def set_position_mode(self, symbol: str, wanted: PositionMode) -> None:
        try:
            await self.exchange.set_position_mode(wanted is PositionMode.HEDGE, symbol)
        except ccxt.AuthenticationError:
            raise
        except ccxt.ExchangeError as exc:
            raise PerpVenueError(
                f"position_mode: the exchange refused the switch to {wanted.value} (it refuses one while any "
                f"position or open order exists on the account, on any market); accepted: a switch once every "
                f"position is closed and no order is open. The exchange said: {exc}"
            ) from exc

    async def configure(
        self, symbol: str, leverage: object = None, margin_mode: object = None, position_mode: object = None
    ) -> list[str]:
        """Apply a bot's leverage, margin mode and position mode (each may be None: left as the
        venue has it) all or nothing: every check runs before the first request, so a refusal
        (leverage above the market's maximum, a margin-mode switch with an open position, a
        position-mode switch with a position or an open order) leaves the venue as it was.
        Returns what was changed, e.g. ``["margin_mode isolated", "leverage 5"]``."""
        _, spec = await self._market(symbol)
        if leverage is not None and (
            isinstance(leverage, bool) or not isinstance(leverage, int) or not 1 <= leverage <= spec.max_leverage
        ):
            raise PerpVenueError(
                f"leverage: {leverage!r} is not accepted for {symbol}; accepted: a whole number from 1 to "
                f"{spec.max_leverage} (the market's maximum on {self.exchange.id})"
            )
        changed = []
        # A position-mode switch is checked first; it passes only with no position on the market,
        # so the margin-mode check (which refuses only with one) cannot refuse after it.
        switch = None if position_mode is None else await self.check_position_mode(symbol, position_mode)
        # set_margin_mode refuses before sending anything
        if margin_mode is not None and await self.set_margin_mode(symbol, margin_mode):
            changed.append(f"margin_mode {MarginMode(margin_mode).value}")
        if switch is not None:
            await self.set_position_mode(symbol, switch)
            changed.append(f"position_mode {switch.value}")
        if leverage is not None:
            await self.exchange.set_leverage(leverage, symbol)
            changed.append(f"leverage {leverage}")
        return changed

    async def fetch_positions(self, symbol: str) -> list[PositionReport]:
        rows = await self.exchange.fetch_positions([symbol])
        return [position_from_ccxt(row) for row in rows if row.get("symbol") == symbol]

    async def fetch_funding(self, symbol: str) -> FundingRate:
        return funding_rate_from_ccxt(await self.exchange.fetch_funding_rate(symbol))

    async def fetch_funding_payments(self, symbol: str, since_ms: int, limit: int = 1000) -> list[FundingPayment]:
        """The funding payments of ``symbol`` from ``since_ms`` (inclusive), oldest first, at
        most ``limit`` (Binance's maximum page); a payment without an id is refused (it could
        not be stored once)."""
        rows = await self.exchange.fetch_funding_history(symbol, since_ms, limit)
        out = []
        for row in rows:
            if row.get("symbol") != symbol:
                continue
            payment = funding_payment_from_ccxt(row)
            if not payment.payment_id:
                raise PerpPayloadError(f"{symbol} funding payment id: missing in {row.get('info')!r}")
            out.append(payment)
        return sorted(out, key=lambda p: (p.ts, p.payment_id))


def perp_position(
    reports: Sequence[PositionReport],
    instrument: Instrument,
    spec: ContractSpec,
    *,
    margin_mode: MarginMode | None = None,
) -> PerpPosition:
    """The venue's position(s) of one market as a :class:`PerpPosition` (one-way: one report
    with ``position_side`` ``both``; hedge mode: a long and a short). Sizes must be whole lots;
    the entry price is kept exactly as the venue states it."""
    hedge = any(r.position_side in ("long", "short") for r in reports)
    leverage = max((r.leverage or 1 for r in reports), default=1)
    mode = margin_mode or (reports[0].margin_mode if reports else MarginMode.CROSS)
    pos = PerpPosition(
        instrument,
        spec,
        PositionMode.HEDGE if hedge else PositionMode.ONE_WAY,
        mode,
        min(leverage, spec.max_leverage),
    )
    lot = frac(instrument.lot_size)
    for r in reports:
        lots_f = frac(r.contracts) / lot
        if lots_f.denominator != 1:
            raise PerpPayloadError(
                f"{r.symbol} contracts: {r.contracts} is not a whole number of lots of {instrument.lot_size}"
            )
        lots = int(lots_f)
        if lots == 0:
            continue
        if r.entry_price is None or r.entry_price <= 0:
            raise PerpPayloadError(f"{r.symbol} entryPrice: {r.entry_price!r}; an open position needs one above 0")
        entry = frac(r.entry_price)
        basis = abs(lots) / entry if spec.inverse else abs(lots) * entry
        pos.legs[r.position_side if hedge else "both"] = Leg(lots, Fraction(basis))
    return pos


def position_mismatch(
    symbol: str, ours: Decimal, venue: Sequence[PositionReport], tolerance: Decimal = Decimal(0)
) -> str | None:
    """A sentence when our net position (contracts, signed) and the venue's differ by more than
    ``tolerance`` contracts; ``None`` when they agree."""
    theirs = sum((r.contracts for r in venue), Decimal(0))
    diff = ours - theirs
    if abs(diff) <= tolerance:
        return None
    return (
        f"{symbol}: our position is {_plain(ours)} contracts, the venue's {_plain(theirs)} "
        f"(difference {_plain(diff)}, tolerance {_plain(tolerance)})"
    )


def _plain(value: Decimal) -> str:
    return f"{value.normalize():f}" if value else "0"
