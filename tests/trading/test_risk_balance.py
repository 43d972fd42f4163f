"""Pre-trade risk refuses (spot) an order the balance cannot pay for, with the figures; the
engine feeds it the balances when it is told they are real (issue 21: a 1,000,000 BTC order was
placed on an account holding about 1 BTC)."""

from __future__ import annotations

from trading.engine import Engine
from trading.events import BookSnapshot, OrderAccepted, OrderCancelled, PlaceOrder
from trading.instruments import Instrument, Side
from trading.risk import RiskLimits, RiskManager, RiskState
from trading.strategies import build_strategy

INST = Instrument.create(symbol="BTC/USDT", tick_size="0.01", lot_size="0.00001", taker_fee="0.001")
PERP = Instrument.create(symbol="BTC/USDT:USDT", tick_size="0.01", lot_size="0.00001")
PRICE = 6_000_000  # 60,000.00 USDT


def _state(cash: str | None, base: str | None = None, inst: Instrument = INST) -> RiskState:
    s = RiskState()
    s.mid2 = 2 * PRICE
    s.cash = None if cash is None else inst.cash_units(cash)
    s.base = None if base is None else inst.lots(base)
    return s


def test_a_bid_beyond_the_free_quote_balance_is_refused_with_cost_and_balance():
    rm = RiskManager(RiskLimits(), INST)
    order = PlaceOrder("c1", Side.BUY, PRICE, INST.lots("1000000"))
    d = rm.check(order, _state("10000", "1"))
    assert not d.allowed and d.code == "insufficient_balance"
    assert d.message == (
        "buying 1000000.0 BTC at 60000.00 costs 60060000000.00 USDT with fees; free USDT balance is 10000.00 USDT"
    )
    assert rm.check(PlaceOrder("c2", Side.BUY, PRICE, INST.lots("0.1")), _state("10000", "1")).allowed


def test_working_bids_hold_their_cost_and_asks_need_the_base():
    rm = RiskManager(RiskLimits(), INST)
    s = _state("10000", "0.5")
    s.working_buy_cost = rm.order_cost(PRICE, INST.lots("0.1"))  # 6,006 USDT held
    d = rm.check(PlaceOrder("c3", Side.BUY, PRICE, INST.lots("0.1")), s)
    assert not d.allowed and "free USDT balance is 3994.00 USDT (6006.00 USDT held by working bids)" in d.message
    d = rm.check(PlaceOrder("c4", Side.SELL, PRICE, INST.lots("0.6")), s)
    assert not d.allowed and d.code == "insufficient_balance"
    assert "value 36000.00 USDT" in d.message and "free BTC balance is 0.5 BTC" in d.message


def test_unknown_balances_and_derivatives_are_not_checked():
    assert RiskManager(RiskLimits(), INST).check(PlaceOrder("c5", Side.BUY, PRICE, 10**11), _state(None)).allowed
    perp = RiskManager(RiskLimits(), PERP)
    assert perp.check(PlaceOrder("c6", Side.BUY, PRICE, 10**11), _state("10", "0", PERP)).allowed


def _engine(balance_check: bool) -> Engine:
    strategy = build_strategy(
        "fixed_spread", {"order_amount": "1000000", "bid_spread": "0.001", "ask_spread": "0.001"}, INST
    )
    return Engine(
        strategy,
        INST,
        bot_id="b",
        risk=RiskLimits(),
        initial_base=INST.lots("1"),
        initial_quote=INST.cash_units("10000"),
        balance_check=balance_check,
    )


def test_the_engine_refuses_before_the_order_leaves_when_balances_are_real():
    book = BookSnapshot(1, bids=((PRICE - 1, 100_000),), asks=((PRICE + 1, 100_000),))
    checked = _engine(True)
    assert checked.on_event(book) == []
    rejects = [n for n in checked.notes if n.kind == "risk_reject"]
    assert rejects and rejects[0].code == "insufficient_balance"
    assert "free USDT balance is 10000.00 USDT" in rejects[0].message
    unchecked = _engine(False)  # a backtest's notional balances: as before
    assert len(unchecked.on_event(book)) == 2


def test_a_working_bid_holds_its_cost_until_it_is_cancelled():
    """Two bid levels of 0.1 BTC at about 60,000 on 10,000 USDT: the first holds 6,006 USDT (with
    the fee), so the second is refused; once the first is cancelled its funds are free again."""
    strategy = build_strategy(
        "fixed_spread", {"order_amount": "0.1", "bid_spread": "0.001", "ask_spread": "0.001", "order_levels": 2}, INST
    )
    engine = Engine(strategy, INST, bot_id="b", risk=RiskLimits(), initial_base=INST.lots("1"),
                    initial_quote=INST.cash_units("10000"), balance_check=True)  # fmt: skip
    book = BookSnapshot(1, bids=((PRICE - 1, 100_000),), asks=((PRICE + 1, 100_000),))
    bids = [c for c in engine.on_event(book) if type(c) is PlaceOrder and c.side is Side.BUY]
    assert len(bids) == 1
    (reject,) = [n for n in engine.notes if n.kind == "risk_reject"]
    assert reject.code == "insufficient_balance" and "USDT held by working bids" in reject.message
    engine.on_event(OrderAccepted(2, bids[0].client_order_id, "v1"))
    # the engine quotes again at once: the cancelled bid's funds pay for its successor (one level)
    again = engine.on_event(OrderCancelled(3, bids[0].client_order_id, "venue cancelled it"))
    assert [(type(c), c.side, c.price) for c in again] == [(PlaceOrder, Side.BUY, bids[0].price)]
