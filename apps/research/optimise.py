"""Optuna studies over a strategy's parameters, with walk-forward validation.

* **Storage**: Optuna's own RDB storage in the project's PostgreSQL (its tables live beside
  ours; one study per fold, named ``mm-opt-<id>-fold-<n>``), so trials run by any worker on any
  machine land in one study and Optuna hands out the next parameters.
* **Work**: ``workers.backtests.optimise_trials`` tasks (the ``backtests`` queue), ``parallel``
  of them per fold, each running trials until the study holds ``n_trials`` finished trials; the
  first one to see its fold complete claims it (a short row lock) and evaluates it out of sample
  outside the lock. Folds are independent studies, so every fold's tasks are queued at the start:
  a worker never waits for another fold's last trial or evaluation, which is what lets the wall
  time drop with the number of workers (``bench/bench_optimise.py``).
* **Walk-forward**: the recording's events are cut into ``folds + 1`` equal consecutive
  segments; fold *i* optimises on segment *i* (in-sample) and evaluates the chosen parameters on
  segment *i + 1* (out-of-sample). Results show both figures and the degradation. The
  recommended parameters are the last fold's (trained on the most recent data) and are withheld
  ("no best") when any fold's out-of-sample figure falls below ``oos_min``. With ``folds = 0``
  there is one study on all the events and no out-of-sample figure.
* **Objectives** (``validation.OBJECTIVES``) are read from the same result payload a backtest
  stores; a trial that breaks a constraint (max drawdown, max inventory) or has no value (a
  Sharpe without returns) is *pruned* with the reason in its user attributes, so it can never be
  the best.
"""

from __future__ import annotations

import logging
import time
from decimal import Decimal
from typing import Any

import optuna
from celery import current_app
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.db.models.functions import Least
from django.utils import timezone

from apps.backtests import runner
from apps.backtests.models import RunStatus
from apps.research.models import Optimisation

logger = logging.getLogger(__name__)
# Queued by name (apps never import workers): routed to the backtests queue by its prefix.
TRIALS_TASK = "workers.backtests.optimise_trials"
optuna.logging.set_verbosity(optuna.logging.WARNING)
_events_cache: dict[tuple[str, int | None], tuple[Any, list]] = {}
FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL)


_storage: optuna.storages.RDBStorage | None = None


def storage() -> optuna.storages.RDBStorage:
    """Optuna's RDB storage on the project's database, one per process (its own pool)."""
    global _storage
    if _storage is None:
        db = settings.DATABASES["default"]
        auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
        url = f"postgresql+psycopg://{auth}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"
        _storage = optuna.storages.RDBStorage(url, engine_kwargs={"pool_pre_ping": True, "pool_size": 2})
    return _storage


def dispose_storage() -> None:
    """Close the storage's connections (tests, before their database is dropped)."""
    global _storage
    if _storage is not None:
        _storage.engine.dispose()
        _storage = None


def recording_events(name: str, max_events: int | None) -> tuple[Any, list]:
    """The recording's events (as the backtester sees them) and instrument, once per process."""
    key = (name, max_events)
    if key not in _events_cache:
        data = {"recording": name} | ({"max_events": max_events} if max_events else {})
        prepared = runner.prepare_source("recording", data)
        _events_cache[key] = (prepared, list(prepared.events))
    return _events_cache[key]


def segments(n_events: int, folds: int) -> list[tuple[int, int]]:
    """``folds + 1`` consecutive equal ranges of event indexes (one range when folds is 0)."""
    parts = folds + 1
    size = n_events // parts
    return [(i * size, (i + 1) * size if i < parts - 1 else n_events) for i in range(parts)]


