"""Engine reaction time: one market event in -> commands out, on real Binance spot data.

Replays the recorded Binance spot BTCUSDT stream (depth diffs, bookTicker, trades; ~100k
messages, 11 minutes of 2024-08-08/09) through :class:`trading.engine.Engine` with a 5-level
fixed-spread bot and an Avellaneda-Stoikov bot. Orders go to the simulated exchange
(``trading.fillsim``) so acks, cancels and fills come back as they would from a venue; only
``Engine.on_event`` is timed (``time.perf_counter_ns`` around each call), split into book
events (snapshot/delta/top-of-book: the reaction the target is about), trades and order
events.

Run: ``.venv/bin/python -m bench.bench_engine`` (``--limit N`` to replay only N events).
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


def pct(sorted_values: list[int], p: float) -> float:
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, round(p / 100 * (len(sorted_values) - 1))))
    return sorted_values[k] / 1000


def run_bot(label: str, name: str, params: dict, events: list, instrument) -> dict:
    strategy = build_strategy(name, params, instrument)
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
    trade_ns: list[int] = []
    order_ns: list[int] = []
    sent = 0
    fills = 0
    clock = time.perf_counter_ns
    on_event = engine.on_event
    gc.collect()
    gc.disable()  # measured separately below: the engine allocates little; keep runs comparable
    try:
        for ev in events:
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
            (book_ns if isinstance(ev, BOOK_EVENTS) else trade_ns).append(dt)
            for c in cmds:
                venue.submit(c, ev.ts)
            sent += len(cmds)
    finally:
        gc.enable()
    book_ns.sort()
    trade_ns.sort()
    order_ns.sort()
    snap = engine.portfolio.snapshot(events[-1].ts)
    return {
        "label": label,
        "book": book_ns,
        "trade": trade_ns,
        "order": order_ns,
        "sent": sent,
        "fills": fills,
        "pnl": instrument.cash(snap.trading_pnl),
        "notes": len(engine.notes),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=0, help="replay only the first N events (0 = all)")
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
        f"{'bot':<20} {'book p50':>9} {'book p99':>9} {'book max':>9} {'trade p99':>10} "
        f"{'order p50':>10} {'order p99':>10} {'cmds':>7} {'fills':>6}"
    )
    print(header + "   (microseconds per Engine.on_event call)")
    print("-" * len(header))
    results = []
    for label, (name, params) in BOTS.items():
        r = run_bot(label, name, params, events, rec.instrument)
        results.append(r)
        print(
            f"{label:<20} {pct(r['book'], 50):>9.1f} {pct(r['book'], 99):>9.1f} {r['book'][-1] / 1000:>9.0f} "
            f"{pct(r['trade'], 99):>10.1f} {pct(r['order'], 50):>10.1f} {pct(r['order'], 99):>10.1f} "
            f"{r['sent']:>7} {r['fills']:>6}"
        )
    print()
    for r in results:
        mean = statistics.fmean(r["book"]) / 1000
        print(f"{r['label']}: book mean {mean:.1f} us; trading PnL {r['pnl']} USDT; {r['notes']} engine notes")
    worst = max(pct(r["book"], 99) for r in results)
    print(f"\ntarget p99 < 50 us for book events: {'MET' if worst < 50 else 'NOT MET'} (worst p99 {worst:.1f} us)")
    print("reproduce: .venv/bin/python -m bench.bench_engine")


if __name__ == "__main__":
    main()
