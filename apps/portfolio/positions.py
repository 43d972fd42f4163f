"""Positions across a user's exchange accounts, for the overview and the API: per account, its
type (spot or derivatives), its perpetual positions per bot and its spot balances per asset.

* **perp**: one row per bot of the account on a perpetual market (``Market.kind``). While a
  host runs the bot the figures are its exact ledger's from the live status
  (:func:`apps.dashboard.perp.perp_figures`: contracts, entry, mark, unrealized PnL, leverage,
  margin used, liquidation price, funding); otherwise the position is the signed sum of the bot's
  fills (contracts) and the rest is unknown (``None``): a stopped bot's entry and mark are not kept.
* **spot**: :func:`apps.portfolio.inventory.account_holdings` (a live account's reconciled
  balances; a paper account's starting balances plus its spot fills), assets with a non-zero
  amount.

Only the user's own accounts (an operator's overview shows theirs; other users' are in the admin).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db.models import Case, DecimalField, F, Sum, When

PERP_FIGURES = (
    "position_contracts", "entry_price", "mark_price", "unrealized", "leverage", "margin_mode", "margin_used",
    "liquidation_price", "liquidation_distance_pct", "funding", "settle",
)  # fmt: skip


def _fill_positions(bot_ids: list[int]) -> dict[int, Decimal]:
    from apps.orders.models import Fill

    sign = Case(When(side="buy", then=1), default=-1)
    rows = (
        Fill.objects.filter(bot_id__in=bot_ids)
        .values("bot_id")
        .annotate(qty=Sum(F("quantity") * sign, output_field=DecimalField()))
    )
    return {r["bot_id"]: r["qty"] or Decimal(0) for r in rows}


def account_positions(*, owner) -> list[dict[str, Any]]:
    """``[{"account", "label", "venue", "kind", "default_type", "perp": [...], "spot": [...]}]``
    for ``owner``'s accounts (see the module)."""
    from apps.bots.models import Bot
    from apps.dashboard import live
    from apps.dashboard.perp import perp_figures
    from apps.exchanges.models import ExchangeAccount
    from apps.portfolio.inventory import account_holdings

    accounts = list(ExchangeAccount.objects.filter(owner=owner).order_by("id"))
    bots = list(
        Bot.objects.filter(owner=owner, exchange_account__in=accounts)
        .exclude(market__kind="spot")
        .select_related("market")
        .order_by("id")
    )
    statuses = live.bot_status_many(bot_ids=[b.pk for b in bots]) if bots else {}
    from_fills = _fill_positions([b.pk for b in bots]) if bots else {}
    out = []
    for account in accounts:
        perp_rows = []
        for bot in (b for b in bots if b.exchange_account_id == account.pk):
            figures = perp_figures(statuses.get(bot.pk))
            row: dict[str, Any] = {"bot": bot.pk, "bot_name": bot.name, "symbol": bot.market.symbol,
                                   "live": figures is not None}  # fmt: skip
            if figures is not None:
                row.update({k: figures.get(k) for k in PERP_FIGURES})
            else:
                row.update(dict.fromkeys(PERP_FIGURES))
                row["position_contracts"] = f"{from_fills.get(bot.pk, Decimal(0)).normalize():f}"
            perp_rows.append(row)
        spot = [
            {"asset": asset, "amount": f"{amount.normalize():f}"}
            for asset, amount in sorted(account_holdings(account).items())
            if amount
        ]
        out.append(
            {
                "account": account.pk,
                "label": account.label,
                "venue": account.venue,
                "kind": account.kind,
                "default_type": account.default_type,
                "perp": perp_rows,
                "spot": spot,
            }
        )
    return out
