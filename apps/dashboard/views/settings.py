"""Settings: exchange accounts (add, verify, rotate keys — secrets are write-only —, change the
type: spot or derivatives), risk
defaults, notification channels and rules with a "send test" button."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from apps.accounts.errors import FieldErrors
from apps.bots.selectors import bot_list
from apps.dashboard.forms import ChannelForm, ExchangeAccountForm, RotateKeysForm, RuleForm, SchemaFieldset
from apps.dashboard.selectors import risk_defaults_get
from apps.dashboard.services import risk_defaults_set
from apps.dashboard.views.common import error_text, field_errors
from apps.exchanges import services as ex_services
from apps.exchanges.models import MarketType
from apps.exchanges.selectors import exchange_account_list
from apps.notifications import services as nt_services
from apps.notifications.selectors import channel_get, channel_list, delivery_list, rule_list

SERVICE_ERRORS = (FieldErrors, ValidationError, nt_services.NotificationInputError)


def _own_accounts(user):
    return exchange_account_list(user=user).filter(owner=user)


def _require_trader(user) -> None:
    if not user.can_trade:
        raise PermissionDenied("viewers cannot change settings of accounts or notifications")


def _add_errors(form, exc: Exception) -> None:
    for name, msgs in field_errors(exc).items():
        msgs = msgs if isinstance(msgs, list) else [msgs]
        for m in msgs:
            text = "; ".join(f"{k}: {v}" for k, v in m.items()) if isinstance(m, dict) else str(m)
            form.add_error(name if name in form.fields else None, text)


@login_required
def settings_page(
    request, *, account_form=None, channel_form=None, rule_form=None, risk_fields=None, status_code: int = 200
):
    user = request.user
    channels = list(channel_list(user=user).filter(owner=user))
    context = {
        "accounts": _own_accounts(user),
        "account_form": account_form or ExchangeAccountForm(initial={"kind": "paper", "venue": "replay:binance-spot"}),
        "rotate_form": RotateKeysForm(),
        "market_types": MarketType.choices,
        "risk_fields": risk_fields or SchemaFieldset.for_risk(risk_defaults_get(user=user)),
        "channels": channels,
        "channel_form": channel_form or ChannelForm(),
        "rules": rule_list(user=user).filter(owner=user),
        "rule_form": rule_form or RuleForm(channels=channels, bots=bot_list(user=user)),
        "deliveries": delivery_list(user=user).filter(channel__owner=user).order_by("-created")[:15],
    }
    return render(request, "dashboard/settings.html", context, status=status_code)


@login_required
@require_POST
def account_add(request):
    _require_trader(request.user)
    form = ExchangeAccountForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            account = ex_services.exchange_account_create(
                owner=request.user,
                label=data["label"],
                venue=data["venue"],
                kind=data["kind"],
                api_key=data["api_key"],
                api_secret=data["api_secret"],
                passphrase=data["passphrase"],
                paper_balances=data["paper_balances"] or None,
                default_type=data["default_type"],
                actor=request.user,
                ip=request.META.get("REMOTE_ADDR"),
            )
        except SERVICE_ERRORS as exc:
            _add_errors(form, exc)
        else:
            note = " Its API secrets are stored encrypted and will not be shown again." if data["api_key"] else ""
            messages.success(request, f"Account {account.label} added.{note}")
            return redirect("settings")
    return settings_page(request, account_form=form, status_code=400)


@login_required
@require_POST
def account_verify(request, account_id: int):
    _require_trader(request.user)
    account = get_object_or_404(_own_accounts(request.user), pk=account_id)
    account = ex_services.exchange_account_verify(account=account, actor=request.user)
    level = messages.success if account.verify_status == "ok" else messages.error
    level(request, f"{account.label}: {account.get_verify_status_display()} — {account.verify_message}")
    return redirect("settings")


@login_required
@require_POST
def account_rotate(request, account_id: int):
    _require_trader(request.user)
    account = get_object_or_404(_own_accounts(request.user), pk=account_id)
    form = RotateKeysForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"{account.label}: give both the new API key and its secret.")
        return redirect("settings")
    try:
        ex_services.exchange_account_rotate_keys(account=account, actor=request.user, **form.cleaned_data)
        messages.success(request, f"{account.label}: keys replaced; verify the account again.")
    except SERVICE_ERRORS as exc:
        messages.error(request, f"{account.label}: {error_text(exc)}")
    return redirect("settings")


@login_required
@require_POST
def account_type(request, account_id: int):
    """Change an account's type (spot / derivatives); refused while any of its bots runs."""
    _require_trader(request.user)
    account = get_object_or_404(_own_accounts(request.user), pk=account_id)
    wanted = request.POST.get("default_type", "")
    try:
        account = ex_services.exchange_account_update(account=account, actor=request.user, default_type=wanted)
        messages.success(request, f"{account.label}: markets are now {account.get_default_type_display()}.")
    except SERVICE_ERRORS as exc:
        messages.error(request, f"{account.label}: not changed: {error_text(exc)}")
    return redirect("settings")


