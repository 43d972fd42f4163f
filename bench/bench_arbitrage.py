"""Arbitrage detection speed: one scan of N venues quoting one symbol with 20-level books
(every ordered venue pair walked, exact Fraction arithmetic), and the paper IOC execution.

Run: ``.venv/bin/python bench/bench_arbitrage.py [--venues 2 5 10] [--scans 2000]``
"""

from __future__ import annotations

import argparse
import platform
import random
import sys
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trading.arbitrage import ArbitrageConfig, VenueBook, execute_ioc, find_opportunities
from trading.book import OrderBook
from trading.events import BookSnapshot
from trading.instruments import Instrument

INST = Instrument.create(symbol="BTC/USDT", tick_size="0.01", lot_size="0.0001", taker_fee="0.0005")
NOW = 1_700_000_000_000_000_000


def books(n: int, rng: random.Random) -> list[VenueBook]:
    out = []
    for i in range(n):
        mid = 6_000_000 + rng.randint(-12_000, 12_000)  # venues up to ~20 bps either side
        book = OrderBook()
        book.apply_snapshot(
            BookSnapshot(
                ts=NOW,
                bids=tuple((mid - 3 - 2 * k, rng.randint(100, 5_000)) for k in range(20)),
                asks=tuple((mid + 3 + 2 * k, rng.randint(100, 5_000)) for k in range(20)),
            )
        )
        out.append(VenueBook(f"v{i}", INST, book, NOW - rng.randint(0, 500_000_000), latency_ns=20_000_000))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--venues", type=int, nargs="+", default=[2, 5, 10])
    parser.add_argument("--scans", type=int, default=2000)
    args = parser.parse_args()
    rng = random.Random(7)
    config = ArbitrageConfig(discount_bps_per_second=Decimal(2))
    print(f"python {platform.python_version()} on {platform.machine()}, {args.scans} scans per case")
    for n in args.venues:
        cases = [books(n, rng) for _ in range(50)]
        found = 0
        t0 = time.perf_counter()
        for i in range(args.scans):
            found += len(find_opportunities(cases[i % 50], now_ns=NOW, config=config))
        scan = (time.perf_counter() - t0) / args.scans
        pairs = n * (n - 1)
        print(
            f"{n:>3} venues ({pairs:>3} pairs): {scan * 1e6:9.1f} us/scan, {scan / pairs * 1e6:7.1f} us/pair, "
            f"{found / args.scans:.2f} opportunities/scan"
        )
    case = books(2, rng)
    opps = []
    while not opps:
        case = books(2, rng)
        opps = find_opportunities(case, now_ns=NOW, config=config)
    opp = opps[0]
    by = {b.venue: b for b in case}
    t0 = time.perf_counter()
    for _ in range(args.scans):
        execute_ioc(opp, by[opp.buy_venue], by[opp.sell_venue])
    print(f"paper IOC execution of both legs: {(time.perf_counter() - t0) / args.scans * 1e6:.1f} us")
    print(
        "reproduce: .venv/bin/python bench/bench_arbitrage.py --venues "
        + " ".join(map(str, args.venues))
        + f" --scans {args.scans}"
    )


if __name__ == "__main__":
    main()
