"""Research pages: upload recordings and read their quality report; run parameter optimisations
with walk-forward validation, follow their progress, read the results and turn the best
parameters into a bot (or a new config version of one)."""

from __future__ import annotations

import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from apps.dashboard.views.common import error_text
from apps.research import optimise_figures, selectors, services
from apps.research.validation import OBJECTIVES
from trading.strategies import STRATEGIES

EXAMPLE_SPACE = '{"bid_spread": {"low": "0.00002", "high": "0.0005", "log": true},\n "ask_spread": {"low": "0.00002", "high": "0.0005"}}'


def _json_field(request, name: str, default):
    raw = (request.POST.get(name) or "").strip()
    if not raw:
        return default
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise ValueError(f"{name}: not JSON ({exc})") from None


@login_required
def research_index(request):
    from apps.exchanges.models import Market
    from connectors.binance_recording import RECORDINGS

    form = request.POST if request.method == "POST" else {}
    status_code = 200
    if request.method == "POST":
        if not request.user.can_trade:
            raise PermissionDenied("viewers cannot run optimisations")
        try:
            data = {
                "name": request.POST.get("name", ""),
                "strategy": request.POST.get("strategy", ""),
                "params": _json_field(request, "params", {}),
                "search_space": _json_field(request, "search_space", {}),
                "sampler": request.POST.get("sampler", "tpe"),
                "objective": request.POST.get("objective", ""),
                "constraints": _json_field(request, "constraints", {}),
                "recording": request.POST.get("recording", ""),
                "folds": int(request.POST.get("folds") or 0),
                "n_trials": int(request.POST.get("n_trials") or 0),
                "parallel": int(request.POST.get("parallel") or 2),
            }
            if request.POST.get("max_events"):
                data["max_events"] = int(request.POST["max_events"])
            if request.POST.get("oos_min"):
                data["oos_min"] = request.POST["oos_min"].strip()
            opt = services.optimisation_create(owner=request.user, data=data)
        except (ValueError, services.OptimisationInputError) as exc:
            messages.error(request, error_text(exc))
            status_code = 400
        else:
            messages.success(request, f"Optimisation #{opt.pk} queued.")
            return redirect("optimisation-detail", opt_id=opt.pk)
    context = {
        "form": form,
        "strategies": list(STRATEGIES),
        "objectives": OBJECTIVES,
        "shipped": list(RECORDINGS),
        "recordings": selectors.recording_list(user=request.user)[:50],
        "markets": Market.objects.filter(active=True).order_by("venue", "symbol"),
        "optimisations": selectors.optimisation_list(user=request.user)[:30],
        "example_space": EXAMPLE_SPACE,
    }
    return render(request, "dashboard/research.html", context, status=status_code)


@login_required
@require_POST
def recording_upload(request):
    from apps.exchanges.models import Market
    from apps.research.recordings import RecordingRefused, register

    if not request.user.can_trade:
        raise PermissionDenied("viewers cannot upload recordings")
    market = (
        Market.objects.filter(pk=request.POST.get("market") or 0).first()
        if (request.POST.get("market") or "").isdigit()
        else None
    )
    files = request.FILES.getlist("files")
    try:
        if market is None:
            raise RecordingRefused({"market": "choose a market"})
        rec = register(
            owner=request.user, name=request.POST.get("name", ""), market=market, uploads=[(f.name, f) for f in files]
        )
    except RecordingRefused as exc:
        messages.error(request, "Recording refused: " + error_text(exc))
        return redirect("research")
    messages.success(request, f"Recording {rec.name!r} registered (backtests and optimisations: user:{rec.pk}).")
    return redirect("recording-detail", rec_id=rec.pk)


@login_required
def recording_detail(request, rec_id: int):
    rec = selectors.recording_get(user=request.user, rec_id=rec_id)
    if rec is None:
        raise Http404("no such recording")
    return render(request, "dashboard/research_recording.html", {"rec": rec})


def _opt_or_404(request, opt_id: int):
    opt = selectors.optimisation_get(user=request.user, opt_id=opt_id)
    if opt is None:
        raise Http404("no such optimisation")
    return opt


@login_required
def optimisation_detail(request, opt_id: int):
    from apps.bots.selectors import bot_list
    from apps.exchanges.selectors import exchange_account_list

    opt = _opt_or_404(request, opt_id)
    folds = (opt.results or {}).get("folds", [])
    context = {
        "opt": opt,
        "folds": folds,
        "best": (opt.results or {}).get("best"),
        "refused": (opt.results or {}).get("best_refused"),
        "parcoords": optimise_figures.parallel_coordinates(folds[-1]) if folds else None,
        "importances": optimise_figures.importances(folds[-1]) if folds else None,
        "bots": [
            b for b in bot_list(user=request.user) if b.strategy == opt.strategy and b.owner_id == request.user.pk
        ],
        "accounts": exchange_account_list(user=request.user),
        "active": opt.status in ("queued", "running", "cancelling"),
    }
    return render(request, "dashboard/research_optimisation.html", context)


@login_required
@require_POST
def optimisation_action(request, opt_id: int, action: str):
    from apps.accounts.errors import FieldErrors
    from apps.bots.selectors import bot_can_change, bot_list
    from apps.bots.services import bot_create
    from apps.exchanges.models import Market
    from apps.exchanges.selectors import exchange_account_list

    opt = _opt_or_404(request, opt_id)
    if opt.owner_id != request.user.pk and not request.user.is_operator:
        raise PermissionDenied("only the owner may act on an optimisation")
    best = (opt.results or {}).get("best")
    try:
        if action == "cancel":
            services.optimisation_cancel(optimisation=opt)
            messages.success(request, f"Optimisation #{opt.pk} is stopping.")
        elif not best:
            messages.error(
                request,
                "There are no recommended parameters: "
                + ((opt.results or {}).get("best_refused") or f"the run is {opt.status}"),
            )
        elif action == "apply":
            bot = bot_list(user=request.user).filter(pk=request.POST.get("bot") or 0).first()
            if bot is None or not bot_can_change(user=request.user, bot=bot):
                raise Http404("no such bot")
            version = services.optimisation_apply(optimisation=opt, bot=bot, actor=request.user)
            messages.success(request, f"{bot.name}: configuration version {version} with the optimised parameters.")
            return redirect("bot-detail", bot_id=bot.pk)
        elif action == "create-bot":
            account = exchange_account_list(user=request.user).filter(pk=request.POST.get("account") or 0).first()
            market = Market.objects.filter(pk=request.POST.get("market") or 0).first()
            if account is None or market is None:
                raise FieldErrors({"account": ["choose one of your accounts and a market"]})
            bot = bot_create(
                owner=request.user, name=request.POST.get("bot_name", ""), exchange_account=account,
                market=market, strategy=opt.strategy, params=best,
            )  # fmt: skip
            messages.success(request, f"Bot {bot.name!r} created with the optimised parameters (stopped).")
            return redirect("bot-detail", bot_id=bot.pk)
        else:
            raise Http404("no such action")
    except (FieldErrors, ValueError) as exc:
        messages.error(request, error_text(exc))
    return redirect("optimisation-detail", opt_id=opt.pk)
