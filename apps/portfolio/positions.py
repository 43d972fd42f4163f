"""Positions across a user's exchange accounts, for the overview and the API: per account, its
type (spot or derivatives), its perpetual positions per bot and its spot balances per asset.

* **perp**: one row per bot of the account on a perpetual market (``Market.kind``), and one per
  hedged bot whose hedge leg is a perpetual on this account (``leg`` ``hedge``; a bot's own row is
  ``leg`` ``maker`` for a hedged bot, ``None`` otherwise). While a host runs the bot the figures
  are its exact ledger's from the live status (:func:`apps.dashboard.perp.perp_figures`; a hedge
  leg's from the status's ``hedged.hedge_perp``: contracts, entry, mark, unrealized and realized
  PnL, fees, leverage, margin used and free, liquidation price, funding); otherwise the position is the signed sum of the bot's
  fills on this account (contracts) and the rest is unknown (``None``): a stopped bot's entry and
  mark are not kept.
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
    "position_contracts", "entry_price", "mark_price", "unrealized", "realized", "fees", "leverage", "margin_mode",
    "margin_used", "margin_free", "liquidation_price", "liquidation_distance_pct", "funding", "settle",
)  # fmt: skip


def _fill_positions(bot_ids: list[int]) -> dict[tuple[int, int], Decimal]:
    """The signed sum of each bot's fills per account, ``{(bot, account): contracts}``: a hedged
    bot's two legs are on two accounts (or two markets of one: see ``_hedge_leg``)."""
    from apps.orders.models import Fill

    sign = Case(When(side="buy", then=1), default=-1)
    rows = (
        Fill.objects.filter(bot_id__in=bot_ids)
        .values("bot_id", "account_id", "order__market_id")
        .annotate(qty=Sum(F("quantity") * sign, output_field=DecimalField()))
    )
    out: dict[tuple[int, int, int | None], Decimal] = {}
    for r in rows:
        out[(r["bot_id"], r["account_id"], r["order__market_id"])] = r["qty"] or Decimal(0)
    return out


def _position(from_fills: dict, bot_id: int, account_id: int, market_id: int) -> str:
    """A leg's position from its fills: the bot's fills on the account and market (a liquidation's
    close has no order: it is counted on the leg when the bot has no other market there)."""
    total = from_fills.get((bot_id, account_id, market_id), Decimal(0))
    others = {m for (b, a, m) in from_fills if b == bot_id and a == account_id and m is not None}
    if others <= {market_id}:
        total += from_fills.get((bot_id, account_id, None), Decimal(0))
    return f"{total.normalize():f}"


def _hedge_legs(bots: list, accounts: list) -> list[tuple[Any, int, Any]]:
    """``(bot, hedge account id, hedge market)`` for the hedged bots whose hedge leg is a
    perpetual on one of ``accounts``."""
    from apps.exchanges.models import Market

    ids = {a.pk for a in accounts}
    wanted = []
    for bot in bots:
        params = bot.params or {}
        if bot.strategy != "hedged_maker" or params.get("hedge_account") not in ids:
            continue
        wanted.append((bot, params["hedge_account"], params.get("hedge_market")))
    markets = Market.objects.in_bulk([m for _, _, m in wanted if isinstance(m, int)])
    return [(bot, account, markets[m]) for bot, account, m in wanted
            if m in markets and markets[m].kind != "spot"]  # fmt: skip


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
    hedged = list(Bot.objects.filter(owner=owner, strategy="hedged_maker").select_related("market").order_by("id"))
    hedge_legs = _hedge_legs(hedged, accounts)
    ids = sorted({b.pk for b in bots} | {b.pk for b, _, _ in hedge_legs})
    statuses = live.bot_status_many(bot_ids=ids) if ids else {}
    from_fills = _fill_positions(ids) if ids else {}

    def row_of(bot, account_id: int, market, leg: str | None) -> dict[str, Any]:
        status = statuses.get(bot.pk)
        if leg == "hedge":
            figures = perp_figures({"perp": ((status or {}).get("hedged") or {}).get("hedge_perp"),
                                    "ts": (status or {}).get("ts")})  # fmt: skip
        else:
            figures = perp_figures(status)
        row: dict[str, Any] = {"bot": bot.pk, "bot_name": bot.name, "symbol": market.symbol, "leg": leg,
                               "live": figures is not None}  # fmt: skip
        if figures is not None:
            row.update({k: figures.get(k) for k in PERP_FIGURES})
        else:
            row.update(dict.fromkeys(PERP_FIGURES))
            row["position_contracts"] = _position(from_fills, bot.pk, account_id, market.pk)
        return row

    out = []
    for account in accounts:
        perp_rows = [
            row_of(bot, account.pk, bot.market, "maker" if bot.strategy == "hedged_maker" else None)
            for bot in bots
            if bot.exchange_account_id == account.pk
        ]
        perp_rows += [row_of(bot, account.pk, market, "hedge") for bot, a, market in hedge_legs if a == account.pk]
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
