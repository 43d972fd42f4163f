"""Strategies on perpetuals: inventory in contracts (Avellaneda-Stoikov, inventory_based) and
the funding skew before a funding time, with worked numbers."""

from __future__ import annotations

import math

import pytest

from tests.trading.strategies.support import NS, make_ctx, two_sided
from trading.config import ConfigError
from trading.events import Timer
from trading.instruments import Instrument
from trading.strategies import build_strategy, describe_strategy
from trading.strategies.avellaneda_stoikov import finite_horizon_quotes

# Binance USD-M BTCUSDT: tick 0.1 USDT, lot 0.001 contracts of 1 BTC
PERP = Instrument.create(symbol="BTC/USDT:USDT", tick_size="0.1", lot_size="0.001", min_notional="5")
SPOT = Instrument.create(symbol="BTC/USDT", tick_size="0.1", lot_size="0.001", min_notional="5")
MIN = 60 * NS
AS = {"order_amount": "0.002", "sigma": 8.0, "k": 0.1, "risk_aversion": 1.0, "horizon": 3600.0}


def quotes(name, params, *, position=0, rate=None, funding_in=None, ts=NS):
    strategy = build_strategy(name, params, PERP)
    ctx = make_ctx(two_sided(599_995, 600_005), ts, position=position, instrument=PERP)  # mid 60,000.0
    ctx.funding_rate = rate
    ctx.next_funding_ts = None if funding_in is None else ts + funding_in
    out = strategy.on_event(Timer(ts), ctx)
    return strategy, [q.price for q in out.bids], [q.price for q in out.asks], [q.qty for q in out.bids + out.asks]


def test_avellaneda_stoikov_leans_against_a_position_in_contracts():
    # long 0.004 contracts with order_amount 0.002: q = 2; gamma = 1 / 60,000; tau = 3,600 s
    # r = 60,000 - 2 x (1/60,000) x 8^2 x 3,600 = 59,992.32
    strategy, bids, asks, sizes = quotes("avellaneda_stoikov", AS, position=4)
    assert strategy.reservation_price == pytest.approx(59_992.32)
    _, spread, bid, ask = finite_horizon_quotes(60_000.0, 2.0, 1 / 60_000, 8.0, 0.1, 3600.0)
    assert spread == pytest.approx(3.84 + 120_000 * math.log(1 + 1 / 6_000))  # 23.838...
    assert bids == [math.floor(bid * 10)] and asks == [math.ceil(ask * 10)] and sizes == [2, 2]
    _, flat_bids, flat_asks, _ = quotes("avellaneda_stoikov", AS)
    # 7.68 USDT = 76.8 ticks lower; each side rounds on its own (bids down, asks up)
    assert {flat_bids[0] - bids[0], flat_asks[0] - asks[0]} <= {76, 77}


def test_funding_skew_shifts_both_quotes_against_paying_funding_inside_the_window():
    params = {**AS, "funding_skew": 1.0, "funding_skew_minutes": 30.0}
    _, bids, asks, _ = quotes("avellaneda_stoikov", params)
    # rate 0.01 %, funding in 10 minutes: longs pay 60,000 x 0.0001 = 6 USDT = 60 ticks: quotes down 60
    strategy, b, a, _ = quotes("avellaneda_stoikov", params, rate=0.0001, funding_in=10 * MIN)
    assert (b[0] - bids[0], a[0] - asks[0]) == (-60, -60)
    assert "funding skew -6 USDT (rate 0.0100%, funding in 600s)" in strategy.last_quotes.reason
    # a negative rate (shorts pay): up, twice as far at -0.02 %
    _, b, a, _ = quotes("avellaneda_stoikov", params, rate=-0.0002, funding_in=10 * MIN)
    assert (b[0] - bids[0], a[0] - asks[0]) == (120, 120)
    # outside the window, after the funding time, with no rate, or with the skew off: unchanged
    for kw in ({"rate": 0.0001, "funding_in": 31 * MIN}, {"rate": 0.0001, "funding_in": -1}, {"funding_in": MIN}):
        assert quotes("avellaneda_stoikov", params, **kw)[1:3] == (bids, asks)
    assert quotes("avellaneda_stoikov", AS, rate=0.0001, funding_in=MIN)[1:3] == (bids, asks)


def test_inventory_based_on_a_perpetual_skews_by_position_in_contracts_and_funding():
    params = {"order_amount": "0.01", "spread": "0.001", "position_range": "0.05", "size_skew": "0.8"}
    # long 0.025 of a 0.05 range: deviation +0.5; asks 10 x 1.4 = 14 lots, bids 10 x 0.6 = 6 lots,
    # the bid 0.1 % + 0.1 % x 1 x 0.5 = 0.15 % off the mid: floor(600,000 x 0.9985) = 599,100 ticks
    strategy, bids, asks, sizes = quotes("inventory_based", params, position=25)
    assert (bids, asks, sizes) == ([599_100], [600_600], [6, 14])
    assert "deviation +0.50" in strategy.last_quotes.reason
    # short 0.05 or more: full skew the other way
    _, bids, asks, sizes = quotes("inventory_based", params, position=-80)
    assert (bids, asks, sizes) == ([599_400], [601_200], [18, 2])
    # funding skew 2 at 0.01 %: the ladder's centre moves 2 x 0.0001 x 600,000 = 120 ticks down
    skewed = {**params, "funding_skew": 2.0, "funding_skew_minutes": 15.0}
    _, bids, asks, _ = quotes("inventory_based", skewed, position=25, rate=0.0001, funding_in=5 * MIN)
    assert (bids, asks) == ([math.floor(599_880 * 0.9985)], [math.ceil(599_880 * 1.001)])  # 598,980 / 600,480


def test_perpetual_parameters_are_validated_by_name():
    with pytest.raises(ConfigError) as exc:
        build_strategy("inventory_based", {"order_amount": "0.01"}, PERP)
    assert "position_range" in exc.value.errors and "BTC/USDT:USDT" in exc.value.errors["position_range"]
    with pytest.raises(ConfigError) as exc:
        build_strategy("inventory_based", {"order_amount": "0.01", "position_range": "0.05"}, SPOT)
    assert "spot" in exc.value.errors["position_range"]
    with pytest.raises(ConfigError) as exc:
        build_strategy("avellaneda_stoikov", {**AS, "funding_skew": -1, "funding_skew_minutes": 0}, PERP)
    assert set(exc.value.errors) == {"funding_skew", "funding_skew_minutes"}
    with pytest.raises(ConfigError, match="funding_skew_minutes"):
        build_strategy("inventory_based", {"order_amount": "0.01", "funding_skew_minutes": 500}, SPOT)
    schema = describe_strategy("avellaneda_stoikov")
    props = schema.get("properties", schema)
    text = repr(props)
    assert "funding_skew" in text and "funding_skew_minutes" in text
