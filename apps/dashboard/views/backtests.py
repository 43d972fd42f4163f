"""Backtests: the form (strategy, parameters, data source), a live progress bar, results
(equity, drawdown, PnL decomposition, fills, metrics) and side-by-side comparison."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from apps.backtests import services as bt_services
from apps.backtests.selectors import backtest_fills, backtest_get, backtest_list
from apps.backtests.validation import BacktestInputError
from apps.dashboard import figures
from apps.dashboard.forms import BacktestForm, SchemaFieldset
from apps.dashboard.metric_format import metric_rows
from apps.dashboard.views.common import error_text


def _run_or_404(request, run_id: int):
    run = backtest_get(user=request.user, run_id=run_id)
    if run is None:
        raise Http404("no such backtest")
    return run


@login_required
def backtest_index(request):
    strategy = request.POST.get("strategy") or request.GET.get("strategy") or "fixed_spread"
    if request.POST.get("refresh") == "1":  # parameters reloaded for another strategy: no errors yet
        form = BacktestForm(initial={**request.POST.dict(), "strategy": strategy})
    else:
        form = BacktestForm(request.POST or None, initial={"strategy": strategy})
    params_set = SchemaFieldset.for_strategy(strategy)
    risk_set = SchemaFieldset.for_risk()
    status_code = 200
    if request.method == "POST":
        if not request.user.can_trade:
            raise PermissionDenied("viewers cannot run backtests")
        params = params_set.parse(request.POST)
        risk = risk_set.parse(request.POST)
        if request.POST.get("refresh") == "1":
            pass
        elif form.is_valid():
            try:
                run = bt_services.backtest_create(
                    owner=request.user,
                    name=form.cleaned_data["name"],
                    strategy=strategy,
                    params=params,
                    risk=risk,
                    data_source=form.cleaned_data["data_source"],
                    data_params=form.cleaned_data["data_params"],
                )
            except BacktestInputError as exc:
                errors = exc.errors
                params_set.errors = errors.get("params") if isinstance(errors.get("params"), dict) else {}
                risk_set.errors = errors.get("risk") if isinstance(errors.get("risk"), dict) else {}
                for name in ("name", "strategy", "data_source", "data_params"):
                    if name in errors:
                        value = errors[name]
                        text = "; ".join(f"{k}: {v}" for k, v in value.items()) if isinstance(value, dict) else value
                        form.add_error(name, str(text))
                for name in ("params", "risk"):
                    if isinstance(errors.get(name), str):
                        form.add_error(None, f"{name}: {errors[name]}")
                status_code = 400
            else:
                messages.success(request, f"Backtest #{run.pk} queued.")
                return redirect("backtest-detail", run_id=run.pk)
        else:
            status_code = 400
    runs = backtest_list(user=request.user)[:50]
    return render(
        request,
        "dashboard/backtests.html",
        {"form": form, "params_fields": params_set, "risk_fields": risk_set, "runs": runs, "strategy": strategy},
        status=status_code,
    )


def hedged_context(hedged: dict | None) -> dict | None:
    """The two legs of a hedged run: figures, attribution distribution and rows, notes, hedge fills."""
    if not hedged:
        return None
    figures_ = [
        (k, hedged.get(k))
        for k in (
            "maker", "hedge", "maker_pnl", "hedge_pnl", "funding", "maker_fees", "hedge_fees", "maker_fills", "hedge_fills",
            "exposure_max", "exposure_limit", "exposure_time_weighted", "exposure_final", "longest_unhedged_ms", "halted",
        )
    ]  # fmt: skip
    for leg in ("maker", "hedge"):
        perp = hedged.get(f"{leg}_perp") or {}
        keys = ("margin_used", "max_margin_used", "liquidation_price", "min_liquidation_distance", "funding")
        figures_ += [(f"{leg} perp {k}", perp.get(k)) for k in keys if perp]
        if perp and "margin_refused" in hedged:  # orders the leg's pre-trade margin check kept back
            figures_.append((f"{leg} perp orders refused (margin check)", hedged["margin_refused"].get(leg, 0)))
            first = (hedged.get("margin_refused_first") or {}).get(leg)
            if first:
                figures_.append((f"{leg} perp first refusal", first))
    for q in hedged.get("liquidations") or []:  # a perpetual leg the venue liquidated
        figures_.append((f"{q['venue']} perp liquidated", _liquidation_text(q)))
    return {
        "figures": figures_,
        "distribution": list((hedged.get("attribution") or {}).items()),
        "fills": (hedged.get("attribution_fills") or [])[:200],
        "notes": hedged.get("notes") or [],
        "hedge_fills": (hedged.get("hedge_fill_rows") or [])[:200],
        "exposure_fig": figures.exposure_chart(hedged.get("exposure_series") or [], hedged.get("exposure_limit")),
    }


def _liquidation_text(q: dict) -> str:
    return (
        f"at {q['ts_ms']} ms: mark {q['mark']} reached {q['liquidation_price']}; closed at the bankruptcy price "
        f"{q['bankruptcy_price']} ({q['pnl']}); exposure left unhedged {q['exposure_left']}"
    )


@login_required
def backtest_detail(request, run_id: int):
    run = _run_or_404(request, run_id)
    charts = figures.equity_and_drawdown(run.equity_curve or []) if run.equity_curve else None
    context = {
        "run": run,
        "charts": charts,
        "decomposition_fig": figures.pnl_decomposition(run.pnl_decomposition) if run.pnl_decomposition else None,
        "fills": backtest_fills(run=run)[:200],
        "metrics": [r for r in metric_rows(run.metrics or {}) if not r["name"].lower().startswith("hedged")],
        "hedged": hedged_context(run.metrics.get("hedged")) if isinstance(run.metrics, dict) else None,
        "live_urls": {"backtest": f"/ws/backtest/{run.pk}/"},
    }
    return render(request, "dashboard/backtest_detail.html", context)


@login_required
@require_POST
def backtest_cancel(request, run_id: int):
    run = _run_or_404(request, run_id)
    if run.owner_id != request.user.pk and not request.user.is_operator:
        raise PermissionDenied("only the owner may cancel a backtest")
    try:
        bt_services.backtest_cancel(run=run)
        messages.success(request, f"Backtest #{run.pk} cancelled.")
    except ValueError as exc:
        messages.error(request, error_text(exc))
    return redirect("backtest-detail", run_id=run.pk)


@login_required
def backtest_compare(request):
    ids = [i for i in request.GET.getlist("run") if i.isdigit()][:6]
    runs = [r for r in (backtest_get(user=request.user, run_id=i) for i in ids) if r is not None]
    per_run = [{row["label"]: row["value"] for row in metric_rows(r.metrics or {})} for r in runs]
    labels = list(dict.fromkeys(label for rows in per_run for label in rows))
    table = [(label, [rows.get(label, "—") for rows in per_run]) for label in labels]
    return render(
        request,
        "dashboard/backtest_compare.html",
        {
            "runs": runs,
            "table": table,
            "fig": figures.equity_comparison(runs) if runs else None,
            "all_runs": backtest_list(user=request.user)[:50],
            "selected": {r.pk for r in runs},
        },
    )
