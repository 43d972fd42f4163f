"""Benchmark: backtest a recorded Binance USD-M BTCUSDT stream, ours vs hftbacktest 2.4.4.

Both sides do the same work on the same file (``btcusdt_20240808.gz``, depth diffs + trades):
a fixed-spread quote (one bid, one ask, 0.5 bp from the mid, 0.002 BTC) refreshed every 100 ms,
post-only, with queue-aware fills (risk-averse queue model, partial fills), 1 ms entry and
response latency, maker 0.02 % / taker 0.05 % fees.

* ours: ``connectors.binance_recording.iter_recording`` -> ``trading.backtest.Backtest`` with the
  real ``trading.engine.Engine`` + ``fixed_spread`` strategy and ``trading.fillsim.SimulatedExchange``.
  Book tickers are left out (hftbacktest's converter drops them too).
* hftbacktest: its converter ``hftbacktest.data.utils.binancefutures.convert``, then
  ``HashMapMarketDepthBacktest`` with ``risk_adverse_queue_model()``, ``partial_fill_exchange()``
  and the quote loop in a numba ``@njit`` function stepping ``elapse(100 ms)`` as in its examples.

Rates are market messages (depth diffs + trades in the file) per second of backtest. Steady
state = the fastest of ``--repeat`` runs after a first one in the same process (JIT warm, data
already parsed/converted; the minimum strips preemption on a shared machine). Cold start = a fresh
``python`` subprocess doing imports, data loading (ours parses the raw .gz; hftbacktest loads
its pre-converted .npz) and JIT compilation, timed from outside.

Run: ``.venv/bin/python bench/bench_backtest.py``
"""

from __future__ import annotations

import argparse
import gzip
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

NAME = "btcusdt_20240808.gz"
CANDIDATES = (ROOT / "data" / "recordings" / "binance-usdm" / NAME, Path("/work/shared/data/binance-usdm") / NAME)
INTERVAL_NS = 100_000_000
LATENCY_NS = 1_000_000
HALF_SPREAD = 0.00005
ORDER_QTY = "0.002"
MAKER_FEE, TAKER_FEE = "0.0002", "0.0005"


def recording_path() -> Path:
    for path in CANDIDATES:
        if path.exists():
            return path
    raise SystemExit(f"recording not found; looked in: {', '.join(map(str, CANDIDATES))}")


def count_market_messages(path: Path) -> int:
    """Depth diff and trade messages in the raw file (the work both backtesters do)."""
    n = 0
    with gzip.open(path, "rb") as f:
        for line in f:
            if b"@depth" in line or b"@trade" in line:
                n += 1
    return n


# ---------------------------------------------------------------------------------------------
# Ours
# ---------------------------------------------------------------------------------------------
def ours_instrument():
    from connectors.binance_recording import BINANCE_USDM_BTCUSDT as b
    from trading.instruments import Instrument

    return Instrument.create(
        symbol=b.symbol,
        tick_size=b.tick_size,
        lot_size=b.lot_size,
        min_notional=b.min_notional,
        maker_fee=MAKER_FEE,
        taker_fee=TAKER_FEE,
        venue=b.venue,
    )


def ours_events(path: Path, instrument) -> list:
    from connectors.binance_recording import iter_recording
    from trading.events import TopOfBook

    return [e for e in iter_recording([path], instrument) if type(e) is not TopOfBook]


def ours_run(events: list, instrument):
    from trading.backtest import Backtest
    from trading.engine import Engine
    from trading.fillsim import SimulatedExchange
    from trading.latency import ConstantLatency
    from trading.queue import RiskAverseQueueModel
    from trading.risk import RiskLimits
    from trading.strategies import build_strategy

    spread = str(HALF_SPREAD)
    strategy = build_strategy(
        "fixed_spread",
        {"order_amount": ORDER_QTY, "bid_spread": spread, "ask_spread": spread, "refresh_time": "0.1"},
        instrument,
    )
    engine = Engine(
        strategy, instrument, bot_id="bench", risk=RiskLimits(), initial_quote=instrument.cash_units("100000")
    )
    exchange = SimulatedExchange(
        instrument, latency=ConstantLatency(LATENCY_NS, LATENCY_NS), queue=RiskAverseQueueModel()
    )
    t0 = time.perf_counter()
    result = Backtest(engine, events, exchange, timer_interval_ns=INTERVAL_NS).run()
    return time.perf_counter() - t0, result


