"""Writes of backtest runs: create (and enqueue), cancel, progress, results.

The run itself executes in ``workers.backtests.run`` (enqueued by name after commit); the
worker calls :func:`backtest_start`, :func:`backtest_progress_update` and
:func:`backtest_store_result` / :func:`backtest_fail`. State changes are compare-and-swap
updates so a cancel and a finishing worker never overwrite each other.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from celery import current_app
from django.db import transaction
from django.utils import timezone

from apps.backtests.models import ACTIVE_STATUSES, BacktestFill, BacktestRun, DataSource, RunStatus
from apps.backtests.validation import BacktestInputError, validate_backtest_input

RUN_TASK = "workers.backtests.run"
MAX_EQUITY_POINTS = 1_000


class BacktestStateError(ValueError):
    """The run is not in a state that allows this (e.g. cancelling a finished run)."""


@transaction.atomic
def backtest_create(
    *,
    owner,
    name: str,
    strategy: str,
    params: dict,
    data_source: str,
    data_params: dict,
    risk: dict | None = None,
) -> BacktestRun:
    """Validate and queue a backtest; raises :class:`BacktestInputError` naming every bad field."""
    risk = {} if risk is None else risk
    errors = validate_backtest_input(
        strategy=strategy, params=params, risk=risk, data_source=data_source, data_params=data_params, owner=owner
    )
    if not isinstance(name, str) or not name.strip() or len(name) > 128:
        errors["name"] = f"{name!r} is not accepted; give 1 to 128 characters"
    if not getattr(owner, "can_trade", False):
        errors["owner"] = "viewers cannot run backtests; accepted: a trader or operator"
    if errors:
        raise BacktestInputError(errors)
    run = BacktestRun.objects.create(
        owner=owner,
        name=name.strip(),
        strategy=strategy,
        params=params,
        risk=risk,
        data_source=DataSource(data_source),
        data_params=data_params,
    )
    transaction.on_commit(lambda: current_app.send_task(RUN_TASK, args=[run.pk]))
    return run


def _refresh(run: BacktestRun) -> BacktestRun:
    run.refresh_from_db()
    return run


def backtest_cancel(*, run: BacktestRun) -> BacktestRun:
    """Cancel: a queued run is cancelled at once; a running one goes to ``cancelling`` and the
    worker stops at its next progress update. Cancelling a finished run raises
    :class:`BacktestStateError`; cancelling twice is harmless."""
    now = timezone.now()
    if BacktestRun.objects.filter(pk=run.pk, status=RunStatus.QUEUED).update(
        status=RunStatus.CANCELLED, cancel_requested=True, finished=now
    ):
        return _refresh(run)
    if BacktestRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING).update(
        status=RunStatus.CANCELLING, cancel_requested=True
    ):
        return _refresh(run)
    run = _refresh(run)
    if run.status in (RunStatus.CANCELLING, RunStatus.CANCELLED):
        return run
    raise BacktestStateError(f"status: run {run.pk} is {run.status}; accepted: queued or running")


def backtest_start(*, run_id: int) -> bool:
    """Claim a queued run for a worker (``queued`` -> ``running``). False: not queued (already
    claimed, cancelled or gone) and the worker must not run it."""
    return bool(
        BacktestRun.objects.filter(pk=run_id, status=RunStatus.QUEUED).update(
            status=RunStatus.RUNNING, started=timezone.now(), progress=0
        )
    )


def backtest_progress_update(*, run_id: int, progress: float, eta_seconds: float | None = None) -> bool:
    """Save progress (0-100, never backwards) and the ETA. Returns True when the worker should
    stop (cancel requested, or the run is no longer active)."""
    percent = max(0, min(100, int(progress)))
    eta = None if eta_seconds is None else max(0, round(eta_seconds))
    BacktestRun.objects.filter(
        pk=run_id, status__in=(RunStatus.RUNNING, RunStatus.CANCELLING), progress__lte=percent
    ).update(progress=percent, eta_seconds=eta)
    row = BacktestRun.objects.filter(pk=run_id).values("status", "cancel_requested").first()
    return row is None or row["cancel_requested"] or row["status"] not in ACTIVE_STATUSES


def downsample(points: Sequence[Sequence[Any]], limit: int = MAX_EQUITY_POINTS) -> list[list[Any]]:
    """At most ``limit`` evenly spaced points, always keeping the first and the last."""
    points = [list(p) for p in points]
    if len(points) <= limit:
        return points
    if limit < 2:
        return points[-1:]
    step = (len(points) - 1) / (limit - 1)
    return [points[round(i * step)] for i in range(limit)]


@transaction.atomic
def backtest_store_result(
    *,
    run_id: int,
    metrics: dict[str, Any],
    equity_curve: Sequence[Sequence[Any]],
    pnl_decomposition: dict[str, Any],
    fills: Iterable[dict[str, Any]] = (),
    cancelled: bool = False,
) -> BacktestRun:
    """Store a finished (or, with ``cancelled``, partial) result: metrics, the equity curve
    downsampled to at most 1,000 points, the PnL decomposition and every fill
    (``{ts: datetime, side, price, qty, fee, liquidity}``). Status becomes ``succeeded`` or
    ``cancelled``; a run already final is left untouched (raises BacktestStateError)."""
    run = BacktestRun.objects.select_for_update().get(pk=run_id)
    if run.status not in (RunStatus.RUNNING, RunStatus.CANCELLING):
        raise BacktestStateError(f"status: run {run_id} is {run.status}; accepted: running or cancelling")
    BacktestFill.objects.bulk_create(
        [
            BacktestFill(
                run=run,
                ts=_ts(f["ts"]),
                side=f["side"],
                price=Decimal(str(f["price"])),
                qty=Decimal(str(f["qty"])),
                fee=Decimal(str(f.get("fee", 0))),
                liquidity=f["liquidity"],
            )
            for f in fills
        ],
        batch_size=5000,
    )
    finished_cancelled = cancelled or run.status == RunStatus.CANCELLING
    run.metrics = metrics
    run.equity_curve = downsample(equity_curve)
    run.pnl_decomposition = pnl_decomposition
    run.status = RunStatus.CANCELLED if finished_cancelled else RunStatus.SUCCEEDED
    if not finished_cancelled:
        run.progress = 100
    run.eta_seconds = 0
    run.finished = timezone.now()
    run.save()
    return run


def backtest_fail(*, run_id: int, error: str) -> None:
    """Mark an active run failed with a readable error."""
    BacktestRun.objects.filter(pk=run_id, status__in=ACTIVE_STATUSES).update(
        status=RunStatus.FAILED, error=error[:10_000], finished=timezone.now(), eta_seconds=None
    )


def _ts(value: datetime | str) -> datetime:
    if isinstance(value, datetime):
        return value
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError(f"ts: {value!r} has no time zone")
    return parsed
