"""Backtest and bot-quality metrics for people: a label, a unit and sensible precision per
known metric (money in the quote currency to 4 places, ratios as percentages, Sharpe to 2
places with its annualisation stated), nested results flattened to readable rows, never a
Python dict or an ``0E-8`` on the page."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

# name -> (label, kind); kinds: money, pct, ratio, int, qty, ticks, bps, seconds, price, text
KNOWN: dict[str, tuple[str, str]] = {
    "total_pnl": ("Total PnL", "money"),
    "sharpe": ("Sharpe ratio (annualised)", "ratio"),
    "max_drawdown": ("Max drawdown", "money"),
    "max_drawdown_fraction": ("Max drawdown (of peak equity)", "pct"),
    "fill_ratio": ("Fill ratio (filled / placed quantity)", "pct"),
    "fills": ("Fills", "int"),
    "filled_qty": ("Filled quantity", "qty"),
    "placed_qty": ("Placed quantity", "qty"),
    "orders_placed": ("Orders placed", "int"),
    "cancels_sent": ("Cancels sent", "int"),
    "amends_sent": ("Amends sent", "int"),
    "rejects": ("Rejects", "int"),
    "events": ("Market events replayed", "int"),
    "final_position": ("Final position", "qty"),
    "duration_s": ("Simulated duration", "seconds"),
    "quote_uptime": ("Quote uptime (both sides)", "pct"),
    "time_at_top": ("Time at the touch (either side)", "pct"),
    "bid_at_top": ("Bid at the touch", "pct"),
    "ask_at_top": ("Ask at the touch", "pct"),
    "order_to_trade": ("Order-to-trade (orders per fill)", "ratio"),
    "avg_quoted_spread": ("Average quoted spread", "price"),
    "avg_quoted_spread_bps": ("Average quoted spread", "bps"),
    "volume": ("Volume", "qty"),
    "spread_capture": ("Spread capture", "money"),
    "inventory_pnl": ("Inventory PnL", "money"),
    "fees": ("Fees", "money"),
    "realized": ("Realized", "money"),
    "unrealized": ("Unrealized", "money"),
    "total": ("Total", "money"),
    "per_unit": ("per unit of base", "money"),
    "avg_ticks": ("average, ticks per lot", "ticks"),
    "quantity": ("quantity settled", "qty"),
    "mean": ("mean", "qty"),
    "std": ("standard deviation", "qty"),
    "min": ("min", "qty"),
    "max": ("max", "qty"),
    "time_weighted_mean": ("time-weighted mean", "qty"),
    "samples_step_s": ("sampling step", "seconds"),
    "top_of_book_samples": ("top-of-book samples", "int"),
}
SKIPPED = {"start_ts_ms", "end_ts_ms", "cancelled", "sharpe_annualisation", "histogram", "bot", "start", "end"}
SHARPE_NOTE = (
    "mean / standard deviation of the equity's per-sample returns (risk-free rate 0), "
    "annualised by sqrt(samples per 365-day year)"
)


def _dec(value: Any) -> Decimal | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


def _plain(d: Decimal, places: int) -> str:
    text = f"{d.quantize(Decimal(1).scaleb(-places)):,f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def format_value(value: Any, kind: str, *, quote: str = "", base: str = "") -> str:
    """One value as text with its unit; ``—`` when missing."""
    if value is None or value == "":
        return "—"
    d = _dec(value)
    if d is None or kind == "text":
        return str(value)
    if kind == "money":
        return f"{_plain(d, 4)} {quote}".strip()
    if kind == "pct":
        return f"{_plain(d * 100, 2)} %"
    if kind == "ratio":
        return _plain(d, 2)
    if kind == "int":
        return f"{int(d):,}"
    if kind == "qty":
        return f"{_plain(d, 8)} {base}".strip()
    if kind == "ticks":
        return f"{_plain(d, 2)} ticks"
    if kind == "bps":
        return f"{_plain(d, 2)} bps"
    if kind == "price":
        return f"{_plain(d, 8)} {quote}".strip()
    if kind == "seconds":
        seconds = float(d)
        if seconds >= 3600:
            return f"{seconds / 3600:.2f} h"
        if seconds >= 60:
            return f"{seconds / 60:.1f} min"
        return f"{seconds:.1f} s"
    return _plain(d, 6)


def metric_rows(metrics: dict[str, Any], *, quote: str = "", base: str = "", prefix: str = "") -> list[dict[str, str]]:
    """``[{name, label, value, note}]`` for a (nested) metrics dict: known names get their label,
    unit and precision; nested dicts become rows named ``outer · inner``; lists are left out."""
    rows: list[dict[str, str]] = []
    order = {name: i for i, name in enumerate(KNOWN)}
    # The database's JSON keeps no key order: known metrics first, in KNOWN's order.
    for key, value in sorted(metrics.items(), key=lambda item: (isinstance(item[1], dict), order.get(item[0], 999))):
        if key in SKIPPED or isinstance(value, list):
            continue
        label, kind = KNOWN.get(key, (key.replace("_", " "), "auto"))
        name = f"{prefix}{label}" if not prefix else f"{prefix} · {label}"
        if isinstance(value, dict):
            rows += metric_rows(value, quote=quote, base=base, prefix=name)
            continue
        if kind == "auto":
            kind = "int" if isinstance(value, int) and not isinstance(value, bool) else "auto"
        note = SHARPE_NOTE if key == "sharpe" else ""
        if key == "sharpe" and value is None:
            note = "not computed: fewer than three equity samples or no variation"
        rows.append(
            {"name": key, "label": name, "value": format_value(value, kind, quote=quote, base=base), "note": note}
        )
    return rows
