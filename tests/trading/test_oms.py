"""Client order ids, working-order bookkeeping races, and quote diffing."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trading.events import (
    AmendOrder,
    CancelOrder,
    Liquidity,
    OrderAccepted,
    OrderAmended,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    PlaceOrder,
)
from trading.instruments import Side
from trading.oms import (
    ClientOrderIds,
    OrderBookkeeper,
    OrderState,
    WorkingOrder,
    diff_quotes,
    to_base36,
)
from trading.strategy import Quote, QuoteSet

SEC = 1_000_000_000


def fill(cid: str, qty: int, leaves: int, trade_id: str, side: Side = Side.BUY, price: int = 100, ts: int = 5):
    return OrderFilled(ts, cid, side, price, qty, leaves, 0, Liquidity.MAKER, trade_id)


def placed(book: OrderBookkeeper, cid: str, side: Side = Side.BUY, price: int = 100, qty: int = 10, ts: int = 0):
    return book.on_place_sent(PlaceOrder(cid, side, price, qty), ts)


# --- client order ids ------------------------------------------------------------------------
def test_client_ids_are_unique_prefixed_and_venue_safe():
    ids = ClientOrderIds("mm42")
    seen = {ids.next() for _ in range(5000)}
    assert len(seen) == 5000
    for cid in seen:
        assert cid.startswith("mm42-")
        assert len(cid) <= 32
        assert re.fullmatch(r"[A-Za-z0-9_-]+", cid)
        assert re.fullmatch(r"^[\.A-Z\:/a-z0-9_-]{1,36}$", cid)  # Binance's rule


def test_client_ids_resume_from_persisted_sequence_without_reuse():
    first = ClientOrderIds("mm1")
    issued = [first.next() for _ in range(100)]
    resumed = ClientOrderIds("mm1", start=first.sequence)
    assert resumed.next() not in issued
    assert ClientOrderIds("mm1", start=0).next() == issued[0]  # deterministic


def test_client_ids_skip_past_an_id_seen_elsewhere_and_never_go_back():
    ids = ClientOrderIds("mm7", start=3)
    ids.skip_past("mm7-z")  # 35: an order the venue holds that the resumed sequence did not know
    assert ids.next() == "mm7-10"
    ids.skip_past("mm7-5")  # earlier: nothing changes
    ids.skip_past("mm8-zz")  # another prefix
    ids.skip_past("mm7-not base36!")
    assert ids.next() == "mm7-11"


def test_client_ids_reject_bad_prefix_with_readable_error():
    with pytest.raises(ValueError, match="prefix"):
        ClientOrderIds("mm 1")
    with pytest.raises(ValueError, match="at most"):
        ClientOrderIds("x" * 30)


def test_base36_round_trip():
    for n in (0, 1, 35, 36, 12345678):
        assert int(to_base36(n), 36) == n


# --- bookkeeping races ------------------------------------------------------------------------
def test_accept_then_full_fill_removes_order():
    book = OrderBookkeeper()
    placed(book, "a")
    book.apply(OrderAccepted(1, "a", "v1"))
    assert book.orders["a"].status is OrderState.OPEN
    assert book.orders["a"].venue_order_id == "v1"
    assert book.apply(fill("a", 10, 0, "t1")) is not None
    assert "a" not in book.orders


def test_fill_racing_cancel_keeps_filled_quantity_and_cancel_completes_rest():
    book = OrderBookkeeper()
    placed(book, "a")
    book.apply(OrderAccepted(1, "a"))
    book.on_cancel_sent("a", 2)
    got = book.apply(fill("a", 4, 6, "t1"))
    assert got is not None and got.qty == 4
    assert book.orders["a"].filled == 4
    assert book.orders["a"].status is OrderState.PENDING_CANCEL
    book.apply(OrderCancelled(3, "a"))
    assert "a" not in book.orders


def test_partial_fill_then_cancel_is_clean():
    book = OrderBookkeeper()
    placed(book, "a")
    book.apply(OrderAccepted(1, "a"))
    book.apply(fill("a", 3, 7, "t1"))
    assert book.orders["a"].remaining == 7
    book.apply(OrderCancelled(2, "a"))
    assert book.orders == {}
    assert not book.notes


def test_cancel_ack_for_already_filled_order_is_noted_not_crashing():
    book = OrderBookkeeper()
    placed(book, "a")
    book.on_cancel_sent("a", 1)
    book.apply(fill("a", 10, 0, "t1"))
    book.apply(OrderCancelled(2, "a"))
    assert book.orders == {}
    assert [n.code for n in book.notes] == ["cancel_ack_unknown"]


def test_duplicate_fill_trade_id_is_ignored():
    book = OrderBookkeeper()
    placed(book, "a")
    assert book.apply(fill("a", 3, 7, "t1")) is not None
    assert book.apply(fill("a", 3, 7, "t1")) is None
    assert book.orders["a"].filled == 3
    assert book.notes[-1].code == "duplicate_fill"


def test_fill_for_unknown_order_is_returned_for_booking_and_noted():
    book = OrderBookkeeper()
    got = book.apply(fill("ghost", 2, 0, "t9"))
    assert got is not None and got.qty == 2
    assert book.notes[-1].code == "fill_unknown_order"


def test_events_for_unknown_ids_are_recorded():
    book = OrderBookkeeper()
    book.apply(OrderAccepted(1, "x"))
    book.apply(OrderRejected(1, "y", "insufficient balance"))
    book.apply(OrderAmended(1, "z", 100, 1))
    assert [n.code for n in book.notes] == ["accept_unknown", "reject_unknown", "amend_ack_unknown"]


def test_reject_of_new_order_removes_it_and_keeps_reason():
    book = OrderBookkeeper()
    placed(book, "a")
    book.apply(OrderRejected(1, "a", "post-only would cross"))
    assert "a" not in book.orders
    assert "post-only would cross" in book.notes[-1].message


def test_refused_cancel_reopens_order():
    book = OrderBookkeeper()
    placed(book, "a")
    book.apply(OrderAccepted(1, "a"))
    book.on_cancel_sent("a", 2)
    book.apply(OrderRejected(3, "a", "cancel rejected"))
    assert book.orders["a"].status is OrderState.OPEN


def test_amend_ack_updates_price_and_size():
    book = OrderBookkeeper()
    placed(book, "a")
    book.apply(OrderAccepted(1, "a"))
    book.apply(OrderAmended(2, "a", 99, 12))
    assert (book.orders["a"].price, book.orders["a"].qty) == (99, 12)


# --- diffing ----------------------------------------------------------------------------------
def wo(cid: str, side: Side, price: int, qty: int = 10, ts: int = 0, status=OrderState.OPEN, filled: int = 0):
    return WorkingOrder(cid, side, price, qty, ts, status=status, filled=filled)


def qs(bids=(), asks=(), qty: int = 10) -> QuoteSet:
    return QuoteSet(
        tuple(Quote(Side.BUY, p, qty, i) for i, p in enumerate(bids)),
        tuple(Quote(Side.SELL, p, qty, i) for i, p in enumerate(asks)),
    )


def run_diff(desired, working, ts=0, tol=0.0, age=0, **kw):
    ids = ClientOrderIds("t")
    return diff_quotes(desired, working, ts, tol, age, next_client_id=ids.next, **kw)


def test_identical_quotes_produce_no_commands():
    working = [wo("b0", Side.BUY, 99), wo("a0", Side.SELL, 101)]
    assert run_diff(qs([99], [101]), working) == []


def test_price_within_tolerance_is_kept():
    working = [wo("b0", Side.BUY, 9990), wo("a0", Side.SELL, 10010)]
    assert run_diff(qs([9995], [10005]), working, tol=0.001) == []


def test_price_outside_tolerance_is_replaced_cancel_first():
    working = [wo("b0", Side.BUY, 9900)]
    cmds = run_diff(qs([9995]), working, tol=0.001)
    assert isinstance(cmds[0], CancelOrder) and cmds[0].client_order_id == "b0"
    assert isinstance(cmds[1], PlaceOrder) and cmds[1].price == 9995 and cmds[1].side is Side.BUY


def test_max_age_forces_refresh_even_at_same_price():
    working = [wo("b0", Side.BUY, 99, ts=0)]
    cmds = run_diff(qs([99]), working, ts=31 * SEC, age=30 * SEC)
    assert [type(c) for c in cmds] == [CancelOrder, PlaceOrder]
    assert cmds[0].reason == "max_age"
    assert run_diff(qs([99]), working, ts=29 * SEC, age=30 * SEC) == []


def test_pending_cancel_orders_are_not_recancelled_and_not_counted():
    working = [wo("b0", Side.BUY, 99, status=OrderState.PENDING_CANCEL)]
    cmds = run_diff(qs([99]), working)
    assert [type(c) for c in cmds] == [PlaceOrder]
    assert run_diff(qs(), working) == []


def test_pending_new_orders_count_as_working():
    working = [wo("b0", Side.BUY, 99, status=OrderState.PENDING_NEW)]
    assert run_diff(qs([99]), working) == []


def test_size_change_replaces_unless_within_size_tolerance():
    working = [wo("b0", Side.BUY, 99, qty=10, filled=1)]
    assert [type(c) for c in run_diff(qs([99]), working)] == [CancelOrder, PlaceOrder]
    assert run_diff(qs([99]), working, size_tolerance=0.1) == []


def test_ladder_shift_by_one_level_moves_only_one_order():
    working = [wo(f"b{i}", Side.BUY, 100 - i) for i in range(5)]
    cmds = run_diff(qs([101, 100, 99, 98, 97]), working)
    assert [(type(c).__name__, getattr(c, "price", None)) for c in cmds] == [
        ("CancelOrder", None),
        ("PlaceOrder", 101),
    ]
    assert cmds[0].client_order_id == "b4"


def test_places_come_best_level_first_bid_before_ask_with_deterministic_ids():
    cmds = run_diff(qs([99, 98], [101, 102]), [])
    assert [(c.side, c.price, c.client_order_id) for c in cmds] == [
        (Side.BUY, 99, "t-0"),
        (Side.SELL, 101, "t-1"),
        (Side.BUY, 98, "t-2"),
        (Side.SELL, 102, "t-3"),
    ]


def test_amend_replaces_cancel_and_place_when_enabled():
    working = [wo("b0", Side.BUY, 90)]
    cmds = run_diff(qs([99]), working, allow_amend=True)
    assert cmds == [AmendOrder("b0", 99, 10, reason="requote")]


prices = st.integers(min_value=1000, max_value=1100)


def max_matching(quotes, orders, tol) -> int:
    """Brute-force maximum number of orders that can stand in for distinct quotes (Kuhn)."""
    match: dict[int, int] = {}

    def try_quote(qi, seen):
        for oi, o in enumerate(orders):
            if oi in seen or abs(o.price - quotes[qi].price) > tol * quotes[qi].price:
                continue
            seen.add(oi)
            if oi not in match or try_quote(match[oi], seen):
                match[oi] = qi
                return True
        return False

    return sum(try_quote(qi, set()) for qi in range(len(quotes)))


@settings(max_examples=300, deadline=None)
@given(
    desired_bids=st.lists(prices, max_size=6, unique=True),
    desired_asks=st.lists(prices, max_size=6, unique=True),
    work_bids=st.lists(prices, max_size=6),
    work_asks=st.lists(prices, max_size=6),
    tol=st.sampled_from([0.0, 0.001, 0.01, 0.03]),
)
def test_diff_is_minimal_and_leaves_one_live_order_per_quote(desired_bids, desired_asks, work_bids, work_asks, tol):
    desired = qs(sorted(desired_bids, reverse=True), sorted(desired_asks))
    working = [wo(f"b{i}", Side.BUY, p) for i, p in enumerate(work_bids)]
    working += [wo(f"a{i}", Side.SELL, p) for i, p in enumerate(work_asks)]
    cmds = run_diff(desired, working, tol=tol)
    kinds = [type(c) for c in cmds]
    assert kinds == sorted(kinds, key=lambda k: k is PlaceOrder)  # cancels first
    cancelled = {c.client_order_id for c in cmds if isinstance(c, CancelOrder)}
    assert len(cancelled) == kinds.count(CancelOrder)  # nothing cancelled twice
    for side, quotes in ((Side.BUY, desired.bids), (Side.SELL, desired.asks)):
        side_orders = [o for o in working if o.side is side]
        kept = [o for o in side_orders if o.client_order_id not in cancelled]
        new = [c for c in cmds if isinstance(c, PlaceOrder) and c.side is side]
        assert len(kept) + len(new) == len(quotes)  # exactly one live order per quote
        assert not {c.price for c in new} & {o.price for o in kept}  # never two orders at one price
        best = max_matching(quotes, side_orders, tol)
        assert len(kept) == best  # kept as many as any assignment could
        assert len(new) == len(quotes) - best


@settings(max_examples=100, deadline=None)
@given(bids=st.lists(prices, max_size=6, unique=True), asks=st.lists(prices, max_size=6, unique=True))
def test_rediffing_after_applying_commands_is_a_no_op(bids, asks):
    desired = qs(sorted(bids, reverse=True), sorted(asks))
    book = OrderBookkeeper()
    ids = ClientOrderIds("t")
    for p in (1000, 1050, 1100):
        placed(book, f"old{p}", Side.BUY, p)
    cmds = diff_quotes(desired, book.orders.values(), 0, 0.0, 0, next_client_id=ids.next)
    book.on_commands_sent(cmds, 0)
    again = diff_quotes(desired, book.orders.values(), 0, 0.0, 0, next_client_id=ids.next)
    assert again == []


def test_placement_reject_arriving_after_our_cancel_removes_the_order():
    book = OrderBookkeeper()
    placed(book, "a")
    book.on_cancel_sent("a", 1)
    book.apply(OrderRejected(2, "a", "post_only_would_cross", code="post_only_would_cross"))
    assert "a" not in book.orders
    book.apply(OrderRejected(3, "a", "unknown order 'a'", code="unknown_order"))  # the cancel's answer
    assert book.orders == {}
    # the cancel's refusal is expected (the order was done when it arrived): counted, not noted
    assert [n.code for n in book.notes] == ["order_rejected"] and book.late_rejects == 1
    # a reject for an id never ours (or long done) is still noted
    book.apply(OrderRejected(4, "zz", "unknown order 'zz'", code="unknown_order"))
    assert [n.code for n in book.notes] == ["order_rejected", "reject_unknown"] and book.late_rejects == 1


def test_a_cancel_refused_because_the_order_filled_meanwhile_is_counted_not_noted():
    book = OrderBookkeeper()
    placed(book, "b")
    book.on_cancel_sent("b", 1)
    assert book.apply(fill("b", 10, 0, "t1", ts=2)) is not None  # filled in full before the cancel arrived
    book.apply(OrderRejected(3, "b", "already filled", code="unknown_order"))
    assert book.orders == {} and book.late_rejects == 1
    assert "reject_unknown" not in [n.code for n in book.notes]


def test_cancel_refused_because_venue_no_longer_has_the_order_removes_it_and_late_fill_is_booked():
    book = OrderBookkeeper()
    placed(book, "a")
    book.apply(OrderAccepted(1, "a"))
    book.on_cancel_sent("a", 2)
    book.apply(OrderRejected(3, "a", "already filled", code="already_filled"))
    assert "a" not in book.orders
    assert book.apply(fill("a", 10, 0, "t7")) is not None


def test_no_new_order_is_placed_where_a_kept_order_already_rests():
    # the order at 1000 is within tolerance of the 1005 quote, but a quote at exactly 1000
    # also wants an order: the kept one serves 1000 and 1005 gets the new order
    working = [wo("b0", Side.BUY, 1000)]
    cmds = run_diff(qs([1005, 1000]), working, tol=0.01)
    assert [(type(c).__name__, c.price) for c in cmds] == [("PlaceOrder", 1005)]


def test_order_in_doubt_keeps_counting_as_working_until_the_venue_answers():
    book = OrderBookkeeper()
    placed(book, "mm1-1")
    book.apply(OrderRejected(1, "mm1-1", "no answer from the venue", code="unknown_state"))
    assert "mm1-1" in book.orders  # never re-placed as a duplicate while in doubt
    book.apply(OrderAccepted(2, "mm1-1", "v1"))
    assert book.orders["mm1-1"].accepted and book.orders["mm1-1"].status is OrderState.OPEN
