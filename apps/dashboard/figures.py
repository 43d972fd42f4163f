"""Plotly figures built server-side with ``plotly.graph_objects``; each function returns the
figure as a JSON-ready dict (``{"data": [...], "layout": {...}}``) for ``Plotly.react`` in the page.

Prices and sizes arrive as ``Decimal`` or decimal strings; they become floats only here, for
drawing (never for money arithmetic).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio

BID = "#138a5b"
ASK = "#c23b3b"
ACCENT = "#2f5fd0"
MUTED = "#6b7385"
WARN = "#b7791f"


def _layout(title: str = "", height: int = 260, **extra: Any) -> dict[str, Any]:
    layout = {
        "title": {"text": title, "font": {"size": 13}, "x": 0.01} if title else None,
        "height": height,
        "margin": {"l": 48, "r": 12, "t": 28 if title else 8, "b": 32},
        "paper_bgcolor": "#fff",
        "plot_bgcolor": "#fff",
        "font": {"family": "system-ui, sans-serif", "size": 11, "color": "#1d2330"},
        "xaxis": {"gridcolor": "#eef0f4", "zeroline": False},
        "yaxis": {"gridcolor": "#eef0f4", "zeroline": False},
        "showlegend": False,
        "legend": {"orientation": "h", "y": 1.12, "x": 1, "xanchor": "right"},
    }
    layout.update(extra)
    return {k: v for k, v in layout.items() if v is not None}


def _dict(fig: go.Figure) -> dict[str, Any]:
    return json.loads(pio.to_json(fig, validate=False, engine="json"))


def _finish(fig: go.Figure, layout: dict[str, Any]) -> dict[str, Any]:
    """The figure as a dict with ``layout`` set on it (plain values from ``_layout``):
    Plotly's ``update_layout`` validates every key and cost ~50 ms a figure."""
    out = _dict(fig)
    out["layout"] = {**out.get("layout", {}), **layout}
    return out


def _f(value: Any) -> float | None:
    if value is None or value == "":
        return None
    return float(Decimal(str(value)))


def depth_chart(
    *, bids: Sequence[Sequence[Any]], asks: Sequence[Sequence[Any]], quotes: Iterable[dict[str, Any]] = ()
) -> dict[str, Any]:
    """Cumulative depth of both sides; own quotes (``{side, price, qty}``) as diamonds on it."""
    bid_px = [_f(p) for p, _ in bids]
    ask_px = [_f(p) for p, _ in asks]
    bid_cum, total = [], 0.0
    for _, q in bids:
        total += _f(q) or 0.0
        bid_cum.append(total)
    ask_cum, total = [], 0.0
    for _, q in asks:
        total += _f(q) or 0.0
        ask_cum.append(total)
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=bid_px, y=bid_cum, name="bids", mode="lines+markers", line_shape="hv", fill="tozeroy", line={"color": BID}
        )
    )
    fig.add_trace(
        go.Scatter(
            x=ask_px, y=ask_cum, name="asks", mode="lines+markers", line_shape="hv", fill="tozeroy", line={"color": ASK}
        )
    )
    quotes = list(quotes)
    fig.add_trace(
        go.Scatter(
            x=[_f(q["price"]) for q in quotes],
            y=[0 for _ in quotes],
            name="my quotes",
            mode="markers",
            marker={
                "symbol": "diamond",
                "size": 11,
                "color": [BID if q["side"] == "buy" else ASK for q in quotes],
                "line": {"color": "#1d2330", "width": 1},
            },
            text=[f"my {q['side']} {q['qty']} @ {q['price']}" for q in quotes],
            hoverinfo="text",
        )
    )
    layout = _layout("Depth", showlegend=True)
    layout["xaxis"] = {**layout["xaxis"], "exponentformat": "none", "separatethousands": True}
    return _finish(fig, layout)


