"""Net inventory per asset over all of a user's exchange accounts and bots.

Per account and asset, two sources:

* **spot**: a live account's last reconciled balances (``Balance.total``); a paper account's
  starting balances plus the effect of every spot fill on it (base bought or sold, quote paid or
  received, fees), which is what the paper venue holds;
* **perp**: the signed sum of the account's fills on perpetual markets (``BTC/USDT:USDT``), in
  base units. Perpetual positions are not stored per account from the venue yet, so this is the
  same position the bots' own PnL books keep from their fills (``apps.portfolio.bot_pnl``); a
  position opened outside the suite is not seen.

Perp fills never count as spot: they move no base balance and their quote side is margin.

The net of an asset (spot + perp) is valued at its mark in one quote currency per user (the
first of ``QUOTES`` the user holds, else USDT): the live mid of a market quoting the asset in
that currency on a venue of the user's accounts, else that market's last stored top of book.
Then, from the user's :class:`InventoryTarget`: target, deviation (net - target), the limit on
the net (``max_net``) and its usage (|net| / max_net), and the hedge band.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any

from django.db.models import Case, DecimalField, F, Q, Sum, When

QUOTES = ("USDT", "USDC", "USD", "BUSD", "FDUSD", "EUR")
VALUE_PLACES = Decimal("1e-8")
USAGE_PLACES = Decimal("1e-4")


def _perp(symbol_field: str) -> Q:
    return Q(**{f"{symbol_field}__contains": ":"})


def account_holdings(account) -> dict[str, Decimal]:
    """What the account holds on spot, per asset (see the module)."""
    from apps.orders.models import Fill
    from apps.portfolio.models import Balance

    if account.kind != "paper":
        return {b.asset: b.total for b in Balance.objects.filter(account=account)}
    held: dict[str, Decimal] = defaultdict(Decimal)
    for asset, amount in (account.paper_balances or {}).items():
        held[str(asset).upper()] += Decimal(str(amount))
    sign = Case(When(side="buy", then=1), default=-1)
    rows = (
        Fill.objects.filter(account=account)
        .exclude(_perp("bot__market__symbol") | _perp("order__market__symbol"))
        .values("order__market__base", "order__market__quote", "bot__market__base", "bot__market__quote")
        .annotate(
            qty=Sum(F("quantity") * sign, output_field=DecimalField()),
            notional=Sum(F("quantity") * F("price") * sign, output_field=DecimalField()),
            fees=Sum("fee"),
        )
    )
    for row in rows:
        base = row["bot__market__base"] or row["order__market__base"]
        quote = row["bot__market__quote"] or row["order__market__quote"]
        if not base or not quote:
            continue
        held[base] += row["qty"] or 0
        held[quote] -= (row["notional"] or 0) + (row["fees"] or 0)
    return dict(held)


def account_perp_positions(account) -> dict[str, Decimal]:
    """The account's net perpetual position per base asset, from its fills (base units)."""
    from apps.orders.models import Fill

    sign = Case(When(side="buy", then=1), default=-1)
    rows = (
        Fill.objects.filter(account=account)
        .filter(_perp("bot__market__symbol") | _perp("order__market__symbol"))
        .values("order__market__base", "bot__market__base")
        .annotate(qty=Sum(F("quantity") * sign, output_field=DecimalField()))
    )
    out: dict[str, Decimal] = defaultdict(Decimal)
    for row in rows:
        base = row["bot__market__base"] or row["order__market__base"]
        if base:
            out[base] += row["qty"] or 0
    return dict(out)


def asset_price(venue: str, asset: str, quote: str) -> Decimal | None:
    """The asset's mid in ``quote`` on ``venue``: live book, else the last stored top of book."""
    from apps.dashboard import live
    from apps.exchanges.selectors import market_list
    from apps.marketdata.models import TopOfBookSnapshot

    if asset == quote:
        return Decimal(1)
    market = market_list(venue=venue, active=None).filter(base=asset, quote=quote).exclude(_perp("symbol")).first()
    if market is None:
        market = market_list(venue=venue, active=None).filter(base=asset, quote=quote).first()
    if market is None:
        return None
    mid = live.book_mid(venue=venue, symbol=market.symbol)
    if mid is not None:
        return mid
    top = TopOfBookSnapshot.objects.filter(market=market).order_by("-ts").values_list("bid", "ask").first()
    return (top[0] + top[1]) / 2 if top and top[0] > 0 and top[1] > 0 else None


