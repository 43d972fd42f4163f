"""Writes for optimisations: create (validated, queued on commit), cancel."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from apps.backtests.models import ACTIVE_STATUSES, RunStatus
from apps.research.models import Optimisation
from apps.research.validation import plain_decimal, validate_optimisation
from trading.strategies import describe_strategy


class OptimisationInputError(ValueError):
    def __init__(self, errors: dict[str, Any]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))


def normalise_space(strategy: str, space: dict) -> dict:
    """``{param: {"kind": "int"|"float"|"choice", ...}}`` from a validated search space."""
    props = describe_strategy(strategy)["properties"]
    out = {}
    for name, spec in space.items():
        if "values" in spec or "choices" in spec:
            out[name] = {"kind": "choice", "values": list(spec.get("values", spec.get("choices")))}
        else:
            kind = "int" if props[name].get("type") == "integer" else "float"
            low, high = plain_decimal(spec["low"]), plain_decimal(spec["high"])
            out[name] = {"kind": kind, "low": str(low), "high": str(high), "log": bool(spec.get("log"))}
    return out


def optimisation_create(*, owner, data: dict[str, Any]) -> Optimisation:
    errors = validate_optimisation(data, owner)
    if errors:
        raise OptimisationInputError(errors)
    oos = data.get("oos_min")
    opt = Optimisation.objects.create(
        owner=owner,
        name=str(data.get("name") or "optimisation")[:128],
        strategy=data["strategy"],
        base_params=data.get("params") or {},
        search_space=normalise_space(data["strategy"], data["search_space"]),
        sampler=data.get("sampler", "tpe"),
        objective=data["objective"],
        constraints={k: str(v) for k, v in (data.get("constraints") or {}).items()},
        recording=data["recording"],
        max_events=data.get("max_events"),
        folds=data.get("folds", 0),
        n_trials=data["n_trials"],
        parallel=data.get("parallel", 2),
        oos_min=plain_decimal(oos) if oos is not None else None,
    )
    transaction.on_commit(lambda: _enqueue(opt.pk))
    return opt


def _enqueue(opt_id: int) -> None:
    from celery import current_app

    current_app.send_task("workers.backtests.optimise", args=[opt_id])


def optimisation_cancel(*, optimisation: Optimisation) -> Optimisation:
    """Ask a queued or running optimisation to stop (trials stop after the one they run)."""
    if optimisation.status not in ACTIVE_STATUSES:
        return optimisation
    target = RunStatus.CANCELLED if optimisation.status == RunStatus.QUEUED else RunStatus.CANCELLING
    Optimisation.objects.filter(pk=optimisation.pk, status__in=ACTIVE_STATUSES).update(status=target)
    optimisation.refresh_from_db()
    return optimisation


def optimisation_apply(*, optimisation: Optimisation, bot, actor) -> int:
    """Give ``bot`` the optimisation's recommended parameters (same strategy) as a new config
    version, through the bots' own service (validated against the bot's market, audited)."""
    from apps.bots.models import BotConfigVersion
    from apps.bots.services import bot_update_config

    params = {**bot.params, **optimisation.results["best"]} if bot.strategy == optimisation.strategy else None
    bot_update_config(
        bot=bot,
        actor=actor,
        strategy=optimisation.strategy,
        params=params if params is not None else optimisation.results["best"],
    )
    return BotConfigVersion.objects.filter(bot=bot).order_by("-version").values_list("version", flat=True).first()