def pnl_charts(rows: Sequence[dict[str, Any]], *, target: Any = None) -> dict[str, dict[str, Any]]:
    """Bot PnL (total, realized, unrealized), inventory against its target and the bot PnL's
    drawdown (:func:`bot_pnl_drawdown`) from ``pnl_series`` rows."""
    times = [r["bucket"].isoformat() if hasattr(r["bucket"], "isoformat") else r["bucket"] for r in rows]
    pnl = go.Figure()
    total = [None if r["realized"] is None else (_f(r["realized"]) + _f(r["unrealized"]) - _f(r["fees"])) for r in rows]
    pnl.add_trace(go.Scatter(x=times, y=total, name="bot PnL", line={"color": ACCENT}))
    pnl.add_trace(go.Scatter(x=times, y=[_f(r["realized"]) for r in rows], name="realized", line={"color": BID}))
    pnl.add_trace(go.Scatter(x=times, y=[_f(r["unrealized"]) for r in rows], name="unrealized", line={"color": WARN}))
    inventory = go.Figure(
        go.Scatter(
            x=times,
            y=[_f(r["position"]) for r in rows],
            name="position",
            line={"color": MUTED},
            line_shape="hv",
            fill="tozeroy",
        )
    )
    if times:
        level = _f(target) or 0.0
        inventory.add_trace(
            go.Scatter(
                x=[times[0], times[-1]],
                y=[level, level],
                name="target",
                mode="lines",
                line={"color": ACCENT, "dash": "dot", "width": 1},
            )
        )
    drawdown = go.Figure(
        go.Scatter(x=times, y=bot_pnl_drawdown(total), name="drawdown", line={"color": ASK}, fill="tozeroy")
    )
    return {
        "pnl": _finish(pnl, _layout("Bot PnL (quote)", showlegend=True)),
        "inventory": _finish(inventory, _layout("Inventory vs target (base)")),
        "drawdown": _finish(drawdown, _layout("Bot PnL drawdown (quote)")),
    }


def bot_pnl_drawdown(total: Sequence[float | None]) -> list[float | None]:
    """How far the bot's PnL is below its best so far (0 or negative; the peak starts at 0, the
    PnL before the first fill), from the bot's own PnL, never the account's equity (which moves
    with everything the account holds). ``None`` (no PnL in a bucket) stays ``None``."""
    peak, out = 0.0, []
    for value in total:
        if value is None:
            out.append(None)
            continue
        peak = max(peak, value)
        out.append(value - peak)
    return out


def sparkline(values: Sequence[Any]) -> dict[str, Any]:
    """A tiny line without axes for tables."""
    fig = go.Figure(go.Scatter(y=[_f(v) for v in values], mode="lines", line={"color": ACCENT, "width": 1.5}))
    layout = _layout(height=36, margin={"l": 0, "r": 0, "t": 0, "b": 0})
    layout["xaxis"] = {"visible": False}
    layout["yaxis"] = {"visible": False}
    return _finish(fig, layout)


def candlestick(
    rows: Sequence[dict[str, Any]], *, fills: Sequence[dict[str, Any]] = (), timeframe: str = "1m"
) -> dict[str, Any]:
    """OHLC candles from ``marketdata.selectors.candles`` rows; ``fills`` (``{ts, side, price,
    quantity}``) are drawn on them as triangles (buys up, sells down)."""
    fig = go.Figure(
        go.Candlestick(
            x=[r["bucket"].isoformat() for r in rows],
            open=[_f(r["open"]) for r in rows],
            high=[_f(r["high"]) for r in rows],
            low=[_f(r["low"]) for r in rows],
            close=[_f(r["close"]) for r in rows],
            increasing={"line": {"color": BID}},
            decreasing={"line": {"color": ASK}},
            name="candles",
        )
    )
    for side, symbol, color in (("buy", "triangle-up", BID), ("sell", "triangle-down", ASK)):
        mine = [f for f in fills if f["side"] == side]
        if mine:
            fig.add_trace(
                go.Scatter(
                    x=[f["ts"].isoformat() for f in mine],
                    y=[_f(f["price"]) for f in mine],
                    mode="markers",
                    name=f"my {side}s",
                    marker={"symbol": symbol, "size": 9, "color": color, "line": {"color": "#1d2330", "width": 1}},
                    text=[f"my {side} {f['quantity']} @ {f['price']}" for f in mine],
                    hoverinfo="text",
                )
            )
    layout = _layout(f"Candles ({timeframe})", height=300, showlegend=bool(fills))
    if not rows:
        layout["annotations"] = [
            {"text": "no trades stored in this period yet", "showarrow": False, "xref": "paper", "yref": "paper",
             "x": 0.5, "y": 0.5, "font": {"color": MUTED}}
        ]  # fmt: skip
    layout["yaxis"] = {**layout["yaxis"], "exponentformat": "none", "separatethousands": True, "autorange": True}
    layout["xaxis"] = {**layout["xaxis"], "rangeslider": {"visible": False}, "autorange": True}
    return _finish(fig, layout)