def _row(asset: str, sources: list[dict], target, quote: str, mark: Decimal | None) -> dict[str, Any]:
    spot = sum((s["qty"] for s in sources if s["kind"] == "spot"), Decimal(0))
    perp = sum((s["qty"] for s in sources if s["kind"] == "perp"), Decimal(0))
    net = spot + perp
    goal = target.target if target is not None else None
    max_net = target.max_net if target is not None else None
    band = target.band if target is not None else None
    deviation = None if goal is None else net - goal
    return {
        "asset": asset,
        "spot": spot,
        "perp": perp,
        "net": net,
        "quote": quote,
        "mark": mark,
        "value": None if mark is None else (net * mark).quantize(VALUE_PLACES),
        "target": goal,
        "deviation": deviation,
        "max_net": max_net,
        "usage": None if not max_net else (abs(net) / max_net).quantize(USAGE_PLACES),
        "breached": max_net is not None and abs(net) > max_net,
        "band": band,
        "in_band": None if band is None or deviation is None else abs(deviation) <= band,
        "hedge_enabled": bool(target and target.hedge_enabled),
        "hedge_bot": target.hedge_bot_id if target is not None else None,
        "sources": sources,
    }


def owner_inventory(*, owner) -> dict[str, Any]:
    """``{"owner", "username", "quote", "assets": [row per asset]}`` for one user (see the module)."""
    from apps.exchanges.models import ExchangeAccount
    from apps.portfolio.models import InventoryTarget

    sources: dict[str, list[dict]] = defaultdict(list)
    venues: dict[str, list[str]] = defaultdict(list)
    all_venues: list[str] = []
    for account in ExchangeAccount.objects.filter(owner=owner).order_by("id"):
        all_venues.append(account.venue)
        for kind, held in (("spot", account_holdings(account)), ("perp", account_perp_positions(account))):
            for asset, qty in held.items():
                if not qty and kind == "perp":
                    continue
                sources[asset].append(
                    {"account": account.pk, "label": account.label, "venue": account.venue, "kind": kind, "qty": qty}
                )
                venues[asset].append(account.venue)
    targets = {t.asset: t for t in InventoryTarget.objects.filter(owner=owner)}
    held_assets = {a for a, s in sources.items() if any(x["qty"] for x in s)}
    quote = next((q for q in QUOTES if q in held_assets), "USDT")
    rows = []
    for asset in sorted(held_assets | set(targets)):
        mark = None
        for venue in dict.fromkeys([*venues.get(asset, []), *all_venues]):
            mark = asset_price(venue, asset, quote)
            if mark is not None:
                break
        if asset == quote:
            mark = Decimal(1)
        rows.append(_row(asset, sources.get(asset, []), targets.get(asset), quote, mark))
    return {"owner": owner.pk, "username": owner.username, "quote": quote, "assets": rows}


def inventory_list(*, user, owner_id: int | None = None) -> list[dict[str, Any]]:
    """The inventories ``user`` may see: their own; an operator's, every user's with accounts or
    targets (``owner_id`` narrows to one user; another user's id from a non-operator: none)."""
    from apps.accounts.models import User
    from apps.exchanges.models import ExchangeAccount
    from apps.portfolio.models import InventoryTarget

    if not user.is_operator:
        return [owner_inventory(owner=user)] if owner_id in (None, user.pk) else []
    ids = set(ExchangeAccount.objects.values_list("owner_id", flat=True))
    ids |= set(InventoryTarget.objects.values_list("owner_id", flat=True))
    if owner_id is not None:
        ids &= {owner_id}
    return [owner_inventory(owner=owner) for owner in User.objects.filter(pk__in=ids).order_by("id")]
