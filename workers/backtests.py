"""Backtest jobs on the ``backtests`` queue (routed by name: ``workers.backtests.*``)."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="workers.backtests.run", ignore_result=True, acks_late=True)
def run(run_id: int) -> str:
    """Execute a queued backtest run: progress saved and pushed, cancellable, results stored."""
    from apps.backtests.runner import backtest_execute

    finished = backtest_execute(run_id=run_id)
    return "not queued" if finished is None else finished.status


@shared_task(name="workers.backtests.optimise", ignore_result=True, acks_late=True)
def optimise(opt_id: int) -> None:
    """Start a parameter optimisation: fold 0's study, then its trial tasks (same queue)."""
    from apps.research.optimise import start

    start(opt_id)


@shared_task(name="workers.backtests.optimise_trials", ignore_result=True, acks_late=True)
def optimise_trials(opt_id: int, fold: int) -> None:
    """Run trials of one fold's Optuna study; the last task of a fold evaluates it."""
    from apps.research.optimise import run_trials

    run_trials(opt_id, fold)
