"""Overview, bot detail (ladder, depth, fills, PnL, risk, events, config), bot creation and
bot actions. Reads through selectors, writes through services; another user's bot is a 404."""

from __future__ import annotations

from datetime import timedelta

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from apps.accounts.errors import FieldErrors
from apps.bots import hedged
from apps.bots import services as bot_services
from apps.bots.controls import account_close_all, account_kill_switch, bot_flatten, flatten_text, global_kill_state
from apps.bots.guards import LargeOrderConfirmation
from apps.bots.hedge_position import bot_legs, flatten_offer
from apps.bots.selectors import bot_can_change, bot_config_history, bot_event_list, bot_list
from apps.dashboard import figures, live
from apps.dashboard.forms import BotCreateForm, BotMetaForm, SchemaFieldset, strategy_warning
from apps.dashboard.perp import perp_figures
from apps.dashboard.perp_form import PerpFieldsets
from apps.dashboard.pnl import bot_pnl_live, pnl_message
from apps.dashboard.portfolio import portfolio_overview
from apps.dashboard.quality import WINDOW_CHOICES, quality_context
from apps.dashboard.selectors import risk_defaults_get
from apps.dashboard.templatetags.dashboard import num
from apps.dashboard.views.common import (
    error_text,
    field_errors,
    group_events,
    require_change,
    risk_usage,
    safe_next,
    today_pnl,
    today_rows,
)
from apps.dashboard.views.inventory import InventoryTargetForm
from apps.dashboard.views.markets import TIMEFRAMES
from apps.derivatives.hosting import PERP_KEY, live_perp, perp_market
from apps.exchanges.selectors import exchange_account_list, market_list
from apps.portfolio.bot_pnl import fills_with_realized
from apps.portfolio.inventory import owner_inventory
from apps.portfolio.positions import account_positions
from apps.portfolio.selectors import pnl_series

ACTIONS = {
    "start": bot_services.bot_start,
    "pause": bot_services.bot_pause,
    "resume": bot_services.bot_resume,
    "stop": bot_services.bot_stop,
    "kill": bot_services.bot_kill,
    "flatten": bot_flatten,
    "hedge_resume": hedged.hedge_resume,
}


