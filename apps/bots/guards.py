"""Fat-finger guards for bot configurations, from what is known of the account and the market.

* An order larger than the whole account (its balances valued at the market's last price) is
  refused, naming the order's value and the balance; one below the market's minimum order
  value likewise (every order would be refused by pre-trade risk).
* An order above ``MM_LARGE_ORDER_FRACTION`` of the account's value needs a confirmation that
  names its value (the new-bot form asks; the API's callers confirm by calling).
* A new bot without a maximum order size or position gets them from the account's value
  (``MM_DEFAULT_MAX_ORDER_FRACTION``, ``MM_DEFAULT_MAX_POSITION_FRACTION``), never below its own
  order size; the user's risk defaults or explicit limits take precedence.
* On a perpetual market the account's value is its margin: the settle-currency balance times the
  bot's leverage (``risk.perp.leverage``), not its spot holdings; an order is refused when its
  margin (notional / leverage) exceeds the settle balance. A paper account's perpetual defaults
  to the hosted 10x; on a live account without ``risk.perp.leverage`` the exchange's setting
  stays, which is not known here, so the order is judged at 1x (the message says so and names
  the setting).
* An inverse (coin-margined) perpetual's orders are in contracts of ``contract_size`` quote units:
  an order's notional in the settle coin is contracts x contract size / price (600 contracts of
  100 USD at 50,000 are 1.2 BTC), judged against the settle-coin balance x leverage, the
  accepted size in whole contracts; the minimum order value is in quote units (contracts x
  contract size).
* Avellaneda-Stoikov: a warning when the model's spread would be clamped to ``max_spread``.

Balances: the account's latest known free balances (``apps.portfolio.models.Balance``:
reconciliation keeps paper accounts'; a live account's are stored when they are fetched from the
exchange, by its verification, ``ExchangeAccount.balances_at``), else a paper account's initial
balances. A live account's stored balances are complete: an asset without a row holds 0. A live
account whose balances were never fetched cannot be judged: a perpetual bot on it is refused
(``exchange_account``: verify the account first), so the guard never passes it silently; a live
spot bot is not judged (pre-trade risk and the exchange refuse what the balance cannot pay for).
Price: :func:`apps.marketdata.reference_price.reference_price` (the last recorded trade, the
latest depth mid, the running feed's live book, else the price a replay or sim venue starts
from), so a market that was never fed is judged too; a market without any price is not judged.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_DOWN, Decimal
from typing import Any

from django.conf import settings

from apps.accounts.errors import FieldErrors
from apps.exchanges.models import ExchangeAccount, Market


class LargeOrderConfirmation(FieldErrors):
    """An order above the large-order fraction of the account: valid once confirmed."""

    def __init__(self, errors: dict, *, notional: Decimal, value: Decimal, quote: str) -> None:
        super().__init__(errors)
        self.notional, self.value, self.quote = notional, value, quote


@dataclass(frozen=True)
class AccountView:
    """What is known of one account on one market: balances (None = unknown) and a price."""

    base: Decimal | None
    quote: Decimal | None
    price: Decimal | None
    market: Market
    price_source: str = ""  # which price (apps.marketdata.reference_price): "trade", "venue", ...
    live: bool = False  # a live exchange account (its perpetual leverage is the exchange's unless given)
    settle: Decimal | None = None  # a perpetual's settle-currency balance
    balances_known: bool = True  # False: a live account whose balances were never fetched
    account_label: str = ""
    account_id: int | None = None

    @property
    def known(self) -> bool:
        return self.price is not None and self.price > 0 and (self.base is not None or self.quote is not None)

    @property
    def value(self) -> Decimal:
        """The account's value on this market in quote currency (its base at the price)."""
        return (self.base or 0) * (self.price or 0) + (self.quote or 0)

    def describe(self) -> str:
        m = self.market
        parts = [f"{_fmt(self.base)} {m.base}"] if self.base is not None else []
        parts += [f"{_fmt(self.quote)} {m.quote}"] if self.quote is not None else []
        source = f" ({self.price_source})" if self.price_source else ""
        return f"{' + '.join(parts)} = {_money(self.value)} {m.quote} at {_fmt(self.price)}{source}"


