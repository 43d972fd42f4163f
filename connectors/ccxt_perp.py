"""ccxt's derivative structures -> the core's perpetual types.

ccxt unifies positions (``fetchPositions`` / ``watchPositions``), funding rates
(``fetchFundingRate``), funding payments (``fetchFundingHistory``), leverage tiers
(``fetchLeverageTiers``) and market metadata (``contractSize``, ``linear``/``inverse``,
``settle``). Numbers arrive as floats; each is taken through its shortest repr (never its binary
expansion) and the venue's raw strings under ``info`` win where they exist. A malformed
structure raises :class:`PerpPayloadError` naming the field and the value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from trading.contracts import ContractKind, ContractSpec, MarginMode
from trading.instruments import InstrumentError
from trading.margin import BracketTable

# ASCII digits only (``Decimal`` also takes other scripts' digits and "NaN"); an exponent is
# allowed because ccxt's floats print as e.g. ``1.758648e-05``.
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d{1,4})?", re.ASCII)


class PerpPayloadError(ValueError):
    """A ccxt derivative structure that cannot be read (names the field and the value)."""


def _dec(field: str, value: object, *, optional: bool = False) -> Decimal | None:
    if value is None or value == "":
        if optional:
            return None
        raise PerpPayloadError(f"{field}: missing; the venue gave no value")
    if isinstance(value, bool):
        raise PerpPayloadError(f"{field}: {value!r} is not a number")
    text = repr(value) if isinstance(value, float) else str(value).strip()
    if not _NUMBER.fullmatch(text):
        raise PerpPayloadError(f"{field}: {value!r} is not a number; accepted: ASCII decimal digits, e.g. '0.01'")
    try:
        d = Decimal(text)
    except InvalidOperation:
        raise PerpPayloadError(f"{field}: {value!r} is not a number") from None
    if not d.is_finite() or abs(d) > Decimal(10) ** 20:
        raise PerpPayloadError(f"{field}: {value!r} is out of range; accepted: finite, at most 1e20 in size")
    return d


@dataclass(frozen=True, slots=True)
class PositionReport:
    """The venue's view of one position. ``contracts`` is signed (negative = short)."""

    symbol: str
    position_side: str  # "both" (one-way), "long" or "short" (hedge mode)
    contracts: Decimal
    contract_size: Decimal
    entry_price: Decimal | None
    mark_price: Decimal | None
    unrealized_pnl: Decimal
    liquidation_price: Decimal | None
    leverage: int | None
    margin_mode: MarginMode
    ts: int
    isolated_wallet: Decimal | None = None  # the margin of an isolated position (Binance isolatedWallet)


@dataclass(frozen=True, slots=True)
class FundingRate:
    symbol: str
    rate: Decimal
    next_funding_ts: int | None  # ms
    mark_price: Decimal | None
    index_price: Decimal | None
    ts: int


@dataclass(frozen=True, slots=True)
class FundingPayment:
    symbol: str
    amount: Decimal  # received (+) or paid (-), in ``currency``
    currency: str
    ts: int
    payment_id: str
    # the leg the exchange says the payment is for (``long`` / ``short``), where it says one
    # (Binance's FUNDING_FEE income rows do not): hedge mode splits the others (trading.live_legs)
    position_side: str | None = None


def contract_spec_from_market(market: Mapping[str, Any]) -> ContractSpec:
    """Spot, linear or inverse from a ccxt market (``contract``, ``linear``, ``inverse``,
    ``contractSize``, ``settle``; maximum leverage from ``limits.leverage.max`` when given)."""
    symbol = market.get("symbol")
    if not market.get("contract"):
        return ContractSpec(ContractKind.SPOT)
    if market.get("linear"):
        kind = ContractKind.LINEAR
    elif market.get("inverse"):
        kind = ContractKind.INVERSE
    else:
        raise PerpPayloadError(f"{symbol}: a contract market that is neither linear nor inverse")
    size = _dec(f"{symbol} contractSize", market.get("contractSize"))
    lev = _dec(
        f"{symbol} limits.leverage.max", ((market.get("limits") or {}).get("leverage") or {}).get("max"), optional=True
    )
    try:
        return ContractSpec.create(
            kind=kind,
            contract_size=size,
            settle=str(market.get("settle") or ""),
            max_leverage=int(lev) if lev is not None else 125,
        )
    except InstrumentError as exc:
        raise PerpPayloadError(f"{symbol}: {exc}") from None


