"""Engine reaction time: one market event in -> commands out, on real Binance spot data.

Replays the recorded Binance spot BTCUSDT stream (depth diffs, bookTicker, trades; ~100k
messages, 11 minutes of 2024-08-08/09) through :class:`trading.engine.Engine` with a 5-level
fixed-spread bot and an Avellaneda-Stoikov bot. Orders go to the simulated exchange
(``trading.fillsim``) so acks, cancels and fills come back as they would from a venue; only
``Engine.on_event`` is timed (``time.perf_counter_ns`` around each call), split into book
events (snapshot/delta/top-of-book: the reaction the target is about), trades and order
events.

Run: ``.venv/bin/python -m bench.bench_engine`` (``--limit N`` replays only N events, ``--repeat N``
sets how many identical replays the per-event minimum is taken over, ``--no-gc`` times with the
garbage collector off).
"""

from __future__ import annotations

import argparse
import gc
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from connectors.binance_recording import RECORDINGS, iter_recording
from trading.book import OrderBook
from trading.engine import Engine
from trading.events import BookDelta, BookSnapshot, TopOfBook, TradeTick
from trading.fillsim import SimulatedExchange
from trading.risk import RiskLimits
from trading.strategies import build_strategy

BOTS = {
    "fixed_spread 5 lvl": (
        "fixed_spread",
        {
            "order_amount": "0.001",
            "order_levels": 5,
            "bid_spread": "0.0002",
            "ask_spread": "0.0002",
            "level_spacing": "0.0001",
            "refresh_time": 0,
            "refresh_tolerance": "0.00005",
            "max_order_age": 30,
        },
    ),
    "avellaneda_stoikov": (
        "avellaneda_stoikov",
        {"order_amount": "0.001", "gamma": 0.1, "max_spread": "0.002"},
    ),
}
RISK = {
    "max_position_base": "0.05",
    "max_open_orders": 40,
    "order_rate_limit": 200,
    "daily_loss_limit": "500",
    "max_drawdown": "500",
    "volatility_pause": 0.01,
    "price_band": 0.02,
}
BOOK_EVENTS = (BookSnapshot, BookDelta, TopOfBook)


class TimedStrategy:
    """Wrap a strategy to time its own share of each engine call (engine-only = total - strategy)."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.name = inner.name
        self.config = getattr(inner, "config", None)
        self.last_ns = 0

    def on_event(self, event, ctx):
        clock = time.perf_counter_ns
        t0 = clock()
        result = self.inner.on_event(event, ctx)
        self.last_ns = clock() - t0
        return result


def pct(sorted_values: list[int], p: float) -> float:
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, round(p / 100 * (len(sorted_values) - 1))))
    return sorted_values[k] / 1000


def book_costs(events: list) -> list[int]:
    """Time the order book's own update for each event (same operations the engine does)."""
    book = OrderBook()
    clock = time.perf_counter_ns
    costs = []
    for ev in events:
        t0 = clock()
        if type(ev) is BookDelta:
            book.apply_delta(ev)
        elif type(ev) is BookSnapshot:
            book.apply_snapshot(ev)
        costs.append(clock() - t0)
    return costs


def run_bot(label: str, name: str, params: dict, events: list, instrument, bookcost: list[int], *, no_gc: bool) -> dict:
    """One replay; per-event timings in event order (unsorted)."""
    strategy = TimedStrategy(build_strategy(name, params, instrument))
    engine = Engine(
        strategy,
        instrument,
        bot_id="1",
        risk=RiskLimits.from_dict(RISK),
        initial_base=instrument.lots("0.05"),
        initial_quote=instrument.cash_units("5000"),
    )
    venue = SimulatedExchange(instrument)
    book_ns: list[int] = []
    own_ns: list[int] = []  # book events, engine only (strategy time taken out)
    core_ns: list[int] = []  # ... and the order book update taken out too
    strat_ns: list[int] = []
    trade_ns: list[int] = []
    order_ns: list[int] = []
    sent = 0
    fills = 0
    clock = time.perf_counter_ns
    on_event = engine.on_event
    gc.collect()
    if no_gc:
        gc.disable()
    try:
        for i, ev in enumerate(events):
            for reply in venue.on_market(ev):
                t0 = clock()
                cmds = on_event(reply)
                order_ns.append(clock() - t0)
                fills += type(reply).__name__ == "OrderFilled"
                for c in cmds:
                    venue.submit(c, reply.ts)
                sent += len(cmds)
            t0 = clock()
            cmds = on_event(ev)
            dt = clock() - t0
            if isinstance(ev, BOOK_EVENTS):
                book_ns.append(dt)
                own_ns.append(dt - strategy.last_ns)
                core_ns.append(max(0, dt - strategy.last_ns - bookcost[i]))
                strat_ns.append(strategy.last_ns)
            else:
                trade_ns.append(dt)
            for c in cmds:
                venue.submit(c, ev.ts)
            sent += len(cmds)
    finally:
        gc.enable()
    snap = engine.portfolio.snapshot(events[-1].ts)
    return {
        "label": label,
        "book": book_ns,
        "own": own_ns,
        "core": core_ns,
        "strategy": strat_ns,
        "trade": trade_ns,
        "order": order_ns,
        "sent": sent,
        "fills": fills,
        "pnl": instrument.cash(snap.trading_pnl),
        "notes": len(engine.notes),
    }


