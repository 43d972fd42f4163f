"""Order-book application speed on the recorded Binance streams (spot + USD-M).

All depth diffs are read and parsed to integer (ticks, lots) level lists first; only applying
them is timed. Per diff message each book also answers best bid and best ask, as a feed does
before publishing top of book. Three books get identical input:

(a) ``trading.book.OrderBook.apply_delta`` — ours, pure Python, with the sequence checks;
(b) the ``order-book`` C extension (``from order_book import OrderBook``), fed the same
    levels pre-converted to float (it also takes int keys but is several times slower with
    them); the conversion is not timed;
(c) a baseline of two ``sortedcontainers.SortedDict``.

The three books must end identical (top 20 levels per side), otherwise the run fails.
Figures are level updates per second on one core (best of ``--repeat`` runs).

Times are CPU time of this process (``time.process_time``), so other work sharing the cores
does not count against the figures; they are still noisier on a busy machine.

Run: ``.venv/bin/python -m bench.bench_book`` (``--repeat N``, default 5).
"""

from __future__ import annotations

import argparse
import gc
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from order_book import OrderBook as CBook
from sortedcontainers import SortedDict

from connectors.binance_recording import RECORDINGS, iter_recording
from trading.book import OrderBook
from trading.events import BookDelta, BookSnapshot

Top = tuple[list[tuple[int, int]], list[tuple[int, int]]]


def load(name: str) -> tuple[BookSnapshot, list[BookDelta]]:
    """The recording's snapshot and every diff after it, parsed."""
    recording = RECORDINGS[name]
    snapshot: BookSnapshot | None = None
    deltas: list[BookDelta] = []
    for event in iter_recording(recording.paths, recording.instrument):
        if type(event) is BookSnapshot:
            snapshot = event
        elif type(event) is BookDelta:
            deltas.append(event)
    assert snapshot is not None, f"{name}: no snapshot"
    return snapshot, deltas


def run_ours(snapshot: BookSnapshot, deltas: list[BookDelta], query_best: bool) -> tuple[float, Top]:
    book = OrderBook()
    book.apply_snapshot(snapshot)
    apply = book.apply_delta
    best_bid = book.best_bid
    best_ask = book.best_ask
    start = time.process_time()
    if query_best:
        for delta in deltas:
            apply(delta)
            best_bid()
            best_ask()
    else:
        for delta in deltas:
            apply(delta)
    elapsed = time.process_time() - start
    return elapsed, book.top(20)


def run_c(snapshot: BookSnapshot, deltas: list[BookDelta], query_best: bool) -> tuple[float, Top]:
    book = CBook()
    bids = book.bids
    asks = book.asks
    for p, q in snapshot.bids:
        bids[float(p)] = float(q)
    for p, q in snapshot.asks:
        asks[float(p)] = float(q)
    # Floats (tick and lot counts, exact below 2**53): the C book is several times slower with int keys.
    levels = [([(float(p), float(q)) for p, q in d.bids], [(float(p), float(q)) for p, q in d.asks]) for d in deltas]
    start = time.process_time()
    for delta_bids, delta_asks in levels:
        for p, q in delta_bids:
            if q:
                bids[p] = q
            elif p in bids:
                del bids[p]
        for p, q in delta_asks:
            if q:
                asks[p] = q
            elif p in asks:
                del asks[p]
        if query_best:
            bids.index(0)
            asks.index(0)
    elapsed = time.process_time() - start
    top_bids = [tuple(map(int, bids.index(i))) for i in range(min(20, len(bids)))]
    top_asks = [tuple(map(int, asks.index(i))) for i in range(min(20, len(asks)))]
    return elapsed, (top_bids, top_asks)


def run_sorted(snapshot: BookSnapshot, deltas: list[BookDelta], query_best: bool) -> tuple[float, Top]:
    bids = SortedDict(snapshot.bids)
    asks = SortedDict(snapshot.asks)
    levels = [(d.bids, d.asks) for d in deltas]
    start = time.process_time()
    for delta_bids, delta_asks in levels:
        for p, q in delta_bids:
            if q:
                bids[p] = q
            else:
                bids.pop(p, None)
        for p, q in delta_asks:
            if q:
                asks[p] = q
            else:
                asks.pop(p, None)
        if query_best:
            bids.peekitem(-1)
            asks.peekitem(0)
    elapsed = time.process_time() - start
    top_bids = [bids.peekitem(-1 - i) for i in range(min(20, len(bids)))]
    top_asks = [asks.peekitem(i) for i in range(min(20, len(asks)))]
    return elapsed, (top_bids, top_asks)


RUNNERS: dict[str, Callable[[BookSnapshot, list[BookDelta], bool], tuple[float, Top]]] = {
    "ours (trading.book)": run_ours,
    "order-book (C)": run_c,
    "SortedDict": run_sorted,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per book; the best is reported")
    args = parser.parse_args(argv)
    print(f"Python {platform.python_version()} on {platform.machine()}, {platform.system()}")
    modes = {"apply+best": True, "apply only": False}
    for name in ("binance-spot-btcusdt", "binance-usdm-btcusdt"):
        snapshot, deltas = load(name)
        updates = sum(len(d.bids) + len(d.asks) for d in deltas)
        print(f"\n{name}: {len(deltas):,} diff messages, {updates:,} level updates")
        rates: dict[tuple[str, str], float] = {}
        for mode, query_best in modes.items():
            tops: dict[str, Top] = {}
            for label, runner in RUNNERS.items():
                best = float("inf")
                for _ in range(args.repeat):
                    gc.collect()
                    elapsed, tops[label] = runner(snapshot, deltas, query_best)
                    best = min(best, elapsed)
                rates[(mode, label)] = updates / best
            reference = tops["ours (trading.book)"]
            for label, top in tops.items():
                if top != reference:
                    print(f"FAILED: {label} ends with a different book than ours")
                    return 1
        print(f"level updates/s per core (best of {args.repeat}); 'apply+best' also reads best bid/ask per message")
        print(f"{'book':<22}" + "".join(f"{mode:>16}" for mode in modes))
        for label in RUNNERS:
            print(f"{label:<22}" + "".join(f"{rates[(mode, label)]:>16,.0f}" for mode in modes))
        for mode in modes:
            ours = rates[(mode, "ours (trading.book)")]
            print(
                f"{mode}: ours/C = {ours / rates[(mode, 'order-book (C)')]:.2f}, "
                f"ours/SortedDict = {ours / rates[(mode, 'SortedDict')]:.2f}; "
                f"target >= 1,500,000/s: {'met' if ours >= 1_500_000 else 'NOT met'}"
            )
    print("\nreproduce: .venv/bin/python -m bench.bench_book --repeat 5")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
