"""Market metadata from ccxt markets -> :class:`trading.instruments.Instrument`, cached.

ccxt describes a market's price and amount precision in one of two modes (``precisionMode``):
``TICK_SIZE`` (the value *is* the step, e.g. ``0.01``) or ``DECIMAL_PLACES`` (the value is a
number of decimals, e.g. ``2`` meaning ``0.01``). Both are handled; ``SIGNIFICANT_DIGITS``
has no fixed step and is refused. When the raw Binance filters are present under ``info``
(``PRICE_FILTER.tickSize``, ``LOT_SIZE.stepSize``, ``NOTIONAL``/``MIN_NOTIONAL``) their exact
strings win over ccxt's floats.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any

import ccxt

from connectors.ccxt_perp import PerpPayloadError, contract_spec_from_market
from trading.contracts import ContractSpec
from trading.instruments import Instrument, InstrumentError

TICK_SIZE = ccxt.TICK_SIZE
DECIMAL_PLACES = ccxt.DECIMAL_PLACES
SIGNIFICANT_DIGITS = ccxt.SIGNIFICANT_DIGITS


def to_decimal(value: object) -> Decimal:
    """Convert a ccxt number (float, int or str) to Decimal through its shortest repr."""
    if isinstance(value, float):
        return Decimal(repr(value))
    return Decimal(str(value))


def step_from_precision(field: str, value: object, mode: int) -> Decimal:
    """Return the step size for a ccxt precision value under ``mode``."""
    if value is None:
        raise InstrumentError(f"{field}: missing in the market's precision; the venue gave no step")
    if mode == TICK_SIZE:
        return to_decimal(value)
    if mode == DECIMAL_PLACES:
        places = to_decimal(value)
        if places != places.to_integral_value():
            raise InstrumentError(f"{field}: {value!r} is not a whole number of decimal places")
        return Decimal(1).scaleb(-int(places))
    raise InstrumentError(
        f"precisionMode: {mode!r} is not supported; accepted are TICK_SIZE ({TICK_SIZE}) "
        f"and DECIMAL_PLACES ({DECIMAL_PLACES})"
    )


def _binance_filters(info: object) -> dict[str, dict[str, Any]]:
    if not isinstance(info, Mapping):
        return {}
    filters = info.get("filters")
    if not isinstance(filters, list):
        return {}
    return {f.get("filterType"): f for f in filters if isinstance(f, Mapping)}


def _positive(value: object) -> Decimal | None:
    if value in (None, ""):
        return None
    d = to_decimal(value)
    return d if d > 0 else None


def instrument_from_market(
    market: Mapping[str, Any],
    *,
    precision_mode: int,
    venue: str = "",
    default_maker_fee: object = 0,
    default_taker_fee: object = 0,
) -> Instrument:
    """Build an Instrument (tick, lot, min notional, fees) from one ccxt market structure."""
    symbol = market.get("symbol")
    precision = market.get("precision") or {}
    limits = market.get("limits") or {}
    filters = _binance_filters(market.get("info"))
    tick = _positive(filters.get("PRICE_FILTER", {}).get("tickSize"))
    lot = _positive(filters.get("LOT_SIZE", {}).get("stepSize"))
    if tick is None:
        tick = step_from_precision(f"{symbol} precision.price", precision.get("price"), precision_mode)
    if lot is None:
        lot = step_from_precision(f"{symbol} precision.amount", precision.get("amount"), precision_mode)
    notional_filter = filters.get("NOTIONAL") or filters.get("MIN_NOTIONAL") or {}
    min_notional = _positive(notional_filter.get("minNotional") or notional_filter.get("notional"))
    if min_notional is None:
        min_notional = _positive((limits.get("cost") or {}).get("min")) or Decimal(0)
    maker = market.get("maker")
    taker = market.get("taker")
    return Instrument.create(
        symbol=str(symbol),
        base=market.get("base"),
        quote=market.get("quote"),
        tick_size=tick.normalize(),
        lot_size=lot.normalize(),
        min_notional=min_notional,
        maker_fee=to_decimal(maker) if maker is not None else default_maker_fee,
        taker_fee=to_decimal(taker) if taker is not None else default_taker_fee,
        venue=venue,
    )


def convert_precision(markets: Mapping[str, Mapping[str, Any]], from_mode: int, to_mode: int) -> dict:
    """Return a copy of ccxt markets with ``precision`` re-expressed from one mode in another.

    Used when markets saved under one mode are loaded into an exchange class using another
    (ccxt's static market files predate Binance's switch to TICK_SIZE)."""
    if (from_mode, to_mode) not in ((DECIMAL_PLACES, TICK_SIZE), (TICK_SIZE, DECIMAL_PLACES)):
        return {k: dict(v) for k, v in markets.items()}
    out: dict[str, dict] = {}
    for symbol, market in markets.items():
        m = dict(market)
        prec = dict(m.get("precision") or {})
        for key, value in prec.items():
            if value is None:
                continue
            step = step_from_precision(f"{symbol} precision.{key}", value, from_mode)
            if to_mode == TICK_SIZE:
                prec[key] = float(step)
            else:
                prec[key] = -step.normalize().as_tuple().exponent
        m["precision"] = prec
        out[symbol] = m
    return out


class MarketCache:
    """Instruments of one exchange, loaded from ccxt markets once and refreshed after ``ttl_s``.

    ``exchange`` is a ccxt (async) exchange object; ``clock`` returns seconds.
    """

    def __init__(
        self,
        exchange: Any,
        *,
        ttl_s: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._exchange = exchange
        self._ttl_s = ttl_s
        self._clock = clock
        self._loaded_at: float | None = None
        self._instruments: dict[str, Instrument] = {}
        # The contract of each instrument (spot, linear or inverse with contract size, settle
        # currency and maximum leverage), from the same ccxt market; a market whose contract
        # metadata cannot be read has an instrument but no contract here.
        self.contracts: dict[str, ContractSpec] = {}
        self.loads = 0

    def _fee(self, name: str) -> object:
        trading = (getattr(self._exchange, "fees", None) or {}).get("trading") or {}
        value = trading.get(name)
        return to_decimal(value) if value is not None else 0

    def build(self, markets: Iterable[Mapping[str, Any]]) -> dict[str, Instrument]:
        """Convert ccxt markets, skipping (not failing on) markets without a fixed step."""
        result: dict[str, Instrument] = {}
        for market in markets:
            try:
                inst = instrument_from_market(
                    market,
                    precision_mode=self._exchange.precisionMode,
                    venue=self._exchange.id,
                    default_maker_fee=self._fee("maker"),
                    default_taker_fee=self._fee("taker"),
                )
            except InstrumentError:
                continue
            result[inst.symbol] = inst
            try:
                self.contracts[inst.symbol] = contract_spec_from_market(market)
            except PerpPayloadError:
                self.contracts.pop(inst.symbol, None)
        return result

    async def instruments(self, *, reload: bool = False) -> dict[str, Instrument]:
        """All instruments by unified symbol, loading markets when stale or asked to."""
        now = self._clock()
        stale = self._loaded_at is None or now - self._loaded_at >= self._ttl_s
        if reload or stale:
            markets = await self._exchange.load_markets(reload=reload or self._loaded_at is not None)
            self._instruments = self.build(markets.values())
            self._loaded_at = now
            self.loads += 1
        return self._instruments

    async def instrument(self, symbol: str) -> Instrument:
        """The instrument for a unified symbol such as ``BTC/USDT``; KeyError names the symbol."""
        instruments = await self.instruments()
        if symbol not in instruments:
            known = ", ".join(sorted(instruments)[:10])
            raise KeyError(f"symbol: {symbol!r} is not a market on {self._exchange.id}; known: {known}...")
        return instruments[symbol]