def objective_value(name: str, payload: dict) -> float | None:
    metrics = payload["metrics"]
    quality = metrics.get("quality", {})
    if name == "net_pnl":
        return float(Decimal(metrics["total_pnl"]))
    if name == "pnl_per_inventory_risk":
        std = quality.get("inventory", {}).get("std") or 0.0
        return float(Decimal(metrics["total_pnl"])) / std if std > 0 else None
    if name == "sharpe":
        return metrics.get("sharpe")
    if name == "markout_adjusted_spread_capture":
        markout = quality.get("markouts", {}).get("10s")
        return float(Decimal(markout["total"])) if markout else None
    if name == "fill_ratio":
        return metrics.get("fill_ratio")
    raise ValueError(f"objective: {name!r} is not a metric")


def constraint_broken(constraints: dict, payload: dict) -> str | None:
    metrics = payload["metrics"]
    if "max_drawdown" in constraints and Decimal(metrics["max_drawdown"]) > Decimal(str(constraints["max_drawdown"])):
        return f"max drawdown {metrics['max_drawdown']} above {constraints['max_drawdown']}"
    if "max_inventory" in constraints:
        inv = metrics.get("quality", {}).get("inventory", {})
        worst = max(abs(Decimal(inv.get("min", "0"))), abs(Decimal(inv.get("max", "0"))))
        if worst > Decimal(str(constraints["max_inventory"])):
            return f"inventory reached {worst}, above {constraints['max_inventory']}"
    return None


def evaluate(opt: Optimisation, params: dict, start: int, end: int) -> tuple[float | None, dict]:
    """Backtest ``params`` on events ``[start, end)`` of the optimisation's recording."""
    prepared, events = recording_events(opt.recording, opt.max_events)
    window = runner.Prepared(prepared.instrument, events[start:end], end - start, venue=prepared.venue)
    result, engine, bt = runner.simulate(strategy=opt.strategy, params=params, risk={}, prepared=window)
    payload = runner.result_payload(result, engine, bt, window)
    return objective_value(opt.objective, payload), payload


def suggest(trial: optuna.Trial, space: dict) -> dict:
    """Parameters for one trial from a normalised space (``services.normalise_space``)."""
    out: dict[str, Any] = {}
    for name, spec in space.items():
        if spec["kind"] == "choice":
            out[name] = trial.suggest_categorical(name, spec["values"])
        elif spec["kind"] == "int":
            out[name] = trial.suggest_int(name, int(spec["low"]), int(spec["high"]), log=spec["log"])
        else:
            value = trial.suggest_float(name, float(spec["low"]), float(spec["high"]), log=spec["log"])
            out[name] = f"{Decimal(repr(value)).quantize(Decimal('1e-10')).normalize():f}"
    return out


