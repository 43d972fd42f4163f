"""The overview's portfolio card: what each of my accounts holds (per asset, valued in the quote
currency at the live mid), the allocation per asset and per account, and each account's
equity over the last hours.

Holdings: a live account's last reconciled balances (``Balance``); a paper account's starting
balances plus the effect of every fill on it (base bought or sold, quote paid or received, fees),
which is what the paper venue holds. Values: an asset's mid on a market of the account's venue
quoting it in the account's quote asset (live book, else the last stored top of book)."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Case, DecimalField, F, Sum, When
from django.utils import timezone

from apps.dashboard import figures, live

QUOTES = ("USDT", "USDC", "USD", "BUSD", "FDUSD", "EUR")
SERIES_SPAN = timedelta(hours=6)


def _holdings(account) -> dict[str, Decimal]:
    from apps.orders.models import Fill
    from apps.portfolio.models import Balance

    if account.kind != "paper":
        return {b.asset: b.total for b in Balance.objects.filter(account=account)}
    held: dict[str, Decimal] = defaultdict(Decimal)
    for asset, amount in (account.paper_balances or {}).items():
        held[asset] += Decimal(str(amount))
    sign = Case(When(side="buy", then=1), default=-1)
    rows = (
        Fill.objects.filter(account=account)
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


def _price(venue: str, asset: str, quote: str) -> Decimal | None:
    from apps.exchanges.selectors import market_list
    from apps.marketdata.models import TopOfBookSnapshot

    if asset == quote:
        return Decimal(1)
    market = market_list(venue=venue, active=None).filter(base=asset, quote=quote).first()
    if market is None:
        return None
    mid = live.book_mid(venue=venue, symbol=market.symbol)
    if mid is not None:
        return mid
    top = TopOfBookSnapshot.objects.filter(market=market).order_by("-ts").values_list("bid", "ask").first()
    return (top[0] + top[1]) / 2 if top and top[0] > 0 and top[1] > 0 else None


def portfolio_overview(*, user, accounts) -> dict[str, Any] | None:
    from apps.bots.models import Bot
    from apps.portfolio.selectors import pnl_series

    rows = []
    by_asset: dict[str, Decimal] = defaultdict(Decimal)
    by_account: dict[str, Decimal] = defaultdict(Decimal)
    series = {}
    quote_used = set()
    now = timezone.now()
    for account in accounts:
        held = {a: q for a, q in _holdings(account).items() if q}
        quote = next((q for q in QUOTES if q in held), None) or next(iter(held), "")
        for asset, qty in sorted(held.items()):
            price = _price(account.venue, asset, quote)
            value = None if price is None else qty * price
            rows.append({"account": account, "asset": asset, "qty": qty, "value": value, "quote": quote})
            if value is not None:
                by_asset[asset] += value
                by_account[account.label] += value
                quote_used.add(quote)
        bot = Bot.objects.filter(exchange_account=account).order_by("-updated").first()
        if bot is not None:
            points = pnl_series(user=user, bot_id=bot.pk, interval="1m", start=now - SERIES_SPAN, end=now)
            if points:
                series[account.label] = [(p["bucket"], p["equity"]) for p in points]
    if not rows:
        return None
    return {
        "rows": rows,
        "total": sum(by_account.values()),
        "quote": "/".join(sorted(quote_used)),
        "asset_fig": figures.allocation(by_asset, title="Allocation per asset"),
        "account_fig": figures.allocation(by_account, title="Allocation per account"),
        "value_fig": figures.value_over_time(series) if series else None,
    }