def heatmap(data: dict[str, Any], *, rows: int = 40) -> dict[str, Any]:
    """Order-book liquidity over time: resting size per price bin (y) and time bucket (x)."""
    columns = data.get("columns", [])
    prices = [_f(p) for c in columns for side in ("bids", "asks") for p, _ in c[side]]
    fig = go.Figure()
    if prices:
        low, high = min(prices), max(prices)
        step = (high - low) / rows or 1.0
        z = [[0.0] * len(columns) for _ in range(rows)]
        for x, column in enumerate(columns):
            for side in ("bids", "asks"):
                for price, qty in column[side]:
                    y = min(int((_f(price) - low) / step), rows - 1)
                    z[y][x] += _f(qty) or 0.0
        fig.add_trace(
            go.Heatmap(
                x=[c["ts"].isoformat() for c in columns],
                y=[low + step * (i + 0.5) for i in range(rows)],
                z=z,
                colorscale="Blues",
                showscale=False,
            )
        )
        fig.add_trace(
            go.Scatter(
                x=[c["ts"].isoformat() for c in columns],
                y=[_f(c["mid"]) for c in columns],
                name="mid",
                line={"color": "#1d2330", "width": 1},
            )
        )
    return _finish(fig, _layout("Order-book heat map", height=300))


def equity_and_drawdown(curve: Sequence[Sequence[Any]]) -> dict[str, dict[str, Any]]:
    """Backtest equity curve ``[[ts_ms, equity], ...]`` and the drawdown from its running peak."""
    from datetime import UTC, datetime

    times = [datetime.fromtimestamp(ts / 1000, tz=UTC).isoformat() for ts, _ in curve]
    equity = [_f(e) or 0.0 for _, e in curve]
    peak, drawdown = float("-inf"), []
    for e in equity:
        peak = max(peak, e)
        drawdown.append(e - peak)
    eq = go.Figure(go.Scatter(x=times, y=equity, name="equity", line={"color": ACCENT}))
    dd = go.Figure(go.Scatter(x=times, y=drawdown, name="drawdown", line={"color": ASK}, fill="tozeroy"))
    return {
        "equity": _finish(
            eq, _layout("Equity", yaxis={"gridcolor": "#eef0f4", "exponentformat": "none", "separatethousands": True})
        ),
        "drawdown": _finish(dd, _layout("Drawdown")),
    }


def equity_comparison(runs: Sequence[Any]) -> dict[str, Any]:
    """Several backtests' equity curves on one chart (relative time in seconds from each start)."""
    fig = go.Figure()
    for run in runs:
        curve = run.equity_curve or []
        if not curve:
            continue
        t0 = curve[0][0]
        fig.add_trace(
            go.Scatter(
                x=[(ts - t0) / 1000 for ts, _ in curve], y=[_f(e) for _, e in curve], name=f"#{run.pk} {run.name}"
            )
        )
    return _finish(fig, _layout("Equity (seconds from start)", height=320, showlegend=True))


def pnl_decomposition(decomposition: dict[str, Any]) -> dict[str, Any]:
    """A bar per component of the PnL decomposition (numeric entries only)."""
    names, values = [], []
    for name, value in decomposition.items():
        try:
            values.append(_f(value))
            names.append(name.replace("_", " "))
        except (ArithmeticError, ValueError, TypeError):
            continue
    colors = [BID if (v or 0) >= 0 else ASK for v in values]
    fig = go.Figure(go.Bar(x=names, y=values, marker={"color": colors}))
    return _finish(fig, _layout("PnL decomposition"))


