"""The overview's portfolio card: what each of my accounts holds (per asset, valued in the quote
currency at the live mid), the allocation per asset and per account, and each account's
equity over the last hours.

Holdings and values: ``apps.portfolio.inventory`` (spot holdings of each account, an asset's mid
on a market of the account's venue quoting it in the account's quote asset)."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.utils import timezone

from apps.dashboard import figures

QUOTES = ("USDT", "USDC", "USD", "BUSD", "FDUSD", "EUR")
SERIES_SPAN = timedelta(hours=6)


def _holdings(account) -> dict[str, Decimal]:
    from apps.portfolio.inventory import account_holdings

    return account_holdings(account)


def _price(venue: str, asset: str, quote: str) -> Decimal | None:
    from apps.portfolio.inventory import asset_price

    return asset_price(venue, asset, quote)


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