@login_required
@require_POST
def risk_defaults(request):
    _require_trader(request.user)
    fields = SchemaFieldset.for_risk()
    risk = fields.parse(request.POST)
    try:
        risk_defaults_set(user=request.user, risk=risk)
    except FieldErrors as exc:
        fields.errors = exc.errors.get("risk", {})
        return settings_page(request, risk_fields=fields, status_code=400)
    messages.success(request, "Risk defaults saved; new bots start with them.")
    return redirect("settings")


@login_required
@require_POST
def channel_add(request):
    _require_trader(request.user)
    form = ChannelForm(request.POST)
    if form.is_valid():
        try:
            nt_services.channel_create(
                owner=request.user,
                kind=form.cleaned_data["kind"],
                name=form.cleaned_data["name"],
                config=form.config(),
                secret=form.cleaned_data["secret"],
            )
        except SERVICE_ERRORS as exc:
            errors = field_errors(exc)
            config_errors = errors.pop("config", None)
            if isinstance(config_errors, dict):
                for v in config_errors.values():
                    form.add_error("target", str(v))
            elif config_errors:
                form.add_error("target", str(config_errors))
            for name, msg in errors.items():
                form.add_error(name if name in form.fields else None, str(msg))
        else:
            messages.success(request, "Channel added.")
            return redirect("settings")
    return settings_page(request, channel_form=form, status_code=400)


@login_required
@require_POST
def channel_test(request, channel_id: int):
    _require_trader(request.user)
    channel = channel_get(user=request.user, channel_id=channel_id)
    if channel is None or channel.owner_id != request.user.pk:
        from django.http import Http404

        raise Http404("no such channel")
    delivery = nt_services.channel_send_test(channel=channel)
    messages.success(request, f"Test message queued to {channel.name} (delivery #{delivery.pk}).")
    return redirect("settings")


@login_required
@require_POST
def rule_add(request):
    _require_trader(request.user)
    channels = list(channel_list(user=request.user).filter(owner=request.user))
    bots = list(bot_list(user=request.user))
    form = RuleForm(request.POST, channels=channels, bots=bots)
    if form.is_valid():
        chosen = [c for c in channels if str(c.pk) in form.cleaned_data["channels"]]
        bot = next((b for b in bots if str(b.pk) == form.cleaned_data["bot"]), None)
        try:
            nt_services.rule_create(
                owner=request.user,
                event_kind=form.cleaned_data["event_kind"],
                channels=chosen,
                bot=bot,
                threshold=form.cleaned_data["threshold"] or None,
            )
        except SERVICE_ERRORS as exc:
            for name, msg in field_errors(exc).items():
                form.add_error(name if name in form.fields else None, str(msg))
        else:
            messages.success(request, "Rule added.")
            return redirect("settings")
    return settings_page(request, rule_form=form, status_code=400)
