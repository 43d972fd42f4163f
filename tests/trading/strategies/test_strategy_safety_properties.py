"""Property: on any two-sided book, every strategy's bids are below the best ask and asks above the
best bid, prices are positive whole ticks, sizes whole lots meeting the minimum notional."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trading.events import Timer
from trading.strategies import STRATEGIES, build_strategy

from .support import INSTRUMENT, NS, make_book, make_ctx

PARAMS = {
    "fixed_spread": {"order_amount": "0.01", "bid_spread": "0", "ask_spread": "0", "order_levels": 3},
    "avellaneda_stoikov": {"order_amount": "0.01", "sigma": 50.0, "k": 0.5, "gamma": 0.5, "max_spread": "0.5"},
    "grid": {"order_amount": "0.01", "step": 1, "step_unit": "ticks", "levels": 3},
    "volatility_adaptive": {"order_amount": "0.01", "base_spread": "0", "min_spread": "0", "max_spread": "0"},
    "trend_following": {"order_amount": "0.01", "spread": "0", "max_skew": "0.5", "skew_strength": 100},
    "inventory_based": {"order_amount": "0.01", "spread": "0"},
    "auto": {"order_amount": "0.01", "grid": {"step": 1, "step_unit": "ticks"}},
    "avellaneda_stoikov/infinite": {
        "order_amount": "0.01",
        "sigma": 50.0,
        "k": 0.5,
        "gamma": 0.5,
        "infinite_horizon": True,
        "q_max": 5.0,
    },
}


@st.composite
def books(draw):
    best_bid = draw(st.integers(min_value=1, max_value=5_000_000))
    gap = draw(st.integers(min_value=1, max_value=50))
    bid_levels = draw(st.lists(st.integers(1, 500), min_size=1, max_size=5))
    ask_levels = draw(st.lists(st.integers(1, 500), min_size=1, max_size=5))
    bids = [(best_bid - i, q) for i, q in enumerate(bid_levels) if best_bid - i > 0]
    asks = [(best_bid + gap + i, q) for i, q in enumerate(ask_levels)]
    return bids, asks


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    book_levels=books(),
    position=st.integers(-500, 500),
    base=st.integers(0, 10_000),
    quote_share=st.integers(0, 100),
    steps=st.integers(1, 3),
)
def test_no_strategy_ever_crosses_the_book(book_levels, position, base, quote_share, steps) -> None:
    bids, asks = book_levels
    book = make_book(bids, asks)
    best_bid, best_ask = book.best_bid(), book.best_ask()
    quote_balance = quote_share * best_bid * 10**8 * 10
    assert {key.split("/")[0] for key in PARAMS} == set(STRATEGIES)
    for key, params in PARAMS.items():
        name = key.split("/")[0]
        strategy = build_strategy(name, params, INSTRUMENT)
        for step in range(steps):
            ctx = make_ctx(book, (step + 1) * NS, position=position, base_balance=base, quote_balance=quote_balance)
            qs = strategy.on_event(Timer((step + 1) * NS), ctx)
            if qs is None:
                continue
            for q in qs.bids:
                assert 0 < q.price < best_ask, (name, q, best_bid, best_ask)
            for q in qs.asks:
                assert q.price > best_bid, (name, q, best_bid, best_ask)
            for q in qs.all:
                assert isinstance(q.price, int) and isinstance(q.qty, int) and q.qty > 0
                assert INSTRUMENT.min_notional_ok(q.price, q.qty), (name, q)
