"""Admin for exchange accounts (secrets masked, set through write-only fields) and markets."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError

from apps.accounts.errors import FieldErrors
from apps.bots.controls import account_kill_switch
from apps.exchanges import crypto
from apps.exchanges.models import ExchangeAccount, Market
from apps.exchanges.services import (
    exchange_account_create,
    exchange_account_rotate_keys,
    exchange_account_update,
    exchange_account_verify,
)


def _secret_field(label: str) -> forms.CharField:
    return forms.CharField(
        label=label,
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="write-only: leave empty to keep the stored value",
    )


class ExchangeAccountForm(forms.ModelForm):
    new_api_key = _secret_field("New API key")
    new_api_secret = _secret_field("New API secret")
    new_passphrase = _secret_field("New passphrase")

    class Meta:
        model = ExchangeAccount
        fields = ["owner", "label", "kind", "venue", "default_type", "paper_balances", "kill_switch"]


def _masked(token: str) -> str:
    try:
        return crypto.mask(crypto.decrypt(token)) or "—"
    except crypto.CredentialDecryptError:
        return "(cannot decrypt)"


@admin.register(ExchangeAccount)
class ExchangeAccountAdmin(admin.ModelAdmin):
    form = ExchangeAccountForm
    list_display = (
        "id",
        "label",
        "owner",
        "kind",
        "venue",
        "api_key_masked",
        "verify_status",
        "kill_switch",
        "created",
    )
    list_filter = ("kind", "verify_status", "kill_switch", "venue")
    search_fields = ("label", "venue", "owner__username")
    readonly_fields = (
        "api_key_masked",
        "api_secret_masked",
        "passphrase_masked",
        "verify_status",
        "verify_message",
        "verified_at",
        "created",
    )
    actions = ["verify_accounts", "kill_switch_on", "kill_switch_off"]

    @admin.display(description="API key")
    def api_key_masked(self, obj: ExchangeAccount) -> str:
        return _masked(obj.api_key_enc)

    @admin.display(description="API secret")
    def api_secret_masked(self, obj: ExchangeAccount) -> str:
        return _masked(obj.api_secret_enc)

    @admin.display(description="Passphrase")
    def passphrase_masked(self, obj: ExchangeAccount) -> str:
        return _masked(obj.passphrase_enc)

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None:
            fields += ["owner", "kind", "venue"]
        return fields

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        key, secret, phrase = data.get("new_api_key"), data.get("new_api_secret"), data.get("new_passphrase")
        try:
            if not change:
                created = exchange_account_create(
                    owner=data["owner"],
                    label=data["label"],
                    kind=data["kind"],
                    venue=data["venue"],
                    api_key=key or "",
                    api_secret=secret or "",
                    passphrase=phrase or "",
                    paper_balances=data.get("paper_balances") or {},
                    default_type=data.get("default_type") or "",
                    actor=request.user,
                )
                obj.__dict__.update(created.__dict__)
                return
            before = ExchangeAccount.objects.get(pk=obj.pk)
            exchange_account_update(
                account=before,
                actor=request.user,
                label=data["label"],
                paper_balances=data.get("paper_balances") if before.kind == "paper" else None,
                default_type=data.get("default_type") or "",
            )
            if key or secret:
                exchange_account_rotate_keys(
                    account=before, actor=request.user, api_key=key, api_secret=secret, passphrase=phrase or ""
                )
            if data["kill_switch"] != before.kill_switch:
                account_kill_switch(account=before, actor=request.user, on=data["kill_switch"], reason="admin")
            obj.refresh_from_db()
        except (ValidationError, FieldErrors) as exc:
            messages.error(request, f"not saved: {exc}")

    @admin.action(description="Verify credentials (balance fetch)")
    def verify_accounts(self, request, queryset):
        for account in queryset:
            exchange_account_verify(account=account, actor=request.user)
            level = messages.SUCCESS if account.verify_status == "ok" else messages.WARNING
            self.message_user(request, f"{account.label}: {account.verify_status} — {account.verify_message}", level)

    @admin.action(description="Kill switch ON (kill all bots of the account)")
    def kill_switch_on(self, request, queryset):
        killed = sum(account_kill_switch(account=a, actor=request.user, on=True, reason="admin") for a in queryset)
        self.message_user(request, f"kill switch on for {queryset.count()} account(s); {killed} bot(s) killed")

    @admin.action(description="Kill switch OFF")
    def kill_switch_off(self, request, queryset):
        for account in queryset:
            account_kill_switch(account=account, actor=request.user, on=False, reason="admin")
        self.message_user(request, f"kill switch off for {queryset.count()} account(s)")


@admin.register(Market)
class MarketAdmin(admin.ModelAdmin):
    list_display = (
        "venue",
        "symbol",
        "base",
        "quote",
        "tick_size",
        "lot_size",
        "min_notional",
        "maker_fee",
        "taker_fee",
        "kind",
        "contract_size",
        "settle",
        "max_leverage",
        "active",
    )
    list_filter = ("venue", "active", "quote", "kind")
    search_fields = ("venue", "symbol", "base", "quote")
