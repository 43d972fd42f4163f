"""Pre-trade checks and running limits, each with a reason a trader can read."""

from __future__ import annotations

from decimal import Decimal

import pytest

from trading.config import ConfigError
from trading.events import CancelOrder, PlaceOrder, TimeInForce
from trading.instruments import Instrument, Side
from trading.risk import DAY_NS, RiskAction, RiskLimits, RiskManager, RiskState

SEC = 1_000_000_000
INST = Instrument.create(symbol="BTC/USDT", tick_size="0.01", lot_size="0.1", min_notional="5")
MID2 = 2 * 5_000_000  # mid 50,000.00 USDT


def manager(**limits) -> RiskManager:
    return RiskManager(RiskLimits.from_dict(limits), INST)


def state(position: int = 0, *, ts: int = 0, action=RiskAction.NONE, open_orders: int = 0) -> RiskState:
    s = RiskState()
    s.ts, s.position, s.mid2, s.action, s.open_orders = ts, position, MID2, action, open_orders
    return s


def buy(qty: int, price: int = 4_999_000, **kw) -> PlaceOrder:
    return PlaceOrder("c", Side.BUY, price, qty, **kw)


def sell(qty: int, price: int = 5_001_000, **kw) -> PlaceOrder:
    return PlaceOrder("c", Side.SELL, price, qty, **kw)


def test_limits_parse_and_name_every_bad_field():
    with pytest.raises(ConfigError) as err:
        RiskLimits.from_dict({"max_open_orders": 0, "price_band": 2, "bogus": 1, "on_drawdown": "explode"})
    assert set(err.value.errors) == {"max_open_orders", "price_band", "bogus", "on_drawdown"}
    assert "accepted" in err.value.errors["on_drawdown"]


def test_max_position_base_message_names_sizes_and_limit():
    rm = manager(max_position_base="2.0")
    d = rm.check(buy(5), state(position=16))
    assert not d.allowed and d.code == "max_position_base"
    assert d.message == "max_position_base: buying 0.5 BTC would take position to 2.1 BTC, limit 2.0 BTC"


def test_orders_that_reduce_position_pass_position_limits():
    rm = manager(max_position_base="1.0")
    assert rm.check(sell(5), state(position=30)).allowed


def test_working_orders_count_toward_worst_case_position():
    rm = manager(max_position_base="1.0")
    s = state()
    s.working_buy = 8
    d = rm.check(buy(3), s)
    assert d.code == "max_position_base" and "already working" in d.message


def test_max_position_quote():
    rm = manager(max_position_quote="1000")
    d = rm.check(buy(1), state())  # 0.1 BTC at 49,990 = 4,999 USDT
    assert d.code == "max_position_quote"
    assert "limit 1000.00 USDT" in d.message


def test_order_size_bounds_and_min_notional():
    rm = manager(min_order_size="0.2", max_order_size="1")
    assert rm.check(buy(1), state()).code == "min_order_size"
    assert rm.check(buy(11), state()).code == "max_order_size"
    tiny = RiskManager(
        RiskLimits(), Instrument.create(symbol="X/USDT", tick_size="0.01", lot_size="1", min_notional="5")
    )
    d = tiny.check(PlaceOrder("c", Side.BUY, 100, 1), RiskState())
    assert d.code == "min_notional" and "below the venue minimum 5 USDT" in d.message


def test_price_band_around_mid():
    rm = manager(price_band=0.01)
    d = rm.check(buy(1, price=4_900_000), state())
    assert d.code == "price_band"
    assert "2.00% from mid" in d.message


def test_max_open_orders():
    rm = manager(max_open_orders=3)
    assert rm.check(buy(1), state(open_orders=3)).code == "max_open_orders"


