"""Hedged maker pricing, hedge on fill, safety under hedge-venue faults, attribution."""

from __future__ import annotations

from fractions import Fraction

import pytest

from trading.book import OrderBook
from trading.contracts import ContractSpec
from trading.events import BookSnapshot, TradeTick
from trading.fillsim import SimulatedExchange
from trading.hedge_backtest import HedgedBacktest, HedgeFaults
from trading.hedger import HedgedMaker
from trading.hedging import HedgeLegs, Leg, fees_e8, hedge_limit_price, price_side, validate_hedge_config
from trading.instruments import Instrument, Side
from trading.latency import ConstantLatency

MS = 1_000_000
SPOT = Instrument.create(symbol="X/USDT", tick_size="0.01", lot_size="0.0001", maker_fee="0", taker_fee="0.001")
PERP = Instrument.create(
    symbol="X/USDT:USDT", tick_size="0.01", lot_size="0.001", maker_fee="0.0002", taker_fee="0.0005"
)
LINEAR = ContractSpec.create(kind="linear", contract_size=1, settle="USDT")
LEGS = HedgeLegs(Leg(SPOT), Leg(PERP, LINEAR))


def config(**overrides):
    values = {"order_amount": "0.005", "min_profitability": "0.001", "retry_budget": 5, "stale_after_ms": 1000}
    values.update(overrides)
    cfg, errors = validate_hedge_config(LEGS, values)
    assert errors == {}
    return cfg


def book(bids, asks):
    b = OrderBook()
    b.apply_snapshot(BookSnapshot(0, tuple(bids), tuple(asks)))
    return b


