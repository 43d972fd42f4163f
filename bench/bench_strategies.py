"""Strategy cost per market event, and a sanity run of every strategy on real recorded data.

Replays the recorded Binance spot BTCUSDT streams (about 11 minutes: depth diffs, book tickers,
trades) through ``trading.book.OrderBook`` and each strategy in ``trading.strategies``. The book
is rebuilt per strategy; a book-only pass is timed first and subtracted, so the figure is the
strategy's own cost per event (``on_event`` including its signal updates). Every QuoteSet is
checked against the book at that moment: a bid at or above the best ask, or an ask at or below
the best bid, is counted as a violation (must be 0). The run also prints what the online
estimators found on real data (Avellaneda–Stoikov sigma, k, A; auto's regimes).

Run: ``.venv/bin/python -m bench.bench_strategies`` (``--repeat N``, default 1; ``--limit N`` events).
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from connectors.binance_recording import RECORDINGS, iter_recording
from trading.book import OrderBook
from trading.events import BookDelta, BookSnapshot
from trading.strategies import STRATEGIES, build_strategy
from trading.strategy import StrategyContext

PARAMS = {
    "fixed_spread": {"order_amount": "0.001", "order_levels": 3, "refresh_time": 1, "inventory_skew_enabled": True},
    "avellaneda_stoikov": {"order_amount": "0.001", "gamma": 0.01, "horizon": 300.0, "intensity_window": 300.0},
    "grid": {"order_amount": "0.001", "levels": 5, "step": "0.0005"},
    "volatility_adaptive": {"order_amount": "0.001", "levels": 3},
    "trend_following": {"order_amount": "0.001", "levels": 3},
    "inventory_based": {"order_amount": "0.001", "levels": 3},
    "auto": {"order_amount": "0.001", "liquidity_low": "0.5", "volatility_high": 0.0002, "trend_strong": 0.0005},
}


def load_events(limit: int | None):
    recording = RECORDINGS["binance-spot-btcusdt"]
    events = []
    for event in iter_recording(recording.paths, recording.instrument):
        events.append(event)
        if limit and len(events) >= limit:
            break
    return recording.instrument, events


def replay(instrument, events, strategy=None):
    """Replay events through a fresh book (and the strategy); return (seconds, stats)."""
    book = OrderBook()
    ctx = StrategyContext(
        ts=0,
        instrument=instrument,
        book=book,
        position=0,
        base_balance=instrument.lots("0.05"),
        quote_balance=instrument.cash_units("3000"),
    )
    quote_sets = violations = quotes = 0
    start = time.perf_counter()
    for event in events:
        kind = type(event)
        if kind is BookDelta:
            book.apply_delta(event)
        elif kind is BookSnapshot:
            book.apply_snapshot(event)
        if strategy is None:
            continue
        ctx.ts = event.ts
        qs = strategy.on_event(event, ctx)
        if qs is None:
            continue
        quote_sets += 1
        quotes += len(qs.bids) + len(qs.asks)
        best_bid, best_ask = book.best_bid(), book.best_ask()
        violations += sum(1 for q in qs.bids if best_ask is not None and q.price >= best_ask)
        violations += sum(1 for q in qs.asks if best_bid is not None and q.price <= best_bid)
    return time.perf_counter() - start, {"quote_sets": quote_sets, "quotes": quotes, "violations": violations}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args()
    instrument, events = load_events(args.limit)
    span_s = (events[-1].ts - events[0].ts) / 1e9
    kinds = Counter(type(e).__name__ for e in events)
    print(f"Python {platform.python_version()} on {platform.machine()}, {platform.processor() or 'cpu n/a'}")
    print(f"recording binance-spot-btcusdt: {len(events)} events over {span_s:.0f} s ({dict(kinds)})")
    base = min(replay(instrument, events)[0] for _ in range(args.repeat))
    print(f"book only: {base * 1e6 / len(events):.2f} us/event")
    print(f"{'strategy':22} {'us/event':>9} {'events/s':>10} {'quote sets':>10} {'quotes':>8} {'violations':>10}")
    worst_violations = 0
    for name in STRATEGIES:
        best = None
        for _ in range(args.repeat):
            strategy = build_strategy(name, PARAMS[name], instrument)
            seconds, stats = replay(instrument, events, strategy)
            if best is None or seconds < best[0]:
                best = (seconds, stats, strategy)
        seconds, stats, strategy = best
        own = max(seconds - base, 0.0)
        per_event = own * 1e6 / len(events)
        rate = len(events) / own if own > 0 else float("inf")
        worst_violations = max(worst_violations, stats["violations"])
        print(
            f"{name:22} {per_event:9.2f} {rate:10.0f} {stats['quote_sets']:10d} "
            f"{stats['quotes']:8d} {stats['violations']:10d}"
        )
        if name == "avellaneda_stoikov":
            sigma, k = strategy.parameters()
            a = strategy.arrival_rate
            print(
                f"    estimated on real data: sigma {sigma} quote/sqrt(s), k {k} per quote unit, A {a} per s; "
                f"last reason: {strategy.last_quotes.reason if strategy.last_quotes else '-'}"
            )
        if name == "auto":
            print(
                f"    final regime {strategy.regime} after {strategy.switches} switches; cause: {strategy.regime_cause}"
            )
    print("Reproduce: .venv/bin/python -m bench.bench_strategies")
    if worst_violations:
        raise SystemExit(f"{worst_violations} crossing quotes found")


if __name__ == "__main__":
    main()
