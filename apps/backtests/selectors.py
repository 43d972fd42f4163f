"""Reads of backtest runs, scoped: owners see their own runs, operators every run."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from apps.backtests.models import BacktestFill, BacktestRun


def backtest_list(*, user, status: str | None = None, strategy: str | None = None) -> QuerySet[BacktestRun]:
    """Runs the user may see, newest first."""
    runs = BacktestRun.objects.select_related("owner")
    if not user.is_operator:
        runs = runs.filter(owner=user)
    if status:
        runs = runs.filter(status=status)
    if strategy:
        runs = runs.filter(strategy=strategy)
    return runs


def backtest_get(*, user, run_id: Any) -> BacktestRun | None:
    """The run if the user may see it, else ``None`` (the API answers 404 either way)."""
    try:
        return backtest_list(user=user).get(pk=int(run_id))
    except (BacktestRun.DoesNotExist, TypeError, ValueError):
        return None


def backtest_fills(*, run: BacktestRun) -> QuerySet[BacktestFill]:
    """The run's fills in time order (the run must come from a scoped selector)."""
    return BacktestFill.objects.filter(run=run).order_by("ts", "id")


def backtest_metrics_rows(*, run: BacktestRun) -> list[tuple[str, str]]:
    """``(name, value)`` rows of the metrics and PnL decomposition for CSV export; nested
    dicts flatten to ``outer.inner``."""
    rows: list[tuple[str, str]] = [
        ("run_id", str(run.pk)),
        ("name", run.name),
        ("strategy", run.strategy),
        ("data_source", run.data_source),
        ("status", run.status),
    ]

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key in sorted(value):
                walk(f"{prefix}.{key}" if prefix else str(key), value[key])
        else:
            rows.append((prefix, "" if value is None else str(value)))

    walk("", run.metrics or {})
    walk("pnl", run.pnl_decomposition or {})
    return rows