def position_from_ccxt(position: Mapping[str, Any]) -> PositionReport:
    """A unified ccxt position (one-way or hedge mode, linear or inverse)."""
    symbol = str(position.get("symbol") or "")
    info = position.get("info") or {}
    side = position.get("side")
    raw_side = str(info.get("positionSide") or "BOTH").lower()
    if side not in ("long", "short", None):
        raise PerpPayloadError(f"{symbol} side: {side!r}; accepted: long, short")
    contracts = _dec(f"{symbol} contracts", position.get("contracts"), optional=True) or Decimal(0)
    raw_amt = _dec(f"{symbol} info.positionAmt", info.get("positionAmt"), optional=True)
    if raw_amt is not None:  # Binance's own signed string is exact
        contracts = abs(raw_amt)
    signed = -contracts if side == "short" else contracts
    mode = position.get("marginMode") or position.get("marginType") or "cross"
    try:
        margin_mode = MarginMode(str(mode))
    except ValueError:
        raise PerpPayloadError(f"{symbol} marginMode: {mode!r}; accepted: cross, isolated") from None
    leverage = _dec(f"{symbol} leverage", position.get("leverage"), optional=True)

    def raw_or_unified(raw_key: str, key: str) -> Decimal | None:
        value = _dec(f"{symbol} info.{raw_key}", info.get(raw_key), optional=True)
        return value if value is not None else _dec(f"{symbol} {key}", position.get(key), optional=True)

    liq = raw_or_unified("liquidationPrice", "liquidationPrice")
    isolated = _dec(f"{symbol} info.isolatedWallet", info.get("isolatedWallet"), optional=True)
    return PositionReport(
        symbol=symbol,
        position_side=raw_side if raw_side in ("long", "short") else "both",
        contracts=signed,
        contract_size=_dec(f"{symbol} contractSize", position.get("contractSize"), optional=True) or Decimal(1),
        entry_price=raw_or_unified("entryPrice", "entryPrice"),
        mark_price=raw_or_unified("markPrice", "markPrice"),
        unrealized_pnl=raw_or_unified("unRealizedProfit", "unrealizedPnl") or Decimal(0),
        liquidation_price=liq if liq else None,  # Binance sends "0" when there is none
        leverage=int(leverage) if leverage else None,
        margin_mode=margin_mode,
        ts=int(position.get("timestamp") or 0),
        isolated_wallet=isolated if isolated and margin_mode is MarginMode.ISOLATED else None,
    )


def funding_rate_from_ccxt(item: Mapping[str, Any]) -> FundingRate:
    symbol = str(item.get("symbol") or "")
    next_ts = item.get("fundingTimestamp") or item.get("nextFundingTimestamp")
    return FundingRate(
        symbol=symbol,
        rate=_dec(f"{symbol} fundingRate", item.get("fundingRate")),
        next_funding_ts=int(next_ts) if next_ts else None,
        mark_price=_dec(f"{symbol} markPrice", item.get("markPrice"), optional=True),
        index_price=_dec(f"{symbol} indexPrice", item.get("indexPrice"), optional=True),
        ts=int(item.get("timestamp") or 0),
    )


def funding_payment_from_ccxt(item: Mapping[str, Any]) -> FundingPayment:
    symbol = str(item.get("symbol") or "")
    info = item.get("info") or {}
    side = str(item.get("side") or info.get("positionSide") or info.get("posSide") or "").lower()
    amount = _dec(f"{symbol} info.income", info.get("income"), optional=True)
    if amount is None:
        amount = _dec(f"{symbol} amount", item.get("amount"))
    return FundingPayment(
        symbol=symbol,
        amount=amount,
        currency=str(item.get("code") or info.get("asset") or ""),
        ts=int(item.get("timestamp") or 0),
        payment_id=str(item.get("id") or ""),
        position_side=side if side in ("long", "short") else None,
    )


def bracket_table_from_ccxt(symbol: str, tiers: Sequence[Mapping[str, Any]], source: str = "ccxt") -> BracketTable:
    """ccxt ``fetchLeverageTiers`` entries (``maxNotional``, ``maxLeverage``,
    ``maintenanceMarginRate``, in tier order) -> a bracket table (cum recomputed and checked)."""
    rows = []
    for n, tier in enumerate(sorted(tiers, key=lambda t: t.get("tier") or 0), 1):
        cap = _dec(f"{symbol} tier {n} maxNotional", tier.get("maxNotional"), optional=True)
        lev = _dec(f"{symbol} tier {n} maxLeverage", tier.get("maxLeverage"))
        mmr = _dec(f"{symbol} tier {n} maintenanceMarginRate", tier.get("maintenanceMarginRate"))
        rows.append((None if n == len(tiers) and not cap else cap, int(lev), mmr))
    try:
        return BracketTable.create(symbol, rows, source=source)
    except InstrumentError as exc:
        raise PerpPayloadError(str(exc)) from None
