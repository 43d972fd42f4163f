"""When the engine may skip a quote diff (timers, acknowledgements) and when it must not."""

from __future__ import annotations

import trading.engine_orders
from tests.trading.test_engine import SEC, accept_all, delta, engine, snap
from trading.events import OrderAccepted, PlaceOrder, Timer
from trading.instruments import Side


def _count_diffs(monkeypatch) -> list[int]:
    calls: list[int] = []
    real = trading.engine_orders.diff_quotes

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(trading.engine_orders, "diff_quotes", counting)
    return calls


def test_settled_quotes_are_not_diffed_again_on_timers_or_acknowledgements(monkeypatch) -> None:
    e = engine()
    calls = _count_diffs(monkeypatch)
    cmds = e.on_event(snap())
    assert len(cmds) == 4 and len(calls) == 1
    accept_all(e, cmds, 2)  # acknowledgements change nothing a diff reads
    for i in range(10):
        assert e.on_event(Timer(3 + i * SEC // 10)) == []
    assert len(calls) == 1
    # A change at the touch diffs again, as before.
    moved = e.on_event(delta(2 * SEC, 2, bids=[(5_000_001, 5)]))
    assert len(calls) == 2 and any(isinstance(c, PlaceOrder) and c.side is Side.BUY for c in moved)


def test_a_quote_refused_by_pre_trade_risk_is_retried_on_timers(monkeypatch) -> None:
    e = engine(limits={"order_rate_limit": 2, "order_rate_window_s": 1.0})
    calls = _count_diffs(monkeypatch)
    first = e.on_event(snap(ts=1))
    assert [(c.side, c.price) for c in first] == [(Side.BUY, 4_999_999), (Side.SELL, 5_000_011)]
    accept_all(e, first, 2)
    # Still within the rate window: the timer diffs again (the last diff left quotes unsent)
    # and risk refuses again.
    assert e.on_event(Timer(SEC // 2)) == []
    assert len(calls) >= 2
    # Past the window the timer places what was refused.
    second = e.on_event(Timer(SEC + 10))
    assert [(c.side, c.price) for c in second if isinstance(c, PlaceOrder)] == [
        (Side.BUY, 4_999_998),
        (Side.SELL, 5_000_012),
    ]
    accept_all(e, second, SEC + 20)
    settled = len(calls)
    assert e.on_event(Timer(2 * SEC)) == []
    assert e.on_event(OrderAccepted(2 * SEC + 1, second[0].client_order_id, "v")) == []
    assert len(calls) == settled


def test_widened_quotes_follow_the_mid_on_timers(monkeypatch) -> None:
    """Widening depends on the mid itself, so timers keep diffing while it is in force."""
    e = engine(limits={"volatility_pause": 0.0000001, "on_volatility": "widen", "volatility_window_s": 100})
    calls = _count_diffs(monkeypatch)
    accept_all(e, e.on_event(snap(ts=1)), 2)
    e.on_event(delta(3, 2, bids=[(5_000_005, 5)]))  # the mid moves: volatility breach, widen
    before = len(calls)
    e.on_event(Timer(SEC))
    e.on_event(Timer(2 * SEC))
    assert len(calls) == before + 2
