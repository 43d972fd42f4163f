"""Market metadata from real ccxt market files -> Instrument, in both precision modes."""

from __future__ import annotations

from decimal import Decimal

import pytest

from connectors.ccxt_venue import make_exchange
from connectors.markets import (
    DECIMAL_PLACES,
    SIGNIFICANT_DIGITS,
    TICK_SIZE,
    MarketCache,
    instrument_from_market,
    step_from_precision,
)
from tests.connectors.conftest import backpack_markets, binance_markets, load_fixture
from trading.instruments import InstrumentError


def test_binance_spot_uses_exchange_filter_strings_for_tick_lot_and_min_notional() -> None:
    market = load_fixture("markets/binance.json")["BTC/USDT"]
    inst = instrument_from_market(market, precision_mode=DECIMAL_PLACES, venue="binance")
    assert inst.tick_size == Decimal("0.01")
    assert inst.lot_size == Decimal("0.00001")
    filters = {f["filterType"]: f for f in market["info"]["filters"]}
    assert inst.min_notional == Decimal(filters["NOTIONAL"]["minNotional"])
    assert inst.maker_fee_e8 == 100_000 and inst.taker_fee_e8 == 100_000  # 0.1 %
    assert (inst.base, inst.quote, inst.venue) == ("BTC", "USDT", "binance")


def test_decimal_places_and_tick_size_modes_give_the_same_steps() -> None:
    raw = load_fixture("markets/binance.json")["ETH/USDT:USDT"]
    converted = binance_markets()["ETH/USDT:USDT"]
    without_info_raw = {k: v for k, v in raw.items() if k != "info"}
    without_info_conv = {k: v for k, v in converted.items() if k != "info"}
    a = instrument_from_market(without_info_raw, precision_mode=DECIMAL_PLACES)
    b = instrument_from_market(without_info_conv, precision_mode=TICK_SIZE)
    assert (a.tick_size, a.lot_size) == (b.tick_size, b.lot_size)
    assert a.maker_fee_e8 == 20_000 and a.taker_fee_e8 == 40_000


def test_backpack_tick_size_mode_market_without_fees_uses_defaults() -> None:
    market = backpack_markets()["DOGE/USDC"]
    inst = instrument_from_market(market, precision_mode=TICK_SIZE, default_maker_fee="0.0002")
    assert inst.tick_size == Decimal("0.00001")
    assert inst.lot_size == Decimal("1")
    assert inst.maker_fee_e8 == 20_000
    assert inst.min_notional == 0


def test_significant_digits_precision_is_refused_with_accepted_modes_named() -> None:
    with pytest.raises(InstrumentError, match="TICK_SIZE"):
        step_from_precision("price", 5, SIGNIFICANT_DIGITS)
    with pytest.raises(InstrumentError, match="whole number"):
        step_from_precision("price", 2.5, DECIMAL_PLACES)


@pytest.mark.asyncio
async def test_market_cache_loads_once_then_refreshes_after_ttl() -> None:
    ex = make_exchange("backpack", streaming=False, markets=backpack_markets())
    now = [0.0]
    cache = MarketCache(ex, ttl_s=60, clock=lambda: now[0])
    try:
        inst = await cache.instrument("ETH/USDC")
        assert inst.tick_size == Decimal("0.01") and inst.venue == "backpack"
        await cache.instrument("ADA/USDC:USDC")
        assert cache.loads == 1
        with pytest.raises(KeyError, match="SOL/USDC"):
            await cache.instrument("SOL/USDC")
    finally:
        await ex.close()
