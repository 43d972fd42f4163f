"""Fixed-spread ladder: prices, sizes, rounding, min spread, ceiling/floor, skew, ping-pong, refresh."""

from __future__ import annotations

from decimal import Decimal

import pytest

from trading.config import ConfigError
from trading.events import Liquidity, OrderFilled, Timer
from trading.instruments import FEE_SCALE, Instrument, Side
from trading.strategies import build_strategy, validate_params

from .support import INSTRUMENT, NS, make_ctx, prices, sizes, two_sided

BASE = {"order_amount": "0.01", "bid_spread": "0.001", "ask_spread": "0.001", "refresh_time": 0}


def strategy(**params):
    return build_strategy("fixed_spread", {**BASE, **params}, INSTRUMENT)


def fill(side: Side, order_id: str, ts: int = NS) -> OrderFilled:
    return OrderFilled(
        ts=ts,
        client_order_id=order_id,
        side=side,
        price=1,
        qty=1,
        leaves_qty=0,
        fee=0,
        liquidity=Liquidity.MAKER,
        trade_id=order_id,
    )


def test_ladder_prices_and_sizes_match_hand_computation() -> None:
    s = strategy(order_levels=3, level_spacing="0.0005", order_level_amount="0.005")
    qs = s.on_event(Timer(NS), make_ctx(two_sided(999_900, 1_000_100)))  # mid 1,000,000 ticks
    assert prices(qs.bids) == [999_000, 998_500, 998_000]
    assert prices(qs.asks) == [1_001_000, 1_001_500, 1_002_000]
    assert sizes(qs.bids) == sizes(qs.asks) == [10, 15, 20]
    assert [q.level for q in qs.bids] == [0, 1, 2]


def test_off_grid_prices_round_bids_down_and_asks_up() -> None:
    s = strategy()
    qs = s.on_event(Timer(NS), make_ctx(two_sided(999_900, 1_000_101)))  # mid 1,000,000.5
    # 1,000,000.5 * 0.999 = 999,000.4995 -> 999,000 ; 1,000,000.5 * 1.001 = 1,001,000.5005 -> 1,001,001
    assert prices(qs.bids) == [999_000]
    assert prices(qs.asks) == [1_001_001]


def test_minimum_spread_pulls_quotes_closer_to_mid() -> None:
    s = strategy(order_levels=3, level_spacing="0.0005", minimum_spread="0.0012")
    qs = s.on_event(Timer(NS), make_ctx(two_sided(999_900, 1_000_100)))
    assert prices(qs.bids) == [998_500, 998_000]
    assert prices(qs.asks) == [1_001_500, 1_002_000]


def test_ceiling_blocks_bids_above_and_floor_blocks_asks_below() -> None:
    s = strategy(order_levels=3, level_spacing="0.0005", price_ceiling="9985.00", price_floor="10015.00")
    qs = s.on_event(Timer(NS), make_ctx(two_sided(999_900, 1_000_100)))
    assert prices(qs.bids) == [998_500, 998_000]
    assert prices(qs.asks) == [1_001_500, 1_002_000]


def test_everything_filtered_pulls_all_quotes_with_reason() -> None:
    s = strategy(minimum_spread="0.01")
    qs = s.on_event(Timer(NS), make_ctx(two_sided(999_900, 1_000_100)))
    assert qs.all == ()
    assert qs.reason.startswith("pulled:")


def inventory_ctx(base_lots: int, quote_lots_worth: int, mid: int = 1_000_000):
    book = two_sided(mid - 100, mid + 100)
    return make_ctx(book, NS, base_balance=base_lots, quote_balance=quote_lots_worth * mid * FEE_SCALE)


def test_inventory_at_target_keeps_sizes_even() -> None:
    s = strategy(inventory_skew_enabled=True)
    qs = s.on_event(Timer(NS), inventory_ctx(100, 100))
    assert sizes(qs.bids) == [10] and sizes(qs.asks) == [10]


def test_long_inventory_shrinks_bids_and_grows_asks() -> None:
    s = strategy(inventory_skew_enabled=True)
    # total = 200 lots worth, target 100 lots, holding 105: deviation 5 of a 10-lot range
    qs = s.on_event(Timer(NS), inventory_ctx(105, 95))
    assert sizes(qs.bids) == [5] and sizes(qs.asks) == [15]


def test_short_inventory_grows_bids_and_stops_asks_at_range_edge() -> None:
    s = strategy(inventory_skew_enabled=True)
    qs = s.on_event(Timer(NS), inventory_ctx(85, 115))  # 15 lots short of target, range 10
    assert sizes(qs.bids) == [20]
    assert qs.asks == ()


