"""Cross-venue arbitrage detection: fees, slippage, staleness/latency discount and sizing."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from trading.arbitrage import ArbitrageConfig, VenueBook, evaluate_pair, execute_ioc, find_opportunities
from trading.book import OrderBook
from trading.events import BookSnapshot
from trading.instruments import Instrument, Side

NOW = 1_700_000_000_000_000_000
INST = Instrument.create(symbol="BTC/USDT", tick_size="0.01", lot_size="0.0001", taker_fee="0.0005")
NO_FEE = Instrument.create(symbol="BTC/USDT", tick_size="0.01", lot_size="0.0001")


def book(bids, asks, inst=INST) -> OrderBook:
    """Levels as (price, qty) decimals strings."""
    b = OrderBook()
    b.apply_snapshot(
        BookSnapshot(
            ts=NOW,
            bids=tuple((inst.ticks(p), inst.lots(q)) for p, q in bids),
            asks=tuple((inst.ticks(p), inst.lots(q)) for p, q in asks),
        )
    )
    return b


def venue(name, bids, asks, inst=INST, ts=NOW, latency_ns=0, fee=None) -> VenueBook:
    return VenueBook(name, inst, book(bids, asks, inst), ts, taker_fee_e8=fee, latency_ns=latency_ns)


NO_DISCOUNT = ArbitrageConfig(discount_bps_per_second=Decimal(0))


def test_crossed_venues_without_fees_take_exactly_the_profitable_depth():
    cheap = venue("a", [("99", "1")], [("100", "1"), ("100.5", "1"), ("103", "5")], inst=NO_FEE)
    rich = venue("b", [("102", "1.5"), ("100.2", "2")], [("103", "1")], inst=NO_FEE)
    opp = evaluate_pair(cheap, rich, now_ns=NOW, config=NO_DISCOUNT)
    assert opp is not None
    # 1 @100 vs 102 (+2), 0.5 @100.5 vs 102 (+0.75), then 100.5 vs 100.2 loses: stop at 1.5
    assert opp.size == Decimal("1.5")
    assert opp.buy_cost == Decimal("150.25") and opp.sell_proceeds == Decimal("153")
    assert opp.net_profit == Decimal("2.75")
    assert opp.buy_price == Decimal("100") and opp.sell_price == Decimal("102")
    assert opp.slippage == Decimal("0.25")  # 0.5 walked one level up at 0.5 worse
    assert opp.net_profit == (opp.sell_price - opp.buy_price) * opp.size - opp.fees - opp.slippage - opp.discount


def test_taker_fees_on_both_legs_remove_thin_edges_and_shrink_size():
    # 5 bps each leg = ~10 bps; edge of 8 bps is not enough
    a = venue("a", [("99", "1")], [("100", "1")])
    b = venue("b", [("100.08", "1")], [("101", "1")])
    assert evaluate_pair(a, b, now_ns=NOW, config=NO_DISCOUNT) is None
    # edge of 20 bps on the first level clears fees; the second level (4 bps) does not
    a = venue("a", [("99", "1")], [("100", "1"), ("100.16", "3")])
    b = venue("b", [("100.2", "5")], [("101", "1")])
    opp = evaluate_pair(a, b, now_ns=NOW, config=NO_DISCOUNT)
    assert opp.size == Decimal("1")
    assert opp.fees == Decimal("100") * Decimal("0.0005") + Decimal("100.2") * Decimal("0.0005")
    assert opp.net_profit == Decimal("0.2") - opp.fees
    assert opp.net_edge_bps == opp.net_profit / Decimal(100) * 10_000


def test_staleness_and_latency_discount_the_edge_and_stale_books_are_ignored():
    a = venue("a", [("99", "1")], [("100", "1")], inst=NO_FEE, ts=NOW - 500_000_000, latency_ns=500_000_000)
    b = venue("b", [("100.1", "1")], [("101", "1")], inst=NO_FEE)
    config = ArbitrageConfig(discount_bps_per_second=Decimal(5))
    opp = evaluate_pair(a, b, now_ns=NOW, config=config)
    # buy leg: 1 s of age at 5 bps/s on 100 = 0.05; sell leg fresh
    assert opp.discount == Decimal("0.05")
    assert opp.net_profit == Decimal("0.05")
    assert opp.staleness_ns == 500_000_000 and opp.latency_ns == 500_000_000
    # 10 bps/s eats the whole edge
    assert evaluate_pair(a, b, now_ns=NOW, config=ArbitrageConfig(discount_bps_per_second=Decimal(10))) is None
    stale = ArbitrageConfig(max_staleness_ns=400_000_000, discount_bps_per_second=Decimal(0))
    assert evaluate_pair(a, b, now_ns=NOW, config=stale) is None


def test_min_profit_and_max_base_limit_what_is_reported():
    a = venue("a", [("99", "1")], [("100", "10")], inst=NO_FEE)
    b = venue("b", [("101", "10")], [("102", "1")], inst=NO_FEE)
    capped = evaluate_pair(a, b, now_ns=NOW, config=ArbitrageConfig(max_base=Decimal("0.25")))
    assert capped.size == Decimal("0.25") and capped.net_profit == Decimal("0.25")
    too_small = ArbitrageConfig(max_base=Decimal("0.25"), min_profit=Decimal("0.26"))
    assert evaluate_pair(a, b, now_ns=NOW, config=too_small) is None


def test_min_edge_stops_the_walk_at_the_first_level_below_it():
    a = venue("a", [("99", "1")], [("100", "1"), ("100.9", "1")], inst=NO_FEE)
    b = venue("b", [("101", "5")], [("102", "1")], inst=NO_FEE)
    assert evaluate_pair(a, b, now_ns=NOW, config=NO_DISCOUNT).size == Decimal("2")
    strict = ArbitrageConfig(min_edge_bps=Decimal(20), discount_bps_per_second=Decimal(0))
    assert evaluate_pair(a, b, now_ns=NOW, config=strict).size == Decimal("1")


def test_different_lot_sizes_round_down_to_a_size_both_venues_accept():
    coarse = Instrument.create(symbol="BTC/USDT", tick_size="0.1", lot_size="0.001")
    a = venue("a", [("99", "1")], [("100", "0.0055")], inst=NO_FEE)
    b = venue("b", [("101", "1")], [("102", "1")], inst=coarse)
    opp = evaluate_pair(a, b, now_ns=NOW, config=NO_DISCOUNT)
    assert opp.size == Decimal("0.005")
    assert opp.buy_lots == 50 and opp.sell_lots == 5


def test_find_opportunities_checks_every_direction_and_sorts_by_profit():
    a = venue("a", [("99", "1")], [("100", "1")], inst=NO_FEE)
    b = venue("b", [("101", "1")], [("102", "1")], inst=NO_FEE)
    c = venue("c", [("103", "1")], [("104", "1")], inst=NO_FEE)
    found = find_opportunities([a, b, c], now_ns=NOW, config=NO_DISCOUNT)
    assert (found[0].buy_venue, found[0].sell_venue, found[0].net_profit) == ("a", "c", Decimal(3))
    assert {(o.buy_venue, o.sell_venue, o.net_profit) for o in found[1:]} == {
        ("b", "c", Decimal(1)),
        ("a", "b", Decimal(1)),
    }


def test_no_opportunity_when_books_do_not_cross():
    a = venue("a", [("99", "1")], [("100", "1")])
    b = venue("b", [("99.5", "1")], [("100.5", "1")])
    assert find_opportunities([a, b], now_ns=NOW) == []


def test_paper_execution_on_unchanged_books_realizes_the_detected_profit():
    a = venue("a", [("99", "1")], [("100", "1"), ("100.5", "1")], inst=NO_FEE)
    b = venue("b", [("102", "1.5")], [("103", "1")], inst=NO_FEE)
    opp = evaluate_pair(a, b, now_ns=NOW, config=NO_DISCOUNT)
    assert opp.buy_limit == Decimal("100.5") and opp.sell_limit == Decimal("102")
    done = execute_ioc(opp, a, b)
    assert done.bought == done.sold == opp.size
    assert done.profit == opp.net_profit


def test_paper_execution_after_the_market_moved_fills_less_and_values_the_unhedged_rest():
    a = venue("a", [("99", "1")], [("100", "1"), ("100.5", "1")])
    b = venue("b", [("102", "1.5")], [("103", "1")])
    opp = evaluate_pair(a, b, now_ns=NOW, config=NO_DISCOUNT)
    # by the time the orders land, the sell venue's bid dropped to 101 for 0.5 and then 100
    b_later = venue("b", [("101", "0.5"), ("100", "5")], [("103", "1")])
    done = execute_ioc(opp, a, b_later)
    assert done.bought == Decimal("1.5") and done.sold == Decimal(0)
    fee = Decimal("0.0005")
    expected_cost = Decimal("150.25")
    unhedged = Decimal("1.5") * Decimal("99") * (1 - fee)
    assert done.profit == -expected_cost - expected_cost * fee + unhedged
    assert done.profit < opp.net_profit


LEVELS = st.lists(st.tuples(st.integers(1, 40), st.integers(1, 30)), min_size=1, max_size=6)


def _ladder(base: int, steps, sign: int):
    price, out = base, []
    for gap, qty in steps:
        price += sign * gap
        out.append((Decimal(price) / 100, Decimal(qty) / 10_000))
    return out


@settings(max_examples=60, deadline=None)
@given(ask_steps=LEVELS, bid_steps=LEVELS, shift=st.integers(-50, 400))
def test_detected_size_maximises_net_profit_and_the_identity_holds(ask_steps, bid_steps, shift):
    a = venue("a", [("1", "1")], _ladder(10_000_00, ask_steps, 1))
    b = venue("b", _ladder(10_000_00 + shift, bid_steps, -1), [("100000", "1")])
    opp = evaluate_pair(a, b, now_ns=NOW, config=NO_DISCOUNT)

    def net(lots: int) -> Decimal:
        filled_a, cost = a.book.cost_to_trade(Side.BUY, lots)
        filled_b, proceeds = b.book.cost_to_trade(Side.SELL, lots)
        if filled_a < lots or filled_b < lots:
            return Decimal("-Infinity")
        cost_q, proceeds_q = cost * Decimal("0.000001"), proceeds * Decimal("0.000001")
        return proceeds_q - cost_q - (cost_q + proceeds_q) * Decimal("0.0005")

    best = max(net(k) for k in range(1, 200))
    if opp is None:
        assert best <= 0
        return
    assert opp.net_profit == net(opp.buy_lots) == best
    assert opp.net_profit == (opp.sell_price - opp.buy_price) * opp.size - opp.fees - opp.slippage - opp.discount