def _sampler(opt: Optimisation, fold: int) -> optuna.samplers.BaseSampler:
    seed = opt.pk * 100 + fold  # reproducible, and each fold explores on its own
    if opt.sampler == "grid":
        return optuna.samplers.GridSampler({k: v["values"] for k, v in opt.search_space.items()}, seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def create_study(opt: Optimisation, fold: int) -> optuna.Study:
    return optuna.create_study(
        study_name=opt.study_name(fold),
        storage=storage(),
        sampler=_sampler(opt, fold),
        direction="maximize",
        load_if_exists=True,
    )


def run_trials(opt_id: int, fold: int) -> None:
    """Run trials of one fold's study until it holds ``n_trials`` finished trials (or the
    optimisation is cancelled); then let :func:`finish_fold` decide whether the fold is done."""
    opt = Optimisation.objects.get(pk=opt_id)
    if opt.status == RunStatus.CANCELLING:
        finish_fold(opt_id, fold)  # marks it cancelled
        return
    if opt.status != RunStatus.RUNNING or fold in _folds_taken(opt):
        return
    _prepared, events = recording_events(opt.recording, opt.max_events)
    start, end = segments(len(events), opt.folds)[fold]
    study = optuna.load_study(study_name=opt.study_name(fold), storage=storage(), sampler=_sampler(opt, fold))

    def objective(trial: optuna.Trial) -> float:
        params = {**opt.base_params, **suggest(trial, opt.search_space)}
        value, payload = evaluate(opt, params, start, end)
        trial.set_user_attr("params", params)
        trial.set_user_attr("fills", payload["metrics"]["fills"])
        broken = constraint_broken(opt.constraints, payload)
        if broken or value is None:
            trial.set_user_attr("pruned", broken or f"{opt.objective} has no value for this run")
            raise optuna.TrialPruned(broken or "no value")
        return float(value)

    def stop_when_done(study: optuna.Study, _trial) -> None:
        finished = len(study.get_trials(deepcopy=False, states=FINISHED))
        _progress(opt)
        current = Optimisation.objects.only("status").get(pk=opt_id).status
        if finished >= opt.n_trials or current != RunStatus.RUNNING:
            study.stop()

    if len(study.get_trials(deepcopy=False, states=FINISHED)) < opt.n_trials:
        study.optimize(objective, n_trials=opt.n_trials, callbacks=[stop_when_done], catch=(Exception,))
    finish_fold(opt_id, fold)


def _folds_taken(opt: Optimisation) -> set[int]:
    """Folds already evaluated or being evaluated by a task."""
    return {f["fold"] for f in opt.results.get("folds", [])} | set(opt.results.get("claimed", []))


def _progress(opt: Optimisation) -> None:
    """One more finished trial: ``trials_done`` counts them over every fold (capped at the total,
    as parallel tasks may finish a trial or two past ``n_trials``); the ETA follows from it."""
    total = opt.n_trials * max(opt.folds, 1)
    Optimisation.objects.filter(pk=opt.pk, status=RunStatus.RUNNING).update(
        trials_done=Least(F("trials_done") + 1, total)
    )
    done = Optimisation.objects.values_list("trials_done", flat=True).get(pk=opt.pk)
    elapsed = (timezone.now() - opt.started).total_seconds() if opt.started else 0.0
    eta = elapsed / done * (total - done) if done else None
    Optimisation.objects.filter(pk=opt.pk, status=RunStatus.RUNNING).update(
        progress=min(int(done * 100 / total), 99), eta_seconds=eta
    )


def finish_fold(opt_id: int, fold: int) -> None:
    """Evaluate a finished fold once: claim it under a short row lock, evaluate it out of sample
    without the lock (the other tasks keep reporting progress), then record it; the last fold
    recorded concludes the optimisation."""
    with transaction.atomic():
        opt = Optimisation.objects.select_for_update().get(pk=opt_id)
        if opt.status == RunStatus.CANCELLING:
            opt.status, opt.finished = RunStatus.CANCELLED, timezone.now()
            opt.save(update_fields=["status", "finished"])
            return
        if fold in _folds_taken(opt):
            return
        if opt.status != RunStatus.RUNNING:
            return
        study = optuna.load_study(study_name=opt.study_name(fold), storage=storage())
        if len(study.get_trials(deepcopy=False, states=FINISHED)) < opt.n_trials:
            return  # another task of this fold is still running trials
        opt.results = {**opt.results, "claimed": [*opt.results.get("claimed", []), fold]}
        opt.save(update_fields=["results"])
    try:
        result = _fold_result(opt, fold, study)
    except Exception as exc:  # the fold is recorded as failed, so the optimisation still concludes
        logger.exception("optimisation %s: fold %s could not be evaluated", opt_id, fold)
        result = {"fold": fold, "error": f"evaluation failed: {type(exc).__name__}: {exc}"}
    with transaction.atomic():
        opt = Optimisation.objects.select_for_update().get(pk=opt_id)
        folds = sorted([*opt.results.get("folds", []), result], key=lambda f: f["fold"])
        claimed = [f for f in opt.results.get("claimed", []) if f != fold]
        opt.results = {**opt.results, "folds": folds, "claimed": claimed}
        remaining = sorted(set(range(max(opt.folds, 1))) - {f["fold"] for f in folds})
        if remaining:
            opt.fold = remaining[0]
        elif opt.status == RunStatus.RUNNING:
            opt.results = {**opt.results, **_conclusion(opt)}
            opt.results.pop("claimed", None)
            opt.status, opt.progress, opt.finished, opt.eta_seconds = RunStatus.SUCCEEDED, 100, timezone.now(), 0
            opt.trials_done = opt.n_trials * max(opt.folds, 1)
        opt.save()


def _fold_result(opt: Optimisation, fold: int, study: optuna.Study) -> dict:
    _prepared, events = recording_events(opt.recording, opt.max_events)
    ranges = segments(len(events), opt.folds)
    completed = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    top = sorted(completed, key=lambda t: t.value, reverse=True)[:10]
    out: dict[str, Any] = {
        "fold": fold,
        "train_events": list(ranges[fold]),
        "trials": len(study.trials),
        "completed": len(completed),
        "pruned": sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials),
        "top_trials": [{"number": t.number, "value": t.value, "params": t.user_attrs.get("params")} for t in top],
        "all_trials": [
            {"number": t.number, "value": t.value, "state": t.state.name.lower(), "params": t.params}
            for t in study.trials
        ],
    }
    if not completed:
        out["error"] = "no trial completed (every one broke a constraint or had no value)"
        return out
    best = top[0]
    out["best_params"], out["in_sample"] = best.user_attrs["params"], best.value
    try:
        out["importances"] = {k: round(v, 4) for k, v in optuna.importance.get_param_importances(study).items()}
    except (RuntimeError, ValueError) as exc:  # fewer than two completed trials, or one-valued space
        out["importances"] = {}
        out["importances_note"] = str(exc)
    if opt.folds:
        start, end = ranges[fold + 1]
        value, _payload = evaluate(opt, out["best_params"], start, end)
        out["test_events"], out["out_of_sample"] = [start, end], value
        if value is not None and best.value:
            out["degradation"] = (best.value - value) / abs(best.value)
    return out


