"""Benchmark: Avellaneda-Stoikov (2008) Monte Carlo, 1,000 paths x 200 steps, both strategies.

Target: under 10 s. Prints the timing and the summary next to the paper's table (gamma = 0.1).

Run: ``.venv/bin/python bench/bench_montecarlo.py [--paths 1000] [--seed 7]``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from trading.synthetic.avellaneda_stoikov import ASParams, monte_carlo  # noqa: E402

PAPER = {  # Avellaneda & Stoikov (2008), section 3, gamma = 0.1
    "inventory": (62.94, 5.89, 0.08, 2.80),
    "symmetric": (67.21, 13.43, 0.01, 8.66),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--paths", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    params = ASParams()
    print(f"AS Monte Carlo: {args.paths} paths x {params.n_steps} steps, seed {args.seed}")
    print(f"{'strategy':<10} {'seconds':>8} {'profit':>8} {'std':>7} {'q':>6} {'q std':>6} {'spread':>7}   paper")
    total = 0.0
    for strategy, paper in PAPER.items():
        t0 = time.perf_counter()
        s = monte_carlo(args.paths, strategy, seed=args.seed, params=params)
        seconds = time.perf_counter() - t0
        total += seconds
        print(
            f"{strategy:<10} {seconds:>8.3f} {s.profit_mean:>8.2f} {s.profit_std:>7.2f} "
            f"{s.final_inventory_mean:>6.2f} {s.final_inventory_std:>6.2f} {s.spread_mean:>7.3f}   "
            f"{paper[0]:.2f} / {paper[1]:.2f} / {paper[2]:.2f} / {paper[3]:.2f} / 1.49"
        )
    print(f"total {total:.3f} s (target < 10 s)")
    print(f"reproduce: .venv/bin/python bench/bench_montecarlo.py --paths {args.paths} --seed {args.seed}")


if __name__ == "__main__":
    main()
