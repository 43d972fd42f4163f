"""Backtest on real recorded Binance USD-M data (the first minutes of the shipped recording)."""

from __future__ import annotations

import itertools

import pytest

from connectors.binance_recording import BINANCE_USDM_BTCUSDT, RECORDINGS_DIR, iter_recording
from trading.backtest import Backtest
from trading.book import OrderBook
from trading.engine import Engine
from trading.events import BookDelta, BookSnapshot, TopOfBook, TradeTick
from trading.fillsim import SimulatedExchange
from trading.instruments import Instrument, Side
from trading.latency import ConstantLatency
from trading.risk import RiskLimits
from trading.strategies import build_strategy

MS = 1_000_000
PATH = RECORDINGS_DIR / "binance-usdm" / "btcusdt_20240808.gz"
INSTRUMENT = Instrument.create(
    symbol=BINANCE_USDM_BTCUSDT.symbol,
    tick_size=BINANCE_USDM_BTCUSDT.tick_size,
    lot_size=BINANCE_USDM_BTCUSDT.lot_size,
    min_notional=BINANCE_USDM_BTCUSDT.min_notional,
    maker_fee="0.0002",
    taker_fee="0.0005",
)


@pytest.fixture(scope="module")
def events():
    return list(itertools.islice(iter_recording([PATH], INSTRUMENT), 20_000))


def _run(events):
    strategy = build_strategy(
        "fixed_spread",
        {"order_amount": "0.002", "bid_spread": "0.00005", "ask_spread": "0.00005", "refresh_time": "0.1"},
        INSTRUMENT,
    )
    engine = Engine(
        strategy, INSTRUMENT, bot_id="rec", risk=RiskLimits(), initial_quote=INSTRUMENT.cash_units("100000")
    )
    exchange = SimulatedExchange(INSTRUMENT, latency=ConstantLatency(1 * MS, 1 * MS))
    return Backtest(engine, events, exchange, timer_interval_ns=100 * MS).run(), engine


def _market_at(events):
    """Per event time: the lowest sell print, the highest buy print, the highest bid and lowest ask
    shown (by the depth book after an event or by a ticker)."""
    book = OrderBook()
    seen: dict[int, dict[str, int]] = {}
    for e in events:
        kind = type(e)
        if kind is BookSnapshot:
            book.apply_snapshot(e)
        elif kind is BookDelta:
            book.apply_delta(e)
        at = seen.setdefault(e.ts, {"sell_print": 10**18, "buy_print": 0})
        if kind is TradeTick:
            if e.aggressor is Side.SELL:
                at["sell_print"] = min(at["sell_print"], e.price)
            else:
                at["buy_print"] = max(at["buy_print"], e.price)
        at["ask"] = min(at.get("ask", 10**18), book.best_ask() or 10**18)
        at["bid"] = max(at.get("bid", 0), book.best_bid() or 0)
        if kind is TopOfBook:  # the venue's ticker can run ahead of its depth stream
            at["ask"] = min(at["ask"], e.ask_price)
            at["bid"] = max(at["bid"], e.bid_price)
    return seen


def test_recorded_market_backtest_is_deterministic_and_fills_only_where_the_market_reached_us(events):
    first, engine = _run(events)
    second, _ = _run(events)
    assert first == second
    assert first.fill_count > 20 and first.orders_placed > 50
    assert engine.book_ok
    # Every fill happened at the venue 1 ms (the response latency) before we heard of it, on a
    # market event that reached our price: a print at or through it, or the opposite best at or
    # through it (depth book or ticker).
    market = _market_at(events)
    for fill in first.fills:
        at = market[fill.ts - 1 * MS]
        assert fill.liquidity.value == "maker"
        if fill.side is Side.BUY:
            assert at["sell_print"] <= fill.price or at["ask"] <= fill.price
        else:
            assert at["buy_print"] >= fill.price or at["bid"] >= fill.price
    assert first.pnl.fees == sum(f.fee for f in first.fills)
    assert 0.8 < first.quoting.quote_uptime <= 1.0