def test_order_rate_limit_uses_a_sliding_window():
    rm = manager(order_rate_limit=2, order_rate_window_s=1.0)
    assert rm.check(buy(1), state(ts=0)).allowed
    assert rm.check(buy(1), state(ts=SEC // 2)).allowed
    d = rm.check(buy(1), state(ts=SEC // 2 + 1))
    assert d.code == "order_rate" and "limit 2" in d.message
    assert rm.check(buy(1), state(ts=SEC + 1)).allowed


def test_reduce_only_refuses_orders_that_grow_position():
    rm = manager()
    d = rm.check(buy(1), state(position=5, action=RiskAction.REDUCE_ONLY))
    assert d.code == "reduce_only" and "would not reduce position 0.5 BTC" in d.message
    assert rm.check(sell(5), state(position=5, action=RiskAction.REDUCE_ONLY)).allowed
    assert rm.check(sell(6), state(position=5, action=RiskAction.REDUCE_ONLY)).code == "reduce_only"


def test_pause_blocks_new_orders_but_not_reducing_flatten_or_cancels():
    rm = manager()
    assert rm.check(buy(1), state(action=RiskAction.PAUSE)).code == "paused"
    flatten = sell(5, time_in_force=TimeInForce.IOC, reason="flatten", reduce_only=True)
    assert rm.check(flatten, state(position=5, action=RiskAction.FLATTEN)).allowed
    assert rm.check(CancelOrder("c"), state(action=RiskAction.KILL)).allowed


def test_kill_switch_refuses_everything_new():
    rm = manager(kill_switch=True)
    assert rm.check(sell(5, reduce_only=True), state(position=5)).code == "kill_switch"
    status = rm.evaluate(0, 0, None, None, MID2)
    assert status.action == RiskAction.KILL


def test_daily_loss_latches_until_utc_midnight_then_resets():
    rm = manager(daily_loss_limit="100", on_daily_loss="flatten")
    units = INST.cash_units
    day0 = 10 * DAY_NS + 3600 * SEC
    assert rm.evaluate(day0, units("10000"), None, None, None).action == RiskAction.NONE
    s = rm.evaluate(day0 + SEC, units("9899"), None, None, None)
    assert s.action == RiskAction.FLATTEN and s.codes == ("daily_loss",)
    assert "resets at UTC midnight" in s.breaches[0].message
    # recovering during the day does not clear it
    assert rm.evaluate(day0 + 2 * SEC, units("9950"), None, None, None).action == RiskAction.FLATTEN
    # the next UTC day starts from the equity then
    assert rm.evaluate(11 * DAY_NS, units("9950"), None, None, None).action == RiskAction.NONE
    assert rm.evaluate(11 * DAY_NS + SEC, units("9900"), None, None, None).action == RiskAction.NONE


def test_trailing_drawdown_from_peak_equity_latches_until_reset():
    rm = manager(max_drawdown="50")
    u = INST.cash_units
    rm.evaluate(0, u("1000"), None, None, None)
    rm.evaluate(1, u("1200"), None, None, None)  # new peak
    assert rm.evaluate(2, u("1160"), None, None, None).action == RiskAction.NONE
    s = rm.evaluate(3, u("1150"), None, None, None)
    assert s.action == RiskAction.PAUSE and "from peak equity 1200.00 USDT" in s.breaches[0].message
    assert rm.evaluate(4, u("1190"), None, None, None).action == RiskAction.PAUSE
    rm.reset_latches(u("1190"))
    assert rm.evaluate(5, u("1190"), None, None, None).action == RiskAction.NONE


def test_drawdown_as_fraction_of_peak():
    rm = manager(max_drawdown_fraction=0.1)
    rm.evaluate(0, 1000, None, None, None)
    assert rm.evaluate(1, 901, None, None, None).action == RiskAction.NONE
    assert rm.evaluate(2, 900, None, None, None).codes == ("drawdown",)


def test_inventory_deviation_triggers_configured_action():
    rm = manager(max_inventory_deviation=0.2, on_inventory_deviation="widen", widen_multiplier=3)
    assert rm.evaluate(0, None, 0.65, 0.5, MID2).action == RiskAction.NONE
    s = rm.evaluate(1, None, 0.75, 0.5, MID2)
    assert s.action == RiskAction.WIDEN and s.spread_multiplier == 3
    assert "75.0% of value, target 50.0%" in s.breaches[0].message


def test_volatility_pause_on_fast_move_and_release_after_window():
    rm = manager(volatility_pause=0.01, volatility_window_s=10)
    assert rm.evaluate(0, None, None, None, 20000).action == RiskAction.NONE
    s = rm.evaluate(SEC, None, None, None, 20300)  # +1.5%
    assert s.action == RiskAction.PAUSE and s.codes == ("volatility",)
    assert rm.evaluate(5 * SEC, None, None, None, 20300).action == RiskAction.PAUSE
    assert rm.evaluate(12 * SEC, None, None, None, 20300).action == RiskAction.NONE


def test_most_severe_action_wins_and_status_object_is_stable():
    rm = manager(max_inventory_deviation=0.1, volatility_pause=0.01)
    s1 = rm.evaluate(0, None, 0.9, 0.5, 20000)
    assert s1.action == RiskAction.REDUCE_ONLY
    s2 = rm.evaluate(1, None, 0.9, 0.5, 20000)
    assert s2 is s1
    s3 = rm.evaluate(2, None, 0.9, 0.5, 21000)
    assert s3.action == RiskAction.PAUSE and set(s3.codes) == {"inventory_deviation", "volatility"}


def test_min_order_size_rounds_up_to_whole_lots():
    rm = RiskManager(RiskLimits(min_order_size=Decimal("0.15")), INST)
    assert rm.min_qty == 2


def test_a_portfolio_net_block_refuses_that_side_only_even_reduce_only_and_lifts():
    rm = manager()
    rm.net_block = (Side.BUY, "net BTC 12 beyond the limit of 10")
    refused = rm.check(buy(1), state(position=-3))
    assert not refused.allowed and refused.code == "portfolio_net_limit"
    assert refused.message == "net BTC 12 beyond the limit of 10"
    # reducing this bot's short would still grow the owner's net long: refused too
    assert not rm.check(buy(1, reduce_only=True), state(position=-3)).allowed
    assert rm.check(sell(1), state(position=-3)).allowed
    rm.net_block = None
    assert rm.check(buy(1), state(position=-3)).allowed