def ours_stub_run(events: list, instrument) -> float:
    """The backtester and venue alone: an engine stub that only keeps the shared book."""
    from trading.backtest import Backtest
    from trading.book import OrderBook
    from trading.events import BookDelta, BookSnapshot
    from trading.fillsim import SimulatedExchange
    from trading.portfolio import Portfolio

    class BookOnlyEngine:
        def __init__(self) -> None:
            self.book = OrderBook()
            self.portfolio = Portfolio(instrument)

        def on_event(self, event):
            kind = type(event)
            if kind is BookDelta:
                self.book.apply_delta(event)
            elif kind is BookSnapshot:
                self.book.apply_snapshot(event)
            return []

    t0 = time.perf_counter()
    Backtest(BookOnlyEngine(), events, SimulatedExchange(instrument), timer_interval_ns=INTERVAL_NS).run()
    return time.perf_counter() - t0


# ---------------------------------------------------------------------------------------------
# hftbacktest
# ---------------------------------------------------------------------------------------------
def hbt_convert(path: Path, out: Path) -> float:
    from hftbacktest.data.utils import binancefutures

    t0 = time.perf_counter()
    binancefutures.convert(str(path), output_filename=str(out), buffer_size=2_000_000)
    return time.perf_counter() - t0


def hbt_strategy():
    import numpy as np
    from hftbacktest import BUY, GTX, LIMIT, SELL
    from numba import njit

    @njit
    def fixed_spread(hbt, half_spread, qty, interval):
        order_id = 1
        while hbt.elapse(interval) == 0:
            hbt.clear_inactive_orders(0)
            depth = hbt.depth(0)
            tick = depth.tick_size
            best_bid = depth.best_bid
            best_ask = depth.best_ask
            if not (np.isfinite(best_bid) and np.isfinite(best_ask)) or best_ask <= best_bid:
                continue
            mid = (best_bid + best_ask) / 2.0
            bid_tick = int(np.floor(mid * (1.0 - half_spread) / tick))
            ask_tick = int(np.ceil(mid * (1.0 + half_spread) / tick))
            has_bid = False
            has_ask = False
            values = hbt.orders(0).values()
            while values.has_next():
                order = values.get()
                if order.side == BUY:
                    if order.price_tick == bid_tick:
                        has_bid = True
                    elif order.cancellable:
                        hbt.cancel(0, order.order_id, False)
                else:
                    if order.price_tick == ask_tick:
                        has_ask = True
                    elif order.cancellable:
                        hbt.cancel(0, order.order_id, False)
            if not has_bid:
                hbt.submit_buy_order(0, order_id, bid_tick * tick, qty, GTX, LIMIT, False)
                order_id += 1
            if not has_ask:
                hbt.submit_sell_order(0, order_id, ask_tick * tick, qty, GTX, LIMIT, False)
                order_id += 1
        return order_id - 1

    _ = SELL
    return fixed_spread


def hbt_build(npz: Path):
    from hftbacktest import BacktestAsset, HashMapMarketDepthBacktest

    asset = (
        BacktestAsset()
        .data([str(npz)])
        .linear_asset(1.0)
        .constant_order_latency(LATENCY_NS, LATENCY_NS)
        .risk_adverse_queue_model()
        .partial_fill_exchange()
        .trading_value_fee_model(float(MAKER_FEE), float(TAKER_FEE))
        .tick_size(0.1)
        .lot_size(0.001)
    )
    return HashMapMarketDepthBacktest([asset])