def histograms(series: dict[str, Sequence[float]], *, title: str, bins: int = 30) -> dict[str, Any] | None:
    """Overlaid distributions, binned here (bars: the finance Plotly bundle has no histogram
    binning of its own to rely on); ``None`` when every series is empty."""
    values = [v for vs in series.values() for v in vs]
    if not values:
        return None
    low, high = min(values), max(values)
    width = (high - low) / bins or 1.0
    colors = [ACCENT, WARN, BID, ASK]
    fig = go.Figure()
    for i, (name, vs) in enumerate(series.items()):
        if not vs:
            continue
        counts = [0] * bins
        for v in vs:
            counts[min(int((v - low) / width), bins - 1)] += 1
        fig.add_trace(
            go.Bar(
                x=[low + width * (k + 0.5) for k in range(bins)],
                y=counts,
                name=f"{name} (n={len(vs)})",
                opacity=0.6,
                marker={"color": colors[i % len(colors)]},
            )
        )
    layout = _layout(title, showlegend=True, barmode="overlay", bargap=0.05)
    layout["yaxis"] = {**layout["yaxis"], "title": {"text": "count"}}
    return _finish(fig, layout)


def inventory_histogram(buckets: Sequence[dict[str, Any]], *, base: str) -> dict[str, Any] | None:
    """Share of time spent per position bucket."""
    if not buckets:
        return None
    fig = go.Figure(
        go.Bar(
            x=[f"{_f(b['low']):g}…{_f(b['high']):g}" for b in buckets],
            y=[b["share"] * 100 for b in buckets],
            marker={"color": MUTED},
        )
    )
    layout = _layout(f"Time per position ({base})")
    layout["yaxis"] = {**layout["yaxis"], "title": {"text": "% of time"}}
    return _finish(fig, layout)


def allocation(values: dict[str, Any], *, title: str) -> dict[str, Any] | None:
    """A donut of positive values (quote currency)."""
    items = [(k, _f(v)) for k, v in values.items() if _f(v) and _f(v) > 0]
    if not items:
        return None
    fig = go.Figure(
        go.Pie(labels=[k for k, _ in items], values=[v for _, v in items], hole=0.5, textinfo="label+percent")
    )
    return _finish(fig, _layout(title, height=240, showlegend=False))


def value_over_time(series: dict[str, Sequence[tuple[Any, Any]]]) -> dict[str, Any]:
    """Each account's equity over time (one line per account)."""
    fig = go.Figure()
    for name, points in series.items():
        fig.add_trace(
            go.Scatter(x=[t.isoformat() for t, _ in points], y=[_f(v) for _, v in points], name=name, mode="lines")
        )
    layout = _layout("Account equity over time (quote)", height=240, showlegend=True)
    layout["yaxis"] = {**layout["yaxis"], "exponentformat": "none", "separatethousands": True}
    return _finish(fig, layout)


def exposure_chart(series: Sequence[Sequence[Any]], limit: Any) -> dict[str, Any]:
    """A hedged run's net unhedged exposure ``[[ts_ms, base], ...]`` as steps, with the +/- limit."""
    from datetime import UTC, datetime

    times = [datetime.fromtimestamp(ts / 1000, tz=UTC).isoformat() for ts, _ in series]
    fig = go.Figure(
        go.Scatter(x=times, y=[_f(v) for _, v in series], name="exposure", line={"color": ACCENT, "shape": "hv"})
    )
    bound = _f(limit)
    if bound is not None and times:
        for sign in (1, -1):
            fig.add_trace(
                go.Scatter(
                    x=[times[0], times[-1]], y=[sign * bound] * 2, name="limit", line={"color": WARN, "dash": "dot"}
                )
            )
    return _finish(fig, _layout("Unhedged exposure (base)"))
