"""Build the shipped COIN-M recording from the shipped USD-M one (no COIN-M traffic was recorded).

Binance COIN-M BTCUSD_PERP quotes the same market in integer contracts of 100 USD. Each line of
``data/recordings/binance-usdm/btcusdt_20240808.gz`` (first ``--lines`` lines) is rewritten in
COIN-M's shape: stream ``btcusd_perp@...``, symbol ``BTCUSD_PERP`` followed (depth and
bookTicker) by the pair ``"ps":"BTCUSD"``,
and every quantity of BTC at a price turned into contracts, ``round(qty x price / 100)``, at
least 1 where the BTC quantity was not zero (a level that exists keeps existing; zero still
deletes). Update ids, times and prices are kept, so the book rules (``U``/``u``/``pu``) hold.

    .venv/bin/python scripts/make_coinm_recording.py [--lines 20000]
"""

from __future__ import annotations

import argparse
import gzip
import json
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "data" / "recordings" / "binance-usdm" / "btcusdt_20240808.gz"
TARGET = ROOT / "data" / "recordings" / "binance-coinm" / "btcusd_perp_20240808.gz"
CONTRACT_USD = Decimal(100)


def contracts(price: str, qty: str) -> str:
    q = Decimal(qty)
    if q == 0:
        return "0"
    n = (q * Decimal(price) / CONTRACT_USD).to_integral_value(rounding=ROUND_HALF_EVEN)
    return str(max(int(n), 1))


def levels(rows: list[list[str]]) -> list[list[str]]:
    return [[p, contracts(p, q)] for p, q in rows]


def convert(msg: dict) -> dict:
    if "lastUpdateId" in msg:
        return {**msg, "bids": levels(msg["bids"]), "asks": levels(msg["asks"])}
    stream = msg["stream"].replace("btcusdt@", "btcusd_perp@")
    data: dict = {}
    for key, value in msg["data"].items():  # COIN-M names the pair right after the symbol
        if key == "s":
            data["s"] = "BTCUSD_PERP"
            if msg["data"].get("e") in ("depthUpdate", "bookTicker"):
                data["ps"] = "BTCUSD"
        else:
            data[key] = value
    if data.get("e") == "depthUpdate":
        data["b"], data["a"] = levels(data["b"]), levels(data["a"])
    elif data.get("e") == "bookTicker":
        data["B"], data["A"] = contracts(data["b"], data["B"]), contracts(data["a"], data["A"])
    elif data.get("e") == "trade":
        data["q"] = contracts(data["p"], data["q"])
    return {"stream": stream, "data": data}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=20_000)
    args = parser.parse_args()
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with gzip.open(SOURCE, "rt") as src, gzip.open(TARGET, "wt", compresslevel=9) as dst:
        for line in src:
            if written >= args.lines:
                break
            ts, _, payload = line.rstrip("\n").partition(" ")
            dst.write(f"{ts} {json.dumps(convert(json.loads(payload)), separators=(',', ':'))}\n")
            written += 1
    print(f"wrote {written} lines to {TARGET.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