def hbt_run(npz: Path, strategy) -> tuple[float, dict]:
    hbt = hbt_build(npz)
    t0 = time.perf_counter()
    orders = strategy(hbt, HALF_SPREAD, float(ORDER_QTY), INTERVAL_NS)
    seconds = time.perf_counter() - t0
    sv = hbt.state_values(0)
    info = {"orders": int(orders), "fills": int(sv.num_trades), "position": float(sv.position)}
    hbt.close()
    return seconds, info


# ---------------------------------------------------------------------------------------------
def child(which: str, path: Path, npz: Path) -> None:
    """Cold start in a fresh process: imports, data loading, JIT, one run."""
    if which == "ours":
        instrument = ours_instrument()
        seconds, result = ours_run(ours_events(path, instrument), instrument)
        print(json.dumps({"run": seconds, "fills": result.fill_count}))
    else:
        seconds, info = hbt_run(npz, hbt_strategy())
        print(json.dumps({"run": seconds, **info}))


def cold(which: str, path: Path, npz: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, __file__, "--child", which, "--npz", str(npz)], check=True, capture_output=True, cwd=ROOT
    )
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--child", choices=["ours", "hbt"])
    parser.add_argument("--npz", type=Path)
    parser.add_argument("--repeat", type=int, default=3, help="steady-state runs per side; the fastest counts")
    args = parser.parse_args()
    path = recording_path()
    if args.child:
        child(args.child, path, args.npz)
        return

    messages = count_market_messages(path)
    print(f"recording: {path} ({messages:,} depth + trade messages)")
    instrument = ours_instrument()
    t0 = time.perf_counter()
    events = ours_events(path, instrument)
    parse_s = time.perf_counter() - t0
    runs = [ours_run(events, instrument) for _ in range(1 + args.repeat)]
    ours_steady, result = min(runs[1:], key=lambda r: r[0])
    print(
        f"ours: parse {parse_s:.2f} s ({len(events):,} events); backtest run1 {runs[0][0]:.3f} s, "
        f"best of next {args.repeat} {ours_steady:.3f} s -> {messages / ours_steady:,.0f} msg/s steady; "
        f"orders {result.orders_placed}, fills {result.fill_count}, position {result.final_position} lots"
    )
    stub_s = min(ours_stub_run(events, instrument) for _ in range(args.repeat))
    print(
        f"ours, where the time goes: book + venue + backtest loop with an engine stub {stub_s:.3f} s; "
        f"engine (strategy, risk, OMS, portfolio) the other {max(ours_steady - stub_s, 0):.3f} s"
    )

    with tempfile.TemporaryDirectory() as tmp:
        npz = Path(tmp) / "btcusdt_20240808.npz"
        convert_s = hbt_convert(path, npz)
        strategy = hbt_strategy()
        first_s, _ = hbt_run(npz, strategy)  # includes JIT compilation
        hbt_steady, info = min((hbt_run(npz, strategy) for _ in range(args.repeat)), key=lambda r: r[0])
        print(
            f"hftbacktest: convert {convert_s:.2f} s; run1 (with JIT) {first_s:.3f} s, "
            f"best of next {args.repeat} {hbt_steady:.3f} s "
            f"-> {messages / hbt_steady:,.0f} msg/s steady; orders {info['orders']}, fills {info['fills']}, "
            f"position {info['position']:.3f} BTC"
        )
        ours_cold = cold("ours", path, npz)
        hbt_cold = cold("hbt", path, npz)
    print(
        f"cold start (fresh process): ours {ours_cold:.2f} s (incl. parsing the .gz), "
        f"hftbacktest {hbt_cold:.2f} s (incl. JIT; .npz already converted, conversion {convert_s:.2f} s extra)"
    )
    ratio = (messages / ours_steady) / (messages / hbt_steady)
    print(
        f"steady-state ratio ours/hftbacktest: {ratio:.2f} (target >= 0.25); "
        f"cold start: ours {'faster' if ours_cold < hbt_cold else 'slower'} than hftbacktest"
    )
    print("reproduce: .venv/bin/python bench/bench_backtest.py")


if __name__ == "__main__":
    main()
