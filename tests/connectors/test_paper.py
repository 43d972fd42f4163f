"""PaperGateway: orders filled by the shared fill simulator, exact paper balances, funds checks."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from connectors.paper import PaperAccount, PaperGateway
from trading.clock import ManualClock
from trading.events import (
    AmendOrder,
    BookSnapshot,
    CancelOrder,
    Liquidity,
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    PlaceOrder,
    TimeInForce,
    TradeTick,
)
from trading.instruments import Instrument, Side
from trading.ports import OrderGateway

BTC = Instrument.create(symbol="BTC/USDT", tick_size="0.01", lot_size="0.00001", maker_fee="0.001", taker_fee="0.002")
T0 = 1_700_000_000_000_000_000


def book(ts: int = T0) -> BookSnapshot:
    # 64000.00 / 64000.10, one BTC each side
    return BookSnapshot(ts=ts, bids=((6_400_000, 100_000),), asks=((6_400_010, 100_000),), sequence=1)


def drain(gw: PaperGateway) -> list:
    out = []
    q = gw._queue._queue  # the gateway's event queue, read without waiting
    while not q.empty():
        out.append(q.get_nowait())
    return out


def make(balances: dict[str, str]) -> tuple[PaperGateway, ManualClock]:
    clock = ManualClock(T0)
    gw = PaperGateway(BTC, None, {k: Decimal(v) for k, v in balances.items()}, clock=clock)
    gw.on_market(book())
    return gw, clock


async def test_paper_gateway_is_an_order_gateway() -> None:
    gw, _ = make({"USDT": "1000"})
    assert isinstance(gw, OrderGateway)


async def test_buy_needing_more_quote_than_free_is_rejected_naming_both_amounts() -> None:
    gw, _ = make({"USDT": "100"})
    # 0.01 BTC at 64000 = 640 USDT (+ taker fee reserve) > 100
    await gw.place("BTC/USDT", PlaceOrder("p-1", Side.BUY, 6_400_000, 1000))
    (event,) = drain(gw)
    assert isinstance(event, OrderRejected) and event.code == "insufficient_balance"
    assert "641.28 USDT" in event.reason and "100 free" in event.reason
    assert gw.sim.open_orders() == []


async def test_sell_needing_more_base_than_held_is_rejected() -> None:
    gw, _ = make({"USDT": "0", "BTC": "0.005"})
    await gw.place("BTC/USDT", PlaceOrder("p-1", Side.SELL, 6_400_010, 1000))
    (event,) = drain(gw)
    assert isinstance(event, OrderRejected) and "0.01 BTC" in event.reason


async def test_working_orders_reserve_funds_so_a_second_buy_cannot_double_spend() -> None:
    gw, _ = make({"USDT": "1000"})
    await gw.place("BTC/USDT", PlaceOrder("p-1", Side.BUY, 6_400_000, 1000))
    await gw.place("BTC/USDT", PlaceOrder("p-2", Side.BUY, 6_399_000, 1000))
    events = drain(gw)
    assert isinstance(events[0], OrderAccepted)
    assert isinstance(events[1], OrderRejected) and events[1].client_order_id == "p-2"
    # cancelling the first frees the funds again
    await gw.cancel("BTC/USDT", CancelOrder("p-1"))
    assert any(isinstance(e, OrderCancelled) for e in drain(gw))
    await gw.place("BTC/USDT", PlaceOrder("p-3", Side.BUY, 6_399_000, 1000))
    assert isinstance(drain(gw)[0], OrderAccepted)


async def test_maker_fill_moves_balances_exactly_by_notional_and_fee() -> None:
    gw, clock = make({"USDT": "1000", "BTC": "0"})
    await gw.place("BTC/USDT", PlaceOrder("p-1", Side.BUY, 6_400_000, 1000, TimeInForce.POST_ONLY))
    clock.advance(1_000_000)
    # a seller trades through our bid: we are filled in full as maker
    gw.on_market(TradeTick(ts=clock.now_ns(), price=6_399_000, qty=5000, aggressor=Side.SELL, trade_id="x1"))
    events = drain(gw)
    fill = next(e for e in events if isinstance(e, OrderFilled))
    assert (fill.qty, fill.leaves_qty, fill.liquidity) == (1000, 0, Liquidity.MAKER)
    balances = await gw.fetch_balances()
    # 0.01 BTC for 640 USDT, maker fee 0.1 % = 0.64 USDT
    assert balances == {"USDT": Decimal("1000") - Decimal("640") - Decimal("0.64"), "BTC": Decimal("0.01")}
    (report,) = await gw.fetch_my_trades("BTC/USDT")
    assert report.fee == Decimal("0.64") and report.fee_currency == "USDT" and report.maker
    assert gw.free("USDT") == Decimal("359.36")  # nothing reserved any more


async def test_post_only_that_would_cross_is_rejected_by_the_simulator_and_releases_funds() -> None:
    gw, _ = make({"USDT": "1000"})
    await gw.place("BTC/USDT", PlaceOrder("p-1", Side.BUY, 6_400_010, 1000, TimeInForce.POST_ONLY))
    (event,) = drain(gw)
    assert isinstance(event, OrderRejected) and event.code == "post_only_would_cross"
    assert gw.free("USDT") == Decimal("1000")


async def test_amend_that_needs_more_than_free_is_rejected_and_keeps_the_order() -> None:
    gw, _ = make({"USDT": "700"})
    await gw.place("BTC/USDT", PlaceOrder("p-1", Side.BUY, 6_400_000, 1000))
    drain(gw)
    await gw.amend("BTC/USDT", AmendOrder("p-1", 6_400_000, 2000))
    (event,) = drain(gw)
    assert isinstance(event, OrderRejected) and event.code == "insufficient_balance"
    assert [o.client_order_id for o in await gw.fetch_open_orders("BTC/USDT")] == ["p-1"]


async def test_wrong_symbol_is_refused_with_the_traded_symbol_named() -> None:
    gw, _ = make({"USDT": "700"})
    with pytest.raises(ValueError, match="BTC/USDT"):
        await gw.place("ETH/USDT", PlaceOrder("p-1", Side.BUY, 1, 1))


async def test_gateway_pumps_an_event_source_and_emits_on_events() -> None:
    clock = ManualClock(T0)

    async def source():
        yield book()
        await asyncio.sleep(0.05)
        yield TradeTick(ts=T0 + 10, price=6_399_000, qty=5000, aggressor=Side.SELL, trade_id="x1")

    gw = PaperGateway(BTC, source(), {"USDT": Decimal("1000")}, clock=clock, advance_interval_s=0.01)
    await gw.connect()
    await asyncio.sleep(0.01)
    await gw.place("BTC/USDT", PlaceOrder("p-1", Side.BUY, 6_400_000, 1000))
    got = []

    async def collect() -> None:
        async for e in gw.events():
            got.append(e)
            if isinstance(e, OrderFilled):
                return

    await asyncio.wait_for(collect(), 2)
    await gw.close()
    assert [type(e).__name__ for e in got] == ["OrderAccepted", "OrderFilled"]
    assert gw.market_events == 2


async def test_two_bots_on_one_paper_account_share_balances_and_reservations() -> None:
    eth = Instrument.create(symbol="ETH/USDT", tick_size="0.01", lot_size="0.001", maker_fee="0.001", taker_fee="0.001")
    account = PaperAccount({"USDT": Decimal("1000")})
    clock = ManualClock(T0)
    btc_bot = PaperGateway(BTC, None, account, clock=clock)
    eth_bot = PaperGateway(eth, None, account, clock=clock)
    btc_bot.on_market(book())
    eth_bot.on_market(BookSnapshot(ts=T0, bids=((300_000, 10_000),), asks=((300_010, 10_000),), sequence=1))
    # the BTC bot reserves 640 + 1.28 fee reserve of the 1000 USDT ...
    await btc_bot.place("BTC/USDT", PlaceOrder("b-1", Side.BUY, 6_400_000, 1000))
    assert account.free("USDT") == Decimal("358.72")
    # ... so the ETH bot cannot also spend 600 of it
    await eth_bot.place("ETH/USDT", PlaceOrder("e-1", Side.BUY, 300_000, 200))
    (rejected,) = drain(eth_bot)
    assert isinstance(rejected, OrderRejected) and "358.72 free" in rejected.reason
    assert btc_bot.balances is eth_bot.balances is account.balances
