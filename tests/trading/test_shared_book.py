"""One book kept outside, read by many engines and simulated venues (a host's bots on one feed):
results identical to each of them applying every event to a book of its own."""

from __future__ import annotations

import random

from trading.book import OrderBook
from trading.engine import Engine
from trading.events import BookSnapshot, OrderAccepted, PlaceOrder, TimeInForce, Timer, TradeTick
from trading.fillsim import SimulatedExchange
from trading.instruments import Instrument, Side
from trading.queue import ProbQueueModel
from trading.risk import RiskLimits
from trading.strategies import build_strategy

MS = 1_000_000


def make_instrument() -> Instrument:
    return Instrument.create(
        symbol="BTC/USDT", tick_size="0.1", lot_size="0.001", maker_fee="-0.0001", taker_fee="0.0004"
    )


def market(seed: int, n: int = 400) -> list:
    """Random-walk 5-level snapshots with trades in between (some through the touch)."""
    rng = random.Random(seed)
    mid = 10_000
    out = []
    for i in range(n):
        ts = (i + 1) * 10 * MS
        mid += rng.choice((-2, -1, 0, 0, 1, 2))
        if rng.random() < 0.35:
            side = rng.choice((Side.BUY, Side.SELL))
            price = mid + rng.randint(-4, 4)
            out.append(TradeTick(ts=ts, price=price, qty=rng.randint(1, 80), aggressor=side, trade_id=f"t{i}"))
        else:
            bids = tuple((mid - 1 - k, rng.randint(1, 30)) for k in range(5))
            asks = tuple((mid + 1 + k, rng.randint(1, 30)) for k in range(5))
            out.append(BookSnapshot(ts=ts, bids=bids, asks=asks))
    return out


def engine(inst: Instrument, **kwargs) -> Engine:
    strategy = build_strategy(
        "fixed_spread",
        {"order_amount": "0.005", "bid_spread": "0.0002", "ask_spread": "0.0002", "order_levels": 2},
        inst,
    )
    return Engine(strategy, inst, bot_id="1", risk=RiskLimits.from_dict({}), initial_quote=10**12, **kwargs)


def run(events: list, *, shared: bool) -> tuple[list, list]:
    """Engine + venue in a loop; with ``shared`` both read one book applied outside them."""
    inst = make_instrument()
    book = OrderBook() if shared else None
    eng = engine(inst, book=book, external_book=True) if shared else engine(inst)
    venue = SimulatedExchange(inst, queue=ProbQueueModel())
    if shared:
        venue.use_shared_book(book)
    commands_seen, events_seen = [], []
    for ev in events:
        if shared and type(ev) is BookSnapshot:
            book.apply_snapshot(ev)
        answers = venue.on_market(ev)
        events_seen += answers
        commands = eng.on_event(ev)
        for answer in answers:
            commands += eng.on_event(answer)
        while commands:
            commands_seen += commands
            for cmd in commands:
                venue.submit(cmd, ev.ts)
            answers = venue.advance(ev.ts)
            events_seen += answers
            commands = [c for a in answers for c in eng.on_event(a)]
    return commands_seen, events_seen


def test_engine_and_venue_on_a_shared_book_match_each_keeping_its_own():
    for seed in (1, 2, 3):
        events = market(seed)
        own_commands, own_events = run(events, shared=False)
        shared_commands, shared_events = run(events, shared=True)
        assert any(type(e).__name__ == "OrderFilled" for e in own_events), "the scenario must fill something"
        assert shared_commands == own_commands
        assert shared_events == own_events


def test_an_external_book_is_not_changed_by_the_engine():
    inst = make_instrument()
    book = OrderBook()
    eng = engine(inst, book=book, external_book=True)
    snap = BookSnapshot(ts=MS, bids=((9_999, 5),), asks=((10_001, 5),))
    assert eng.on_event(snap) == []  # the owner has not applied it: nothing to quote on yet
    book.apply_snapshot(snap)
    commands = eng.on_event(BookSnapshot(ts=2 * MS, bids=((1, 1),), asks=((2, 1),)))  # ignored: book is outside
    assert commands and all(9_000 < c.price < 11_000 for c in commands)
    assert book.best_bid() == 9_999 and eng.on_event(Timer(3 * MS)) is not None


def test_a_taker_order_takes_from_a_private_copy_never_from_the_shared_book():
    inst = make_instrument()
    book = OrderBook()
    book.apply_snapshot(BookSnapshot(ts=MS, bids=((999, 5),), asks=((1001, 4), (1002, 6))))
    a, b = SimulatedExchange(inst), SimulatedExchange(inst)
    a.use_shared_book(book)
    b.use_shared_book(book)
    a.submit(PlaceOrder("ioc", Side.BUY, 1002, 7, TimeInForce.IOC), 2 * MS)
    filled = [(e.price, e.qty) for e in a.advance(2 * MS) if type(e).__name__ == "OrderFilled"]
    assert filled == [(1001, 4), (1002, 3)]
    assert book.top(5) == ([(999, 5)], [(1001, 4), (1002, 6)])  # the shared book is untouched
    assert a.book.top(5) == ([(999, 5)], [(1002, 3)])  # a's own view until the next book event
    b.submit(PlaceOrder("b-ioc", Side.BUY, 1001, 4, TimeInForce.IOC), 2 * MS)
    assert [(e.price, e.qty) for e in b.advance(2 * MS) if type(e).__name__ == "OrderFilled"] == [(1001, 4)]
    book.apply_snapshot(BookSnapshot(ts=3 * MS, bids=((999, 5),), asks=((1001, 2),)))
    a.on_market(BookSnapshot(ts=3 * MS, bids=(), asks=()))  # the event only says: look again
    assert a.book is book


def test_orders_restored_before_the_book_is_shared_keep_their_place_in_the_queue():
    inst = make_instrument()
    book = OrderBook()
    book.apply_snapshot(BookSnapshot(ts=MS, bids=((999, 5),), asks=((1001, 4),)))
    venue = SimulatedExchange(inst)
    venue.submit(PlaceOrder("r1", Side.BUY, 999, 2, TimeInForce.GTC), MS)  # restored on an empty book
    assert [type(e) for e in venue.advance(MS)] == [OrderAccepted]
    venue.use_shared_book(book)
    assert venue.queue_ahead("r1") == 0  # joined an empty level: first in line
    book.apply_snapshot(BookSnapshot(ts=2 * MS, bids=((999, 5),), asks=((998, 1),)))  # crossed through it
    fills = venue.on_market(BookSnapshot(ts=2 * MS, bids=(), asks=()))
    assert [(type(e).__name__, e.qty) for e in fills] == [("OrderFilled", 2)]