def _conclusion(opt: Optimisation) -> dict:
    folds = opt.results["folds"]
    if any("best_params" not in f for f in folds):
        reasons = sorted({f.get("error", "no trial completed") for f in folds if "best_params" not in f})
        return {"best": None, "best_refused": "a fold had no result: " + "; ".join(reasons)}
    last = folds[-1]
    if opt.folds and opt.oos_min is not None:
        low = [f["fold"] for f in folds if f.get("out_of_sample") is None or f["out_of_sample"] < float(opt.oos_min)]
        if low:
            return {
                "best": None,
                "best_refused": f"out-of-sample {opt.objective} below {opt.oos_min} in fold(s) {low}",
                "candidate": last["best_params"],
            }
    return {"best": last["best_params"], "best_value": last.get("out_of_sample", last["in_sample"])}


def start(opt_id: int) -> None:
    """Start an optimisation: mark it running, create fold 0's study, queue its trial tasks."""
    updated = Optimisation.objects.filter(pk=opt_id, status=RunStatus.QUEUED).update(
        status=RunStatus.RUNNING, started=timezone.now()
    )
    if not updated:
        return
    opt = Optimisation.objects.get(pk=opt_id)
    started = time.monotonic()
    try:
        recording_events(opt.recording, opt.max_events)
        for fold in range(max(opt.folds, 1)):
            create_study(opt, fold)
    except Exception as exc:
        logger.exception("optimisation %s failed to start", opt_id)
        Optimisation.objects.filter(pk=opt_id).update(status=RunStatus.FAILED, error=f"{type(exc).__name__}: {exc}")
        return
    logger.info("optimisation %s ready in %.1f s", opt_id, time.monotonic() - started)
    for fold in range(max(opt.folds, 1)):  # folds are independent: all of them queued now, in order
        for _ in range(opt.parallel):
            current_app.send_task(TRIALS_TASK, args=[opt_id, fold])
