"""Backtest jobs on the ``backtests`` queue (routed by name: ``workers.backtests.*``)."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="workers.backtests.run", ignore_result=True, acks_late=True)
def run(run_id: int) -> str:
    """Execute a queued backtest run: progress saved and pushed, cancellable, results stored."""
    from apps.backtests.runner import backtest_execute

    finished = backtest_execute(run_id=run_id)
    return "not queued" if finished is None else finished.status
