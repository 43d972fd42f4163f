"""Admin for balances and PnL snapshots (read-only)."""

from __future__ import annotations

from django.contrib import admin

from apps.accounts.admin_support import ReadOnlyAdmin
from apps.portfolio.models import Balance, PnlSnapshot


@admin.register(Balance)
class BalanceAdmin(ReadOnlyAdmin):
    list_display = ("account", "asset", "free", "total", "updated_at")
    list_filter = ("asset",)
    search_fields = ("account__label", "asset", "account__owner__username")
    list_select_related = ("account",)


@admin.register(PnlSnapshot)
class PnlSnapshotAdmin(ReadOnlyAdmin):
    list_display = ("ts", "bot", "position", "mid", "realized", "unrealized", "fees", "equity", "drawdown")
    list_filter = ("bot",)
    search_fields = ("bot__name",)
    list_select_related = ("bot",)
    date_hierarchy = "ts"