def _fmt(d: Decimal | None) -> str:
    return "?" if d is None else f"{d.normalize():f}"


def _round_lots(amount: Decimal, lot: Decimal) -> Decimal:
    """``amount`` rounded down to whole lots, without trailing zeros."""
    lot = lot.normalize()
    return ((amount / lot).to_integral_value(rounding=ROUND_DOWN) * lot).normalize()


def _money(d: Decimal) -> str:
    return f"{d.quantize(Decimal('0.01')):,}"


def _last_price(market: Market) -> tuple[Decimal | None, str]:
    from apps.marketdata.reference_price import reference_price

    ref = reference_price(market)
    return (None, "") if ref is None else (ref.price, ref.source)


def settle_currency(market: Market) -> str:
    """A perpetual's settle currency: its row's, else its ccxt swap symbol's (``BASE/QUOTE:SETTLE``)."""
    return (market.settle or market.symbol.partition(":")[2] or market.quote).upper()


def account_view(account: ExchangeAccount, market: Market, *, price: Decimal | None = None) -> AccountView:
    """The account's balances on ``market`` (base, quote and, for a perpetual, the settle
    currency), at ``price`` when given, else at the market's reference price (see the module)."""
    from apps.portfolio.models import Balance

    settle = settle_currency(market) if market.kind != "spot" or ":" in market.symbol else None
    assets = {market.base.upper(), market.quote.upper(), *([settle] if settle else [])}
    free = {b.asset.upper(): b.free for b in Balance.objects.filter(account=account, asset__in=assets)}
    known = True
    if account.kind == "paper":
        if not free:
            free = {str(k).upper(): Decimal(str(v)) for k, v in (account.paper_balances or {}).items()}
    elif account.balances_at is not None:  # fetched and stored whole: an asset without a row holds 0
        free = {asset: free.get(asset, Decimal(0)) for asset in assets}
    else:
        known = False
    source = ""
    if price is None:
        price, source = _last_price(market)
    return AccountView(
        free.get(market.base.upper()), free.get(market.quote.upper()), price, market, source, account.kind == "live",
        settle=free.get(settle) if settle else None, balances_known=known, account_label=account.label,
        account_id=account.pk,
    )  # fmt: skip


def _order_amount(params: Mapping[str, Any]) -> Decimal | None:
    from trading.amounts import AmountError, plain_decimal

    try:
        amount = plain_decimal(params.get("order_amount"))
    except AmountError:
        return None  # the config parser names it
    return amount if amount > 0 else None


