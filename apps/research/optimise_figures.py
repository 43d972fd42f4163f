"""Plotly figures of an optimisation fold: trials in parallel coordinates, parameter importances."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go

from apps.dashboard.figures import ACCENT, _dict, _layout


def parallel_coordinates(fold: dict) -> dict[str, Any] | None:
    """One line per completed trial across its parameters and the objective's value."""
    trials = [t for t in fold.get("all_trials", []) if t.get("state") == "complete" and t.get("value") is not None]
    if not trials:
        return None
    names = sorted({k for t in trials for k in t["params"]})
    dims = []
    for name in names:
        values = [t["params"].get(name) for t in trials]
        if all(isinstance(v, int | float) for v in values):
            dims.append({"label": name, "values": [float(v) for v in values]})
        else:  # categorical or decimal strings: positions of the distinct values
            try:
                numbers = [float(v) for v in values]
                dims.append({"label": name, "values": numbers})
            except (TypeError, ValueError):
                labels = sorted({str(v) for v in values})
                dims.append(
                    {"label": name, "values": [labels.index(str(v)) for v in values],
                     "tickvals": list(range(len(labels))), "ticktext": labels}
                )  # fmt: skip
    objective = [t["value"] for t in trials]
    dims.append({"label": "objective", "values": objective})
    fig = go.Figure(
        go.Parcoords(line={"color": objective, "colorscale": "Viridis", "showscale": True}, dimensions=dims)
    )
    fig.update_layout(**_layout("", height=300, margin={"l": 60, "r": 60, "t": 56, "b": 24}))
    return _dict(fig)


def importances(fold: dict) -> dict[str, Any] | None:
    values = fold.get("importances") or {}
    if not values:
        return None
    names = list(values)
    fig = go.Figure(go.Bar(x=[values[n] for n in names], y=names, orientation="h", marker_color=ACCENT))
    fig.update_layout(**_layout("Parameter importance (fANOVA, last fold)", height=60 + 28 * len(names)))
    return _dict(fig)