def run_repeated(label: str, name: str, params: dict, events: list, instrument, bookcost, repeat: int, no_gc: bool):
    """Replay ``repeat`` times and keep, per event, the fastest time: the work is identical each
    time (deterministic venue), so the minimum strips scheduler preemption on a shared machine."""
    runs = [run_bot(label, name, params, events, instrument, bookcost, no_gc=no_gc) for _ in range(repeat)]
    first = runs[0]
    for r in runs[1:]:
        if (r["sent"], r["fills"], len(r["order"])) != (first["sent"], first["fills"], len(first["order"])):
            raise SystemExit("replays differ: the engine or venue is not deterministic")
    out = dict(first)
    for key in ("book", "own", "core", "strategy", "trade", "order"):
        out[key] = sorted(min(vals) for vals in zip(*(r[key] for r in runs), strict=True))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=0, help="replay only the first N events (0 = all)")
    ap.add_argument("--repeat", type=int, default=3, help="replays per bot; per-event minimum is reported")
    ap.add_argument("--no-gc", action="store_true", help="disable the garbage collector while timing")
    args = ap.parse_args()
    rec = RECORDINGS["binance-spot-btcusdt"]
    events = []
    for ev in iter_recording(rec.paths, rec.instrument):
        events.append(ev)
        if args.limit and len(events) >= args.limit:
            break
    n_book = sum(isinstance(e, BOOK_EVENTS) for e in events)
    n_trade = sum(isinstance(e, TradeTick) for e in events)
    print(f"{rec.name}: {len(events)} events ({n_book} book, {n_trade} trades)")
    print(f"python {platform.python_version()} on {platform.machine()} {platform.processor() or ''}".rstrip())
    print()
    header = (
        f"{'bot':<20} {'book p50':>9} {'book p99':>9} {'engine p50':>11} {'engine p99':>11} {'core p99':>9} "
        f"{'strat p50':>10} {'strat p99':>10} {'trade p99':>10} {'order p99':>10} {'cmds':>6} {'fills':>6}"
    )
    print("microseconds per Engine.on_event call; book = whole call on a book event, engine = the call")
    print("minus the strategy's own on_event time, core = engine minus the order book update (timed on")
    print("a separate replay), strat = the strategy's time. Per event: fastest of", args.repeat, "identical replays;")
    print("garbage collector", "off" if args.no_gc else "on", "while timing.")
    print(header)
    print("-" * len(header))
    bookcost = [min(c) for c in zip(*(book_costs(events) for _ in range(args.repeat)), strict=True)]
    bc = sorted(c for c, e in zip(bookcost, events, strict=True) if isinstance(e, BOOK_EVENTS))
    results = []
    for label, (name, params) in BOTS.items():
        r = run_repeated(label, name, params, events, rec.instrument, bookcost, args.repeat, args.no_gc)
        results.append(r)
        print(
            f"{label:<20} {pct(r['book'], 50):>9.1f} {pct(r['book'], 99):>9.1f} {pct(r['own'], 50):>11.1f} "
            f"{pct(r['own'], 99):>11.1f} {pct(r['core'], 99):>9.1f} {pct(r['strategy'], 50):>10.1f} {pct(r['strategy'], 99):>10.1f} "
            f"{pct(r['trade'], 99):>10.1f} {pct(r['order'], 99):>10.1f} {r['sent']:>6} {r['fills']:>6}"
        )
    print()
    for r in results:
        mean = statistics.fmean(r["book"]) / 1000
        own = statistics.fmean(r["own"]) / 1000
        print(
            f"{r['label']}: book mean {mean:.1f} us (engine {own:.1f} us); max {r['book'][-1] / 1000:.0f} us; "
            f"trading PnL {r['pnl']} USDT; {r['notes']} engine notes"
        )
    print(f"order book update alone (trading.book): p50 {pct(bc, 50):.1f} us, p99 {pct(bc, 99):.1f} us")
    worst_core = max(pct(r["core"], 99) for r in results)
    worst_own = max(pct(r["own"], 99) for r in results)
    worst = max(pct(r["book"], 99) for r in results)
    print(
        f"\ntarget p99 < 50 us: engine core {'MET' if worst_core < 50 else 'NOT MET'} (worst {worst_core:.1f} us); "
        f"engine incl. book update: {'MET' if worst_own < 50 else 'NOT MET'} (worst {worst_own:.1f} us); "
        f"including the strategy: {'MET' if worst < 50 else 'NOT MET'} (worst {worst:.1f} us)"
    )
    print("reproduce: .venv/bin/python -m bench.bench_engine")


if __name__ == "__main__":
    main()