def check_order_size(
    *, params: Mapping[str, Any], risk: Mapping[str, Any] | None, view: AccountView, confirm_large: bool
) -> None:
    """Refuse an order larger than the account; ask to confirm a large one (see the module)."""
    m, price = view.market, view.price
    leverage = perp_leverage(m, risk, live=view.live)
    if leverage is not None and not view.balances_known:
        raise FieldErrors({"exchange_account": [unknown_balances(view)]})
    if not view.known:
        return
    inverse = leverage is not None and m.kind == "inverse"
    value = view.value if leverage is None else perp_value(view, leverage)
    unit = "contracts" if inverse else m.base
    money = settle_currency(m) if inverse else m.quote
    accepted = _round_lots(value * price / m.contract_size if inverse else value / price, m.lot_size)
    errors: dict[str, Any] = {}
    checks = [("params", "order_amount", _order_amount(params))]
    if isinstance(risk, Mapping):
        checks.append(("risk", "max_order_size", _order_amount({"order_amount": risk.get("max_order_size")})))
    for group, name, amount in checks:
        if amount is None:
            continue
        notional = order_notional(m, amount, price, inverse=inverse)
        quoted = amount * m.contract_size if inverse else notional  # the order's value in quote units
        if name == "order_amount" and quoted < m.min_notional:
            lot = m.lot_size.normalize()
            per_lot = m.contract_size if inverse else price
            least = ((m.min_notional / per_lot / lot).to_integral_value(rounding=ROUND_CEILING) * lot).normalize()
            errors.setdefault(group, {})[name] = [
                f"{_fmt(amount)} {unit} is an order of {_money(quoted)} {m.quote}"
                f"{'' if inverse else f' at {_fmt(price)}'}, below the market's minimum order value "
                f"{_fmt(m.min_notional)} {m.quote}; accepted: at least {_fmt(least)} {unit}"
            ]
        elif notional > value:
            if leverage is None:
                holds = f"the account holds {view.describe()}"
            else:
                holds = (
                    f"the account's margin is {_fmt(perp_balance(view))} {money}, {_value(value, inverse)} {money} of "
                    f"orders at {leverage}x leverage{_leverage_note(view, risk)} (at {_fmt(price)}"
                    f"{f' ({view.price_source})' if view.price_source else ''})"
                )
            how = f" ({_fmt(amount)} x {_fmt(m.contract_size)} {m.quote} / {_fmt(price)})" if inverse else ""
            errors.setdefault(group, {})[name] = [
                f"{_fmt(amount)} {unit} is an order of {_value(notional, inverse)} {money}{how}; {holds}; "
                f"accepted: at most {_fmt(accepted)} {unit}"
            ]
    if errors:
        raise FieldErrors(errors)
    amount = checks[0][2]
    fraction = Decimal(str(settings.LARGE_ORDER_FRACTION))
    if amount is None or confirm_large or value <= 0:
        return
    notional = order_notional(m, amount, price, inverse=inverse)
    if notional > fraction * value:
        raise LargeOrderConfirmation(
            {
                "params": {
                    "order_amount": [
                        f"each order is worth {_value(notional, inverse)} {money}, {notional / value:.0%} of the "
                        f"account's {_value(value, inverse)} {money}: confirm orders of {_value(notional, inverse)} "
                        f"{money} to go on"
                    ]
                }
            },
            notional=notional,
            value=value,
            quote=money,
        )


def order_notional(market: Market, amount: Decimal, price: Decimal, *, inverse: bool) -> Decimal:
    """An order's notional: in the settle coin for an inverse perpetual (contracts x contract
    size / price), else in quote currency (amount x price)."""
    return amount * market.contract_size / price if inverse else amount * price


def unknown_balances(view: AccountView) -> str:
    return (
        f"the balances of live account {view.account_label!r} are not known (never fetched from the exchange), "
        "so this perpetual bot's order size cannot be checked against its settle balance x leverage; "
        f"accepted: an account whose balances are stored: verify it first (Settings, Verify; or POST "
        f"/api/v1/exchange-accounts/{view.account_id}/verify/), which fetches and stores them"
    )


def _value(d: Decimal, inverse: bool) -> str:
    """A value for a message: in a settle coin to 8 places, in quote currency to cents."""
    return _fmt(d.quantize(Decimal("0.00000001"), rounding=ROUND_DOWN)) if inverse else _money(d)


def perp_leverage(market: Market, risk: Mapping[str, Any] | None, *, live: bool = False) -> int | None:
    """The leverage a bot on a perpetual market trades at (its ``risk.perp.leverage``; else the
    hosted default of 10 on a paper account, 1 on a live one, whose exchange setting is not
    known here), or None on a spot market."""
    from apps.derivatives.hosting import live_perp, perp_market

    if perp_market(market.venue, market.symbol, market) is None and not live_perp(market.venue, market.symbol):
        return None
    default = 1 if live else 10
    perp = risk.get("perp") if isinstance(risk, Mapping) else None
    try:
        leverage = int((perp if isinstance(perp, Mapping) else {}).get("leverage", default))
    except (TypeError, ValueError):
        return default  # the perp settings' own validation names a bad leverage
    return max(1, leverage)


def perp_balance(view: AccountView) -> Decimal:
    """A perpetual account's settle-currency balance (its quote balance where none is known)."""
    balance = view.settle if view.settle is not None else view.quote
    return balance or Decimal(0)


def perp_value(view: AccountView, leverage: int) -> Decimal:
    """What a perpetual account's margin carries in orders, in the settle currency: its settle
    balance x leverage."""
    return perp_balance(view) * leverage