def test_price_walks_the_hedge_depth_and_keeps_the_edge():
    cfg = config(hedge_slippage="0.0002", latency_buffer="0.0001")
    # 5 maker lots of 0.0001 = 0.0005 X... order of 0.005 X = 5 hedge lots of 0.001
    hedge = book([(10000, 2), (9990, 10)], [(10010, 3), (10030, 10)])
    bid = price_side(LEGS, cfg, hedge, Side.BUY, cfg.order_lots)
    ask = price_side(LEGS, cfg, hedge, Side.SELL, cfg.order_lots)
    assert bid.hedge_lots == ask.hedge_lots == 5
    vwap_bid = Fraction(2 * 10000 + 3 * 9990, 5)  # ticks of 0.01
    vwap_ask = Fraction(3 * 10010 + 2 * 10030, 5)
    edge = Fraction(13, 10_000)  # 0.001 + 0.0002 + 0.0001
    assert bid.maker_price == int(vwap_bid * (1 - edge))  # rounded down: never pay more
    assert ask.maker_price == -int(-vwap_ask * (1 + edge) // 1)  # rounded up
    assert bid.hedge_vwap(PERP) == vwap_bid / 100
    # a hedge book too thin for the size gives no quote on that side
    assert price_side(LEGS, cfg, book([(10000, 2)], [(10010, 3)]), Side.BUY, cfg.order_lots) is None
    # the hedge order's limit: the worst walked level, moved by the slack (0.05 %)
    assert hedge_limit_price(LEGS, cfg, hedge, Side.SELL, 5) == int(9990 * (1 - Fraction(5, 10_000)))


def test_spot_to_perp_hedges_in_contracts_and_perp_to_perp():
    ten = ContractSpec.create(kind="linear", contract_size="0.01", settle="USDT")
    perp10 = Instrument.create(symbol="X/USDT:USDT", tick_size="0.01", lot_size="1", taker_fee="0.0005")
    legs = HedgeLegs(Leg(SPOT), Leg(perp10, ten))  # a contract is 0.01 X
    assert legs.hedge_lots(legs.base(legs.maker, 300)) == 3  # 0.03 X -> 3 contracts
    assert legs.hedge_lots(-Fraction(3, 100)) == -3
    cfg, errors = validate_hedge_config(legs, {"order_amount": "0.005", "min_profitability": "0.001"})
    assert cfg is None and "is not a whole number of X/USDT:USDT contracts" in errors["order_amount"]
    assert "multiple of 0.01" in errors["order_amount"]
    perp_legs = HedgeLegs(Leg(PERP, LINEAR), Leg(perp10, ten))
    cfg, errors = validate_hedge_config(perp_legs, {"order_amount": "0.02", "min_profitability": "0.0007"})
    assert errors == {} and cfg.order_lots == 20


def test_bad_input_is_refused_by_field_value_and_what_is_accepted():
    other = Instrument.create(symbol="Y/USDT:USDT", tick_size="0.01", lot_size="0.001", taker_fee="0.0005")
    _, errors = validate_hedge_config(HedgeLegs(Leg(SPOT), Leg(other, LINEAR)), {"min_profitability": "0.001"})
    assert errors["hedge"].startswith("Y/USDT:USDT") and "does not list X/USDT" in errors["hedge"]
    _, errors = validate_hedge_config(LEGS, {"min_profitability": "0.0003"})
    assert fees_e8(LEGS) == 50_000
    assert "'0.0003' is below the two venues' fees" in errors["min_profitability"]
    assert "accepted: at least 0.0005" in errors["min_profitability"]
    inverse = ContractSpec.create(kind="inverse", contract_size=100, settle="X")
    coin = Instrument.create(symbol="X/USD:X", tick_size="0.1", lot_size="1", base="X", quote="USD")
    _, errors = validate_hedge_config(HedgeLegs(Leg(SPOT), Leg(coin, inverse)), {})
    assert (
        errors["hedge"].startswith("X/USD:X is an inverse perpetual") and "accepted: spot or linear" in errors["hedge"]
    )
    _, errors = validate_hedge_config(LEGS, {"max_unhedged": "0.0005", "hedge_mode": "market", "bogus": 1})
    assert "below the order amount" in errors["max_unhedged"]
    assert errors["hedge_mode"].startswith("'market' is not accepted; accepted: ioc")
    assert errors["bogus"].startswith("unknown parameter")


# --- the hedge venue's faults, on a small market ----------------------------------------------
def market(seconds: int = 10, *, hedge_bid: int = 10000, trades=((1_000, 50),)):
    """A quiet maker book with sellers hitting our bid (by default 50 lots at t = 1 s), and a
    hedge book refreshed every 100 ms."""
    maker = [BookSnapshot(0, ((9900, 100),), ((10100, 100),))]
    maker += [TradeTick(at * MS, 9990, qty, Side.SELL) for at, qty in trades]  # at our bid
    maker.append(BookSnapshot(seconds * 1_000 * MS, ((9900, 100),), ((10100, 100),)))
    hedge = [BookSnapshot(t * 100 * MS + 1, ((hedge_bid, 100),), ((hedge_bid + 10, 100),)) for t in range(seconds * 10)]
    return maker, hedge


def run(cfg, faults=None, *, seconds=10, **market_args):
    m = SimulatedExchange(SPOT, latency=ConstantLatency(5 * MS, 5 * MS))
    h = SimulatedExchange(PERP, latency=ConstantLatency(3 * MS, 3 * MS), venue_prefix="simh")
    bot = HedgedMaker(LEGS, cfg, m.book, h.book)
    maker, hedge = market(seconds, **market_args)
    result = HedgedBacktest(bot, maker, hedge, m, h, faults=faults).run()
    return bot, result


def codes(bot):
    return [n.code for n in bot.notes]


def test_a_maker_fill_is_hedged_at_once_and_attributed():
    bot, result = run(config())
    assert len(result.maker_fills) == 1 and result.maker_fills[0].qty == 50
    assert [f.qty for f in result.hedge_fills] == [5] and result.hedge_fills[0].side is Side.SELL
    # the hedge fill reaches us one hedge-venue round trip (3 + 3 ms) after the maker fill
    assert result.hedge_fills[0].ts - result.maker_fills[0].ts == 6 * MS
    assert bot.exposure() == 0 and result.exposure.max_abs == Fraction(5, 1000)
    (record,) = bot.ledger.records
    assert record.expected_hedge == Fraction(100) and record.hedge_vwap() == Fraction(100)
    assert record.slippage_bps() == 0.0 and record.latency_ns() == (6 * MS, 6 * MS)
    # bought 0.005 at 99.90 (priced 0.1 % under the hedge bid 100.00), sold at 100.00, taker fee 0.05 %
    bid = record.price
    assert record.realized_edge() == (100 - bid) * Fraction(5, 1000) - Fraction(5, 10_000) * 100 * Fraction(5, 1000)
    assert record.realized_edge() == record.expected_edge()
    assert "quoting_stopped" not in codes(bot)


def test_partial_maker_fills_are_hedged_in_whole_contracts_and_the_residue_carried():
    # 0.0034 then 0.0016 X of a 0.005 quote: 3 contracts of 0.001 at once (0.0004 carried, below
    # half a contract), then 2 when the rest fills
    bot, result = run(config(), trades=((1_000, 34), (1_500, 16)))
    assert [f.qty for f in result.maker_fills] == [34, 16]
    assert [f.qty for f in result.hedge_fills] == [3, 2]
    assert [h.ts - m.ts for m, h in zip(result.maker_fills, result.hedge_fills, strict=True)] == [6 * MS, 6 * MS]
    first, second = bot.ledger.records
    assert first.covered == Fraction(34, 10_000) and first.done_ts == result.hedge_fills[1].ts
    assert second.covered == Fraction(16, 10_000) and bot.exposure() == 0
    assert result.exposure.longest_above_ns == 6 * MS  # the 0.0004 residue is not above half a contract


def test_a_hedge_lost_while_the_hedge_feed_is_stale_is_retried_and_quoting_waits_for_a_fresh_book():
    faults = HedgeFaults(stale=((1_050 * MS, 3_000 * MS),), drop=((900 * MS, 1_100 * MS),))
    bot, result = run(config(hedge_timeout_ms=300, retry_backoff_ms=100, stale_after_ms=500), faults)
    seen = codes(bot)
    assert seen[:3] == ["hedge_timeout", "hedge_failed", "quoting_stopped"]
    assert bot.notes[2].exposure == "0.005" and "0.005 X" in bot.notes[2].message
    (hedge,) = result.hedge_fills  # the retry went out and filled while the feed was still stale
    assert 1_400 * MS < hedge.ts < 3_000 * MS and hedge.qty == 5
    resumed = next(n for n in bot.notes if n.code == "quoting_resumed")
    assert 3_000 * MS <= resumed.ts <= 3_200 * MS  # flat since the retry, but the book was stale
    assert bot.exposure() == 0 and bot.halted is None


def test_rejected_hedges_stop_quoting_report_the_exposure_and_are_retried():
    faults = HedgeFaults(reject=((900 * MS, 1_500 * MS),))
    bot, result = run(config(retry_backoff_ms=200), faults)
    seen = codes(bot)
    assert seen[:3] == ["hedge_failed", "quoting_stopped", "hedge_retry"]
    stopped = bot.notes[1]
    assert "429" in bot.notes[0].message and stopped.exposure == "0.005"
    assert seen.count("hedge_failed") >= 2 and "hedge_budget_exhausted" not in seen
    assert "quoting_resumed" in seen and bot.exposure() == 0 and bot.halted is None
    assert result.hedge_fills and result.hedge_fills[0].ts >= 1_500 * MS
    # no maker quote was placed while stopped
    stop_ts, resume_ts = stopped.ts, next(n.ts for n in bot.notes if n.code == "quoting_resumed")
    assert all(not (stop_ts < f.ts < resume_ts) for f in result.maker_fills)
    assert result.exposure.max_abs <= bot.config.max_unhedged_base


def test_an_unanswered_hedge_times_out_is_cancelled_and_retried():
    faults = HedgeFaults(drop=((900 * MS, 1_100 * MS),))
    bot, result = run(config(hedge_timeout_ms=300, retry_backoff_ms=100), faults)
    seen = codes(bot)
    assert seen[0] == "hedge_timeout"
    assert "hedge_failed" in seen and "unknown_order" in bot.notes[1].message
    assert "quoting_stopped" in seen and "quoting_resumed" in seen
    assert bot.exposure() == 0 and [f.qty for f in result.hedge_fills] == [5]


def test_exposure_held_longer_than_the_limit_stops_quoting():
    # the hedge is lost and its timeout (3 s) is longer than the exposure time limit (1 s)
    faults = HedgeFaults(drop=((900 * MS, 1_100 * MS),))
    bot, result = run(config(hedge_timeout_ms=3_000, max_unhedged_ms=1_000, retry_backoff_ms=100), faults)
    stop = next(n for n in bot.notes if n.code == "quoting_stopped")
    assert stop.message.startswith("unhedged for ") and stop.exposure == "0.005"
    assert 2_005 * MS <= stop.ts <= 2_200 * MS  # the fill reached us at 1.005 s
    assert [n.code for n in bot.notes][1:4] == ["hedge_timeout", "hedge_failed", "hedge_retry"]
    assert bot.exposure() == 0 and "quoting_resumed" in codes(bot) and bot.halted is None
    # the cancel of the lost hedge goes at 4.005 s; the retry fills after it
    assert [f.qty for f in result.hedge_fills] == [5] and result.hedge_fills[0].ts > 4_005 * MS


def test_an_aggressive_limit_hedge_that_does_not_fill_is_cancelled_at_the_timeout_and_retried():
    # the hedge bids fall 1 % away just as the maker fill arrives: the limit sell (0.05 % under
    # the walked bid) rests, is cancelled at the timeout, and the retry sells at the lower bid
    m = SimulatedExchange(SPOT, latency=ConstantLatency(5 * MS, 5 * MS))
    h = SimulatedExchange(PERP, latency=ConstantLatency(3 * MS, 3 * MS), venue_prefix="simh")
    bot = HedgedMaker(LEGS, config(hedge_mode="limit", hedge_timeout_ms=300, retry_backoff_ms=100), m.book, h.book)
    maker, _ = market(10)

    def bid(t):
        return 9900 if 1_006 <= t * 100 < 2_000 else 10000

    hedge = [BookSnapshot(t * 100 * MS + 1, ((bid(t), 100),), ((10010, 100),)) for t in range(100)]
    hedge.insert(11, BookSnapshot(1_006 * MS, ((9900, 100),), ((10010, 100),)))
    result = HedgedBacktest(bot, maker, hedge, m, h).run()
    seen = codes(bot)
    assert seen[:4] == ["hedge_timeout", "hedge_failed", "quoting_stopped", "hedge_retry"]
    assert "cancelled" in bot.notes[1].message and "5 lots not filled" in bot.notes[1].message
    (fill,) = result.hedge_fills
    # timeout seen at the 1.4 s timer, cancel answered at 1.406 s, retry at the first timer after
    # the 100 ms backoff (1.6 s), filled one round trip later
    assert fill.ts == 1_606 * MS and fill.price == 9900 and fill.qty == 5
    assert bot.exposure() == 0 and "quoting_resumed" in seen
    (record,) = bot.ledger.records
    assert record.slippage_bps() == 100.0 and record.realized_edge() < 0 < record.expected_edge()


def test_retry_budget_spent_leaves_the_exposure_reported_until_the_trader_resumes():
    faults = HedgeFaults(reject=((900 * MS, 9_000 * MS),))
    bot, result = run(config(retry_budget=2, retry_backoff_ms=100), faults)
    exhausted = [n for n in bot.notes if n.code == "hedge_budget_exhausted"]
    assert len(exhausted) == 1 and "0.005 X left unhedged" in exhausted[0].message
    assert bot.halted == "hedge_failed" and bot.exposure() == Fraction(5, 1000)
    assert not result.hedge_fills and "quoting_resumed" not in codes(bot)
    bot.resume(result.last_ts, "trader resumes")
    assert bot.halted is None and bot.notes[-1].code == "quoting_resumed"


def test_a_stale_hedge_book_stops_quoting_until_it_updates_again():
    m = SimulatedExchange(SPOT, latency=ConstantLatency(5 * MS, 5 * MS))
    h = SimulatedExchange(PERP, latency=ConstantLatency(3 * MS, 3 * MS), venue_prefix="simh")
    cfg = config()
    bot = HedgedMaker(LEGS, cfg, m.book, h.book)
    maker, hedge = market(10)
    maker = [e for e in maker if type(e) is not TradeTick]
    result = HedgedBacktest(bot, maker, hedge, m, h, faults=HedgeFaults(stale=((2_000 * MS, 5_000 * MS),))).run()
    stops = [n for n in bot.notes if n.code == "quoting_stopped"]
    assert stops and "book unsynced or not updated" in stops[0].message
    assert 3_000 * MS <= stops[0].ts <= 3_200 * MS  # stale_after 1 s after the last update seen
    resumed = [n for n in bot.notes if n.code == "quoting_resumed"]
    assert resumed and 5_000 * MS <= resumed[0].ts <= 5_200 * MS
    assert result.maker_stats.cancels_sent >= 2  # both quotes pulled at the stop


@pytest.mark.parametrize("mode", ["ioc", "limit"])
def test_spot_maker_usdm_hedge_on_the_shipped_recordings(mode):
    from dataclasses import replace

    from connectors.binance_recording import RECORDINGS, iter_recording
    from trading.events import TopOfBook
    from trading.instruments import fee_rate_e8

    spot, usdm = RECORDINGS["binance-spot-btcusdt"], RECORDINGS["binance-usdm-btcusdt"]
    mi = replace(spot.instrument, maker_fee_e8=0, taker_fee_e8=fee_rate_e8("taker_fee", "0.001"))
    hi = replace(usdm.instrument, maker_fee_e8=20_000, taker_fee_e8=50_000)
    legs = HedgeLegs(Leg(mi), Leg(hi, usdm.contract))
    cfg, errors = validate_hedge_config(
        legs, {"order_amount": "0.002", "min_profitability": "0.0005", "hedge_mode": mode, "max_unhedged": "0.004"}
    )
    assert errors == {}
    m = SimulatedExchange(mi, latency=ConstantLatency(10 * MS, 10 * MS))
    h = SimulatedExchange(hi, latency=ConstantLatency(4 * MS, 6 * MS), venue_prefix="simh")
    bot = HedgedMaker(legs, cfg, m.book, h.book)

    def events(rec, inst):
        return (e for e in iter_recording(rec.paths, inst) if type(e) is not TopOfBook)

    result = HedgedBacktest(bot, events(spot, mi), events(usdm, hi), m, h).run()
    assert len(result.maker_fills) >= 10 and result.hedge_fills
    hedge_rtt = 10 * MS
    # every maker fill is covered by its hedge within the hedge venue's round trip (the hedge is
    # sent when the maker fill arrives) plus the configured hedge timeout
    for record in bot.ledger.records:
        _first, done = record.latency_ns()
        assert done is not None and done <= hedge_rtt + cfg.hedge_timeout_ns, record
    assert result.exposure.max_abs <= cfg.max_unhedged_base
    assert result.exposure.longest_above_ns <= hedge_rtt + cfg.hedge_timeout_ns
    assert abs(bot.exposure()) <= legs.hedge.base_per_lot / 2
    assert sum(f.qty for f in result.hedge_fills) * hi.lot_size == sum(f.qty for f in result.maker_fills) * mi.lot_size
    assert "hedge_failed" not in [n.code for n in bot.notes]


def test_the_maker_legs_position_limit_stops_the_side_that_would_grow_it():
    """Hedged, the net stays flat while the maker leg grows with every fill: ``max_position``
    bounds the maker leg (0.005 = one quote): after one bid fill only the ask is quoted, so the
    sellers at t = 3 s find no bid; without the limit both fills happen."""
    trades = ((1_000, 50), (3_000, 50))
    _bot, free = run(config(), trades=trades)
    assert len(free.maker_fills) == 2
    bot, capped = run(config(max_position="0.005"), trades=trades)
    assert len(capped.maker_fills) == 1 and bot.maker_position == 50 and bot.exposure() == 0
    assert any(o.side is Side.SELL for o in bot.maker_orders.values())  # the side that reduces it stays
    assert not any(o.side is Side.BUY and not o.cancelling for o in bot.maker_orders.values())


def test_a_maker_leg_already_past_its_limit_quotes_the_side_that_reduces_it():
    """A maker leg past ``max_position`` (the limit lowered, or a take-over of a leg that grew
    before the limit applied): the bid stays off, the ask that brings it back is quoted."""
    cfg = config(max_position="0.005")
    maker = book([(9990, 100)], [(10010, 100)])
    hedge = book([(10000, 1000)], [(10005, 1000)])
    bot = HedgedMaker(LEGS, cfg, maker, hedge)
    bot.maker_position, bot.hedge_position = 200, -20  # 0.02 X long on the maker leg, hedged: 4x the limit
    bot.on_market("hedge", 1 * MS)
    out = bot.on_timer(2 * MS)
    placed = [c for _venue, c in out if type(c).__name__ == "PlaceOrder"]
    assert [c.side for c in placed] == [Side.SELL] and placed[0].qty == cfg.order_lots
    assert bot.exposure() == 0 and "quoting_stopped" not in codes(bot)


def test_a_maker_position_limit_below_one_quote_is_refused():
    _cfg, errors = validate_hedge_config(LEGS, {"order_amount": "0.005", "min_profitability": "0.001",
                                                "max_position": "0.001"})  # fmt: skip
    assert errors == {"max_position": "'0.001' is below the order amount 0.005; no quote could be placed; "
                      "accepted: at least 0.005"}  # fmt: skip