def _downsample(values: list, limit: int = 120) -> list:
    step = max(1, len(values) // limit)
    return values[::step]


@login_required
def overview(request):
    bots = list(bot_list(user=request.user))
    statuses = live.bot_status_many(bot_ids=[b.pk for b in bots])
    rows = []
    for bot in bots:
        pnl_rows = today_rows(user=request.user, bot=bot)
        status = statuses.get(bot.pk)
        pnl = pnl_message(bot_pnl_live(user=request.user, bot=bot))
        legs, flattenable = flatten_offer(bot, status or {}, pnl.get("position"))
        rows.append(
            {
                "bot": bot,
                "status": status,
                "pnl": pnl,
                "legs": legs,
                "flattenable": flattenable,
                "account_equity": (status or {}).get("equity"),
                "spark_id": f"spark-{bot.pk}",
                "spark": figures.sparkline(_downsample([r["equity"] for r in pnl_rows])) if pnl_rows else None,
                "feed": live.feed_health(venue=bot.market.venue, symbol=bot.market.symbol),
                "can_change": bot_can_change(user=request.user, bot=bot),
                "risk": (status or {}).get("risk", ""),
                "max_position": (bot.risk or {}).get("max_position_base"),
                "hedge_leg": hedged.hedge_leg(bot, status),
            }
        )
    accounts = exchange_account_list(user=request.user) if request.user.can_trade else []
    if request.user.is_operator:
        accounts = [a for a in accounts if a.owner_id == request.user.pk]
    context = {
        "rows": rows,
        "accounts": accounts,
        "global_kill": global_kill_state(),
        "portfolio": portfolio_overview(user=request.user, accounts=accounts) if accounts else None,
        "inventory": owner_inventory(owner=request.user),
        "positions": account_positions(owner=request.user),
        "inventory_form": InventoryTargetForm(),
    }
    return render(request, "dashboard/overview.html", context)


def _bot_or_404(request, bot_id: int):
    return get_object_or_404(bot_list(user=request.user), pk=bot_id)


def _config_context(bot, *, strategy=None, params=None, risk=None, errors=None, meta_form=None):
    errors = errors or {}
    strategy = strategy or bot.strategy
    risk = bot.risk if risk is None else risk
    perp_fields = None
    risk_errors = errors.get("risk")
    # a hedged bot's perpetual legs take their settings from maker_perp / hedge_perp, not risk.perp
    if strategy != hedged.STRATEGY and (bot.market.is_perpetual or live_perp(bot.market.venue, bot.market.symbol)):
        rec = perp_market(bot.market.venue, bot.market.symbol, bot.market)
        perp_fields = PerpFieldsets((risk or {}).get(PERP_KEY), max_leverage=rec.contract.max_leverage if rec else None)
        risk_errors = perp_fields.set_errors(risk_errors or {})
    return {
        "meta_form": meta_form or BotMetaForm(initial={"name": bot.name, "strategy": strategy}),
        "params_fields": SchemaFieldset.for_bot_strategy(
            strategy, bot.params if params is None else params, errors.get("params"), owner=bot.owner
        ),
        "risk_fields": SchemaFieldset.for_risk(risk, risk_errors),
        "perp_fields": perp_fields,
        "config_errors": {k: v for k, v in errors.items() if k not in ("params", "risk")},
    }


@login_required
def bot_detail(request, bot_id: int, *, config_ctx=None, status_code: int = 200):
    bot = _bot_or_404(request, bot_id)
    status = live.bot_status(bot_id=bot.pk)
    book = live.latest_book(venue=bot.market.venue, symbol=bot.market.symbol) or {"bids": [], "asks": []}
    quotes = (status or {}).get("orders", [])
    now = timezone.now()
    series = pnl_series(
        user=request.user, bot_id=bot.pk, interval="1m", start=now - timedelta(hours=6), end=now + timedelta(minutes=1)
    )
    rows_today = today_rows(user=request.user, bot=bot)
    pnl_today = today_pnl(rows_today)
    pnl = pnl_message(bot_pnl_live(user=request.user, bot=bot))
    legs, flattenable = flatten_offer(bot, status or {}, pnl.get("position"))
    context = {
        "bot": bot,
        "status": status,
        "pnl": pnl,
        "book": book,
        "quotes": quotes,
        "perp": perp_figures(status),
        "legs": legs,
        "flattenable": flattenable,
        "is_perp": bot.market.is_perpetual or live_perp(bot.market.venue, bot.market.symbol),
        "can_change": bot_can_change(user=request.user, bot=bot),
        "depth_fig": figures.depth_chart(bids=book["bids"], asks=book["asks"], quotes=quotes),
        "charts": figures.pnl_charts(series, target=(bot.params or {}).get("inventory_target")),
        "fills": fills_with_realized(user=request.user, bot_id=bot.pk, limit=30),
        "events": group_events(bot_event_list(bot=bot)[:500]),
        "history": bot_config_history(bot=bot)[:15],
        "risk_rows": risk_usage(bot, status, pnl_today),
        "account_equity_today": pnl_today,
        "global_kill": global_kill_state(),
        "feed": live.feed_health(venue=bot.market.venue, symbol=bot.market.symbol),
        "live_urls": {
            "book": f"/ws/book/{bot.market.venue}/{bot.market.symbol}/",
            "bot": f"/ws/bot/{bot.pk}/",
            "charts": reverse("market-live", args=[bot.market_id]) + f"?bot={bot.pk}",
        },
        "timeframes": list(TIMEFRAMES),
        "quality_windows": WINDOW_CHOICES,
    }
    if bot.strategy == hedged.STRATEGY:
        context["hedged"] = {"status": (status or {}).get("hedged"), **hedged.attribution(bot, limit=50)}
    context.update(config_ctx or _config_context(bot))
    return render(request, "dashboard/bot_detail.html", context, status=status_code)


@login_required
@require_POST
def bot_action(request, bot_id: int, action: str):
    bot = _bot_or_404(request, bot_id)
    require_change(request.user, bot)
    service = ACTIONS.get(action)
    if service is None:
        raise Http404(f"no action {action!r}")
    try:
        done = service(bot=bot, actor=request.user)
        if action == "flatten":
            legs = bot_legs(bot)
            closing = (
                f"closing {num(done)} {bot.market.base} with a reduce-only order"
                if legs is None
                else f"closing the {flatten_text(bot, done, legs)}"
            )
            messages.success(request, f"{bot.name}: flatten requested: {closing}.")
        else:
            messages.success(request, f"{bot.name}: {action} requested.")
    except (FieldErrors, ValidationError) as exc:
        messages.error(request, f"{bot.name}: {error_text(exc)}")
    return redirect(safe_next(request, reverse("bot-detail", args=[bot.pk])))


@login_required
@require_POST
def bot_manual_order(request, bot_id: int):
    from apps.bots.manual import bot_manual_order as send_manual_order

    bot = _bot_or_404(request, bot_id)
    require_change(request.user, bot)
    post = request.POST
    try:
        sent = send_manual_order(
            bot=bot, actor=request.user, side=post.get("side"), price=post.get("price", "").strip(),
            quantity=post.get("quantity", "").strip(), order_type=post.get("type"), reduce_only=post.get("reduce_only") == "1",
        )  # fmt: skip
        messages.success(
            request,
            f"{bot.name}: manual {sent['side']} {sent['quantity']} at {sent['price']} sent to the bot (event log).",
        )
    except FieldErrors as exc:
        messages.error(request, f"{bot.name}: manual order refused: {error_text(exc)}")
    return redirect(reverse("bot-detail", args=[bot.pk]))


@login_required
@require_POST
def bot_config(request, bot_id: int):
    bot = _bot_or_404(request, bot_id)
    require_change(request.user, bot)
    meta = BotMetaForm(request.POST)
    if not meta.is_valid():
        return bot_detail(request, bot_id, config_ctx=_config_context(bot, meta_form=meta), status_code=400)
    strategy = meta.cleaned_data["strategy"]
    params_set = SchemaFieldset.for_bot_strategy(strategy)
    risk_set = SchemaFieldset.for_risk()
    params = (
        params_set.parse(request.POST)
        if strategy == bot.strategy or request.POST.get("params_for") == strategy
        else dict(bot.params)
    )
    risk = risk_set.parse(request.POST)
    perp_bot = strategy != hedged.STRATEGY and (
        bot.market.is_perpetual or live_perp(bot.market.venue, bot.market.symbol)
    )
    if perp_bot:  # posted inputs, else kept
        if PerpFieldsets.posted(request.POST):
            risk[PERP_KEY] = PerpFieldsets().parse(request.POST)
        elif PERP_KEY in (bot.risk or {}):
            risk[PERP_KEY] = bot.risk[PERP_KEY]
    if request.POST.get("refresh") == "1":  # another hedge account picked: its venue's markets, nothing saved
        ctx = _config_context(bot, strategy=strategy, params=params, risk=risk, meta_form=meta)
        return bot_detail(request, bot_id, config_ctx=ctx)
    try:
        bot_services.bot_update_config(
            bot=bot, actor=request.user, name=meta.cleaned_data["name"], strategy=strategy, params=params, risk=risk
        )
    except (FieldErrors, ValidationError) as exc:
        ctx = _config_context(
            bot, strategy=strategy, params=params, risk=risk, errors=field_errors(exc), meta_form=meta
        )
        for name, msgs in ctx["config_errors"].items():
            if name in meta.fields:
                for m in msgs if isinstance(msgs, list) else [msgs]:
                    meta.add_error(name, str(m))
        return bot_detail(request, bot_id, config_ctx=ctx, status_code=400)
    messages.success(request, "Configuration saved.")
    warning = strategy_warning(strategy, params, bot.market)
    if warning:
        messages.warning(request, warning)
    return redirect("bot-detail", bot_id=bot.pk)


def offered_max_leverage(markets) -> int | None:
    """The maximum leverage of the perpetual markets offered, when they share one."""
    tops = set()
    for m in markets:
        rec = perp_market(m.venue, m.symbol, m) if m.is_perpetual else None
        if rec is not None:
            tops.add(rec.contract.max_leverage)
    return tops.pop() if len(tops) == 1 else None


@login_required
def bot_create(request):
    if not request.user.can_trade:
        messages.error(request, "Viewers cannot create bots.")
        return redirect("overview")
    accounts = list(exchange_account_list(user=request.user).filter(owner=request.user))
    markets = list(market_list().filter(venue__in={a.venue for a in accounts}))
    strategy = request.POST.get("strategy") or request.GET.get("strategy") or "fixed_spread"
    refresh = request.method == "POST" and request.POST.get("refresh") == "1"
    if refresh:  # the parameters reloaded for another strategy: the choices so far, no errors yet
        chosen = {k: request.POST.get(k) for k in ("name", "exchange_account", "market") if request.POST.get(k)}
        form = BotCreateForm(accounts=accounts, markets=markets, initial={"strategy": strategy, **chosen})
    else:
        form = BotCreateForm(request.POST or None, accounts=accounts, markets=markets, initial={"strategy": strategy})
    params_set = SchemaFieldset.for_bot_strategy(strategy, owner=request.user)
    risk_set = SchemaFieldset.for_risk(risk_defaults_get(user=request.user))
    perp_sets = PerpFieldsets(max_leverage=offered_max_leverage(markets))
    status_code = 200
    confirm = None  # a large order's value to confirm (apps/bots/guards.py)
    warning = ""
    if request.method == "POST" and request.POST.get("refresh") != "1":
        params = params_set.parse(request.POST)
        risk = risk_set.parse(request.POST)
        if form.is_valid():
            account = next(a for a in accounts if str(a.pk) == form.cleaned_data["exchange_account"])
            market = next(m for m in markets if str(m.pk) == form.cleaned_data["market"])
            perp_market_chosen = market.is_perpetual or live_perp(market.venue, market.symbol)
            if perp_market_chosen and strategy != hedged.STRATEGY:  # perpetual markets only; hedged: maker_perp
                risk[PERP_KEY] = perp_sets.parse(request.POST)
            warning = strategy_warning(strategy, params, market)
            try:
                bot = bot_services.bot_create(
                    owner=request.user,
                    name=form.cleaned_data["name"],
                    exchange_account=account,
                    market=market,
                    strategy=strategy,
                    params=params,
                    risk=risk,
                    actor=request.user,
                    confirm_large=request.POST.get("confirm_large") == "1",
                )
            except LargeOrderConfirmation as exc:
                confirm = {"message": field_errors(exc)["params"]["order_amount"][0], "notional": exc.notional,
                           "value": exc.value, "quote": exc.quote}  # fmt: skip
            except (FieldErrors, ValidationError) as exc:
                errors = field_errors(exc)
                params_set.errors = errors.get("params") or {}
                risk_set.errors = perp_sets.set_errors(errors.get("risk") or {})
                for name, msgs in errors.items():
                    if name in form.fields:
                        for m in msgs if isinstance(msgs, list) else [msgs]:
                            form.add_error(name, str(m))
            else:
                messages.success(request, f"Bot {bot.name} created. Start it when ready.")
                if warning:
                    messages.warning(request, warning)
                return redirect("bot-detail", bot_id=bot.pk)
        status_code = 400
    elif request.method == "POST":
        params_set.parse(request.POST)
        risk_set.parse(request.POST)
        perp_sets.parse(request.POST)
    return render(
        request,
        "dashboard/bot_create.html",
        {
            "form": form,
            "params_fields": params_set,
            "risk_fields": risk_set,
            "perp_fields": perp_sets,
            "perp_offered": strategy != hedged.STRATEGY
            and any(m.is_perpetual or live_perp(m.venue, m.symbol) for m in markets),
            "account_types": {str(a.pk): {"venue": a.venue, "type": a.default_type or "spot"} for a in accounts},
            "strategy": strategy,
            "confirm": confirm,
            "warning": warning,
        },
        status=status_code,
    )


def _account_to_act_on(request, account_id: int):
    """The account (404 if not visible) when the user may act on it (owner trader, operator), else ``None``."""
    account = get_object_or_404(exchange_account_list(user=request.user), pk=account_id)
    if request.user.is_operator or (account.owner_id == request.user.pk and request.user.can_trade):
        return account
    return None


@login_required
@require_POST
def account_kill(request, account_id: int):
    account = _account_to_act_on(request, account_id)
    if account is None:
        return HttpResponseBadRequest("viewers cannot use the kill switch")
    on = request.POST.get("on", "1") == "1"
    killed = account_kill_switch(account=account, actor=request.user, on=on, reason=request.POST.get("reason", ""))
    if on:
        messages.warning(request, f"Kill switch ON for {account.label}: {killed} bot(s) killed.")
    else:
        messages.success(request, f"Kill switch cleared for {account.label}.")
    return redirect(safe_next(request, reverse("overview")))


@login_required
@require_POST
def account_close_all_view(request, account_id: int):
    account = _account_to_act_on(request, account_id)
    if account is None:
        return HttpResponseBadRequest("viewers cannot close positions")
    try:
        done = account_close_all(account=account, actor=request.user)
    except (FieldErrors, ValidationError) as exc:
        messages.error(request, f"{account.label}: {error_text(exc)}")
    else:
        if done:
            closing = ", ".join(
                f"{b.name} {num(p)} {b.market.base}" if legs is None else f"{b.name} {flatten_text(b, p, legs)}"
                for b, p in done
                for legs in [bot_legs(b)]
            )
            messages.success(request, f"{account.label}: closing every position ({closing}).")
        else:
            messages.info(request, f"{account.label}: no bot holds a position.")
    return redirect(safe_next(request, reverse("overview")))


@login_required
def bot_quality(request, bot_id: int):
    """The quality panel (a fragment the bot page loads after it has rendered)."""

    bot = _bot_or_404(request, bot_id)
    context = quality_context(user=request.user, bot=bot, window=request.GET.get("window", "1h"))
    context["can_change"] = bot_can_change(user=request.user, bot=bot)
    return render(request, "dashboard/_quality.html", context)


@login_required
@require_POST
def incident_resolve(request, incident_id: int):
    from apps.core.selectors import incident_list

    incident = get_object_or_404(incident_list(user=request.user), pk=incident_id)
    if incident.bot is not None:
        require_change(request.user, incident.bot)
    elif not (request.user.is_operator or incident.owner_id == request.user.pk):
        raise Http404("no such incident")
    if not incident.resolved:
        incident.resolved = True
        incident.save(update_fields=["resolved"])
        messages.success(request, f"Incident #{incident.pk} ({incident.get_kind_display()}) resolved.")
    return redirect(safe_next(request, reverse("overview")))