def test_ping_pong_quotes_only_asks_after_a_buy_then_both_after_a_sell() -> None:
    s = strategy(ping_pong=True)
    book = two_sided(999_900, 1_000_100)
    s.on_event(fill(Side.BUY, "b1"), make_ctx(book))
    qs = s.on_event(Timer(2 * NS), make_ctx(book, 2 * NS))
    assert qs.bids == () and len(qs.asks) == 1
    assert "ping-pong" in qs.reason
    s.on_event(fill(Side.SELL, "s1"), make_ctx(book))
    qs = s.on_event(Timer(3 * NS), make_ctx(book, 3 * NS))
    assert len(qs.bids) == 1 and len(qs.asks) == 1


def test_ping_pong_counts_partial_fills_of_one_order_once() -> None:
    s = strategy(ping_pong=True)
    book = two_sided(999_900, 1_000_100)
    s.on_event(fill(Side.SELL, "s1"), make_ctx(book))
    s.on_event(fill(Side.SELL, "s1"), make_ctx(book))
    s.on_event(fill(Side.BUY, "b1"), make_ctx(book))
    qs = s.on_event(Timer(2 * NS), make_ctx(book, 2 * NS))
    assert len(qs.bids) == 1 and len(qs.asks) == 1


def test_refresh_time_leaves_quotes_alone_until_due_or_after_a_fill() -> None:
    s = strategy(refresh_time=10)
    book = two_sided(999_900, 1_000_100)
    assert s.on_event(Timer(NS), make_ctx(book, NS)) is not None
    assert s.on_event(Timer(5 * NS), make_ctx(book, 5 * NS)) is None
    assert s.on_event(Timer(11 * NS), make_ctx(book, 11 * NS)) is not None
    s.on_event(fill(Side.BUY, "b1", 12 * NS), make_ctx(book, 12 * NS))
    assert s.on_event(Timer(13 * NS), make_ctx(book, 13 * NS)) is not None


def test_price_move_inside_minimum_spread_requotes_before_refresh_time() -> None:
    s = strategy(refresh_time=60, minimum_spread="0.0005")
    assert s.on_event(Timer(NS), make_ctx(two_sided(999_900, 1_000_100), NS)) is not None  # bid 999,000
    # a small move keeps the bid 0.05%+ away: quotes stay
    assert s.on_event(Timer(2 * NS), make_ctx(two_sided(999_700, 999_900), 2 * NS)) is None
    # mid 999,400: bid 999,000 now only 0.04% away -> requote around the new mid
    qs = s.on_event(Timer(3 * NS), make_ctx(two_sided(999_300, 999_500), 3 * NS))
    assert qs is not None and prices(qs.bids) == [998_400]


def test_quotes_return_as_soon_as_a_one_sided_book_recovers() -> None:
    from .support import make_book

    s = strategy(refresh_time=60)
    assert s.on_event(Timer(NS), make_ctx(two_sided(999_900, 1_000_100), NS)).all
    assert s.on_event(Timer(2 * NS), make_ctx(make_book([(999_900, 5)], []), 2 * NS)).all == ()
    qs = s.on_event(Timer(3 * NS), make_ctx(two_sided(999_900, 1_000_100), 3 * NS))
    assert qs is not None and len(qs.bids) == 1 and len(qs.asks) == 1


def test_engine_settings_are_exposed_on_the_config() -> None:
    s = strategy(refresh_tolerance="0.002", max_order_age=60, hanging_orders=True)
    assert s.config.refresh_tolerance == Decimal("0.002")
    assert s.config.max_order_age == Decimal(60)
    assert s.config.hanging_orders is True


def test_quotes_below_min_notional_are_skipped() -> None:
    inst = Instrument.create(symbol="BTC/USDT", tick_size="0.01", lot_size="0.001", min_notional="20")
    s = build_strategy("fixed_spread", {**BASE, "order_amount": "0.002"}, inst)  # about 20 quote
    qs = s.on_event(Timer(NS), make_ctx(two_sided(999_900, 1_000_100), instrument=inst))
    assert qs.bids == ()  # 0.002 * 9990 = 19.98 < 20
    assert prices(qs.asks) == [1_001_000]  # 0.002 * 10010 = 20.02


def test_amount_below_one_lot_is_a_config_error_naming_the_field() -> None:
    with pytest.raises(ConfigError) as info:
        strategy(order_amount="0.0004")
    assert "order_amount" in info.value.errors
    assert "lot size 0.001" in info.value.errors["order_amount"]


def test_every_bad_fixed_spread_field_is_named() -> None:
    with pytest.raises(ConfigError) as info:
        validate_params("fixed_spread", {"bid_spread": "-0.1", "order_levels": 0, "ping_pong": "yes", "spread": 1})
    assert set(info.value.errors) == {"order_amount", "bid_spread", "order_levels", "ping_pong", "spread"}


def test_one_sided_book_pulls_quotes() -> None:
    from .support import make_book

    s = strategy()
    qs = s.on_event(Timer(NS), make_ctx(make_book([(999_900, 5)], [])))
    assert qs.all == () and "no bid or no ask" in qs.reason