def _leverage_note(view: AccountView, risk: Mapping[str, Any] | None) -> str:
    perp = risk.get("perp") if isinstance(risk, Mapping) else None
    if view.live and "leverage" not in (perp if isinstance(perp, Mapping) else {}):
        return " (risk.perp.leverage not given: the exchange's own setting is not known here)"
    return ""


def check_manual_order(*, quantity: Decimal, price: Decimal, view: AccountView) -> None:
    """Refuse a manual order worth more than the whole account (``view``: :func:`account_view`
    at the order's own price), naming its value, the balance and the largest quantity accepted.
    Balances unknown: no check (the bot's pre-trade risk still decides)."""
    if not view.known:
        return
    m, value, notional = view.market, view.value, quantity * price
    if notional > value:
        raise FieldErrors(
            {
                "quantity": [
                    f"{_fmt(quantity)} {m.base} at {_fmt(price)} is an order of {_money(notional)} {m.quote}; the "
                    f"account holds {view.describe()}; accepted: at most {_fmt(_round_lots(value / price, m.lot_size))} "
                    f"{m.base}"
                ]
            }
        )


def default_limits(*, params: Mapping[str, Any], risk: Mapping[str, Any], view: AccountView) -> dict[str, Any]:
    """``risk`` with a maximum order size and position filled in from the account's value where
    the user gave none (a key present, even null, is the user's choice)."""
    out = dict(risk)
    if not view.known:
        return out
    m, price = view.market, view.price
    amount = _order_amount(params) or Decimal(0)
    leverage = perp_leverage(m, risk, live=view.live)
    value = view.value if leverage is None else perp_value(view, leverage)
    inverse = leverage is not None and m.kind == "inverse"
    for key, setting in (
        ("max_order_size", settings.DEFAULT_MAX_ORDER_FRACTION),
        ("max_position_base", settings.DEFAULT_MAX_POSITION_FRACTION),
    ):
        if key in out:
            continue
        share = value * Decimal(str(setting))  # contracts of an inverse perpetual, else base units
        size = _round_lots(share * price / m.contract_size if inverse else share / price, m.lot_size)
        size = max(size, amount)
        if size > 0:
            out[key] = f"{size.normalize():f}"
    return out


def avellaneda_stoikov_warning(*, params: Mapping[str, Any], market: Market) -> str:
    """A warning when the model's spread (at the start of a session, no inventory) exceeds
    ``max_spread``: quotes are then clamped to the cap and seldom fill. Sigma and k come from
    the params or, when empty, from the market's recent trades (sigma: realised variance per
    second; k unknown: the spread shown is a lower bound). Empty when unknown or fine."""
    from trading.config import ConfigError
    from trading.strategies import validate_params
    from trading.strategies.avellaneda_stoikov import spread_preview

    try:
        cfg = validate_params("avellaneda_stoikov", dict(params))
    except ConfigError:
        return ""
    from apps.marketdata.selectors import recent_trades

    trades = list(recent_trades(market=market, limit=500).values_list("ts", "price"))
    if not trades:
        return ""
    mid = float(trades[0][1])
    sigma = cfg.sigma
    if sigma is None:
        trades.reverse()
        span = (trades[-1][0] - trades[0][0]).total_seconds()
        if len(trades) < 20 or span <= 0:
            return ""
        sigma = math.sqrt(sum(float(b[1] - a[1]) ** 2 for a, b in itertools.pairwise(trades)) / span)
    preview = spread_preview(cfg, mid, sigma, cfg.k)
    if not preview["capped"]:
        return ""
    bound = "" if cfg.k is not None else "at least "
    return (
        f"At a mid of {mid:,.2f} {market.quote} and sigma {sigma:.3g} {market.quote}/sqrt(s) the model asks for a "
        f"spread of {bound}{preview['spread']:,.2f} {market.quote} ({preview['spread'] / mid:.2%} of the mid), above "
        f"max_spread {float(cfg.max_spread):.2%} ({preview['cap']:,.2f} {market.quote}): quotes would be clamped to "
        "the cap and seldom fill. Lower risk_aversion (or gamma), shorten horizon, or raise max_spread."
    )
