"""Hosted hedged bots (strategy ``hedged_maker``): the bot's own account and market are the maker
leg; ``params`` name the hedge leg and carry the hedger's settings
(:func:`trading.hedging.validate_hedge_config`)::

    {"hedge_account": 12, "hedge_market": 34, "requote_ticks": 20,
     "order_amount": "0.01", "min_profitability": "0.002", "hedge_mode": "ioc",
     "max_unhedged": "0.02", "max_unhedged_ms": 2000, "hedge_timeout_ms": 500,
     "retry_budget": 3, "retry_backoff_ms": 200, "stale_after_ms": 2000}

Either leg may be a spot market or a linear perpetual served here (``replay:binance-usdm``,
``sim:gamma`` or ``sim:delta`` ``BTC/USDT:USDT``, a live exchange's synced swap market: its
contract comes from :func:`apps.derivatives.hosting.perp_market`), so spot-to-spot, spot-to-perp
(a delta hedge in contracts) and perp-to-perp. A perpetual leg's account settings are
``maker_perp`` / ``hedge_perp`` (paper: ``{"leverage": 10, "margin_mode": "isolated",
"funding_rate": "0.0001", "wallet": "5000", "limits": {...}}``, all optional; ``wallet`` is the
leg's allocation of its paper account's settle balance, counted with the account's other
perpetual bots, :mod:`apps.derivatives.paper_wallets`; live: ``leverage``, ``margin_mode``, ``limits``); refused on a spot leg.
Either leg's account may be paper or live (a live leg is a ccxt account; a live perpetual leg is
configured on its exchange at start, :mod:`workers.hedged_live_perp`). Every bad field is refused
by name with the value and what is accepted.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from trading.hedging import HedgeConfig, HedgeLegs, Leg, validate_hedge_config

STRATEGY = "hedged_maker"
LEG_FIELDS = ("hedge_account", "hedge_market", "requote_ticks", "maker_perp", "hedge_perp")
PERP_FIELDS = {"maker": "maker_perp", "hedge": "hedge_perp"}
DEFAULT_REQUOTE_TICKS = 20  # a hosted quote is left alone while within this many ticks of its target
PERP_HELP = (
    'a perpetual leg only, e.g. {"leverage": 5, "margin_mode": "isolated", "wallet": "300"}; on a paper '
    "account wallet is the leg's allocation of the account's settle balance, required when the account "
    "has other perpetual bots (together at most the balance); empty: defaults, the whole balance"
)


def params_schema() -> dict[str, Any]:
    """The params as the portal's schema-driven fieldset shows them (the new-bot form): the hedge
    leg's ids and the hedger's settings, with the defaults :func:`validate` applies. Amounts and
    rates are decimal strings; the leg ids integers."""

    def text(title: str, help_: str, default: str | None = None) -> dict[str, Any]:
        prop = {"type": "string", "title": title, "description": help_}
        return prop if default is None else {**prop, "default": default}

    def whole(title: str, default: int, help_: str) -> dict[str, Any]:
        return {"type": "integer", "title": title, "default": default, "description": help_}

    return {
        "properties": {
            "hedge_account": {"type": "integer", "title": "hedge account",
                              "description": "id of your account on the hedge venue (paper or live)"},
            "hedge_market": {"type": "integer", "title": "hedge market",
                             "description": "id of the hedge market (same base/quote, on the hedge account's venue)"},
            "order_amount": text("order amount", "maker quote size in base currency", "0.001"),
            "min_profitability": text("min profitability", "edge over the hedge price, e.g. 0.002; at least "
                                      "the maker fee plus the hedge taker fee", "0.002"),
            "hedge_mode": {"type": "string", "title": "hedge mode", "enum": ["ioc", "limit"], "default": "ioc",
                           "description": "ioc: taker; limit: aggressive limit with a timeout"},
            "max_unhedged": text("max unhedged", "base quantity left unhedged before quoting stops "
                                 "(default: twice the order amount)"),
            "max_unhedged_ms": whole("max unhedged ms", 2_000, "how long an exposure may stay unhedged"),
            "max_position": text("max position", "the maker leg's position, base quantity: the side that would "
                                 "grow it past this is not quoted (default: risk max_position_base, else none)"),
            "hedge_timeout_ms": whole("hedge timeout ms", 500, "a hedge unanswered this long is retried"),
            "retry_budget": whole("retry budget", 3, "hedge retries before quoting stops"),
            "retry_backoff_ms": whole("retry backoff ms", 200, "wait between hedge retries"),
            "stale_after_ms": whole("stale after ms", 2_000, "hedge book older than this stops quoting"),
            "requote_ticks": whole("requote ticks", DEFAULT_REQUOTE_TICKS,
                                   "a resting quote within this many maker ticks of its target is left alone"),
            **{key: {"type": "object", "title": f"{leg} leg perpetual settings", "default": None,
                     "omit_empty": True, "description": PERP_HELP} for leg, key in PERP_FIELDS.items()},
        },
        # max_unhedged and max_position default to figures of other fields (twice the order
        # amount; the bot's risk max_position_base): optional, though they have no fixed default
        "required": ["hedge_account", "hedge_market"],
    }  # fmt: skip


def hedge_settings(params: Mapping[str, Any]) -> dict[str, Any]:
    """The hedger's own settings: ``params`` without the hedge leg's ids and the hosted-only
    ``requote_ticks``."""
    return {k: v for k, v in params.items() if k not in LEG_FIELDS}


def requote_ticks(params: Mapping[str, Any]) -> int:
    return params.get("requote_ticks", DEFAULT_REQUOTE_TICKS)


def leg_for(market) -> Leg:
    """A market as a hedged leg: its instrument and, for a perpetual served here, its contract
    (spot otherwise)."""
    from apps.derivatives.hosting import perp_market
    from apps.exchanges.markets import market_to_instrument

    rec = perp_market(market.venue, market.symbol, market)
    inst = market_to_instrument(market)
    return Leg(inst) if rec is None else Leg(inst, rec.contract)


def legs_for(maker_market, hedge_market) -> HedgeLegs:
    return HedgeLegs(leg_for(maker_market), leg_for(hedge_market))


def perp_errors(params: Mapping[str, Any], legs: HedgeLegs, kinds: Mapping[str, str | None]) -> dict[str, str]:
    """The errors of ``maker_perp`` / ``hedge_perp``: a paper perpetual leg's settings validated
    as a backtest's (its ``wallet`` the leg's allocation); a live one's as a live perpetual bot's (``leverage``,
    ``margin_mode``, ``limits``: the wallet and the funding are the exchange's)."""
    from apps.backtests.validation import validate_perp
    from apps.derivatives.hosting import validate_live

    errors: dict[str, str] = {}
    for name, leg in (("maker", legs.maker), ("hedge", legs.hedge)):
        key = PERP_FIELDS[name]
        settings = params.get(key)
        perpetual = leg.contract.is_perpetual
        if settings is None or settings == {}:
            continue
        if perpetual and kinds.get(name) == "live":
            for field, message in validate_live(settings, leg.instrument.symbol).items():
                errors[key + field[len("perp") :]] = message
        elif not perpetual:
            errors[key] = (
                f"{settings!r} is not accepted: {leg.instrument.symbol} on {leg.instrument.venue} is a spot market; "
                "accepted: no perpetual settings on a spot leg"
            )
        else:
            # a hedged bot's legs are one-way: its hedge orders name no leg
            for field, message in validate_perp(settings, leg.contract, ("one_way",)).items():
                errors[key if field == "perp" else f"{key}.{field}"] = message
    return errors


def _listing(hedge_market) -> str:
    """The markets of the hedge market's venue, for a refusal's 'accepted' part."""
    from apps.exchanges.models import Market

    rows = Market.objects.filter(venue=hedge_market.venue, active=True).order_by("symbol")[:20]
    listed = ", ".join(f"{m.symbol} (id {m.pk})" for m in rows)
    return listed or "none"


def validate(
    params: Mapping[str, Any], market, *, owner=None, account=None
) -> tuple[HedgeConfig | None, dict[str, list[str]]]:
    """Check a hedged bot's params against its maker ``market`` (and, given the ``owner``, that the
    hedge account is theirs). The two accounts may be of different kinds (a live maker hedged on
    paper, or the reverse); a live perpetual leg's market row must carry its contract."""
    from apps.derivatives.hosting import live_perp
    from apps.exchanges.models import ExchangeAccount, Market

    errors: dict[str, list[str]] = {}
    hedge_market = hedge_account = None
    raw_market = params.get("hedge_market")
    if isinstance(raw_market, bool) or not isinstance(raw_market, int) or not 0 < raw_market < 2**63:
        errors["hedge_market"] = [f"{raw_market!r} is not accepted; accepted: the id of a market (an integer)"]
    else:
        hedge_market = Market.objects.filter(pk=raw_market).first()
        if hedge_market is None:
            errors["hedge_market"] = [f"{raw_market!r} is not accepted; accepted: the id of an existing market"]
        elif hedge_market.pk == market.pk:
            errors["hedge_market"] = [f"{raw_market!r} is the maker market itself; accepted: a market on another venue"]
    raw_account = params.get("hedge_account")
    if isinstance(raw_account, bool) or not isinstance(raw_account, int) or not 0 < raw_account < 2**63:
        errors["hedge_account"] = [f"{raw_account!r} is not accepted; accepted: the id of one of your accounts"]
    else:
        query = ExchangeAccount.objects.filter(pk=raw_account)
        if owner is not None:
            query = query.filter(owner=owner)
        hedge_account = query.first()
        if hedge_account is None:
            errors["hedge_account"] = [f"{raw_account!r} is not accepted; accepted: the id of one of your accounts"]
        elif hedge_market is not None and hedge_account.venue != hedge_market.venue:
            errors["hedge_account"] = [
                f"{raw_account!r} is an account on {hedge_account.venue}; accepted: an account on "
                f"{hedge_market.venue} (the hedge market's venue)"
            ]
    ticks = params.get("requote_ticks", DEFAULT_REQUOTE_TICKS)
    if isinstance(ticks, bool) or not isinstance(ticks, int) or not 0 <= ticks <= 100_000:
        errors["requote_ticks"] = [f"{ticks!r} is not accepted; give a whole number of maker ticks from 0 to 100000"]
    if hedge_market is None:
        return None, errors
    legs = legs_for(market, hedge_market)
    config, hedge_errors = validate_hedge_config(legs, hedge_settings(params))
    for name, message in hedge_errors.items():
        if name == "hedge" and "does not list" in message:
            # The hedge venue does not list the maker's asset: the field at fault is hedge_market.
            name = "hedge_market"
            message = (
                f"{raw_market!r} is not accepted: {message.split('; accepted')[0]}; accepted: a market of "
                f"{market.base}/{market.quote} on {hedge_market.venue} (its markets: {_listing(hedge_market)})"
            )
        errors.setdefault(name, []).append(message)
    kinds = {"maker": getattr(account, "kind", None), "hedge": getattr(hedge_account, "kind", None)}
    for name, row in (("market", market), ("hedge_market", hedge_market)):
        if live_perp(row.venue, row.symbol) and not row.is_perpetual:
            errors.setdefault(name, []).append(
                f"{row.pk!r} is not accepted: {row.symbol} on {row.venue} is a perpetual whose market row has no "
                "contract (kind spot); accepted: the market as synced from the exchange (its kind, contract size "
                "and settle currency), so the hedge is converted in contracts"
            )
    for name, message in perp_errors(params, legs, kinds).items():
        errors.setdefault(name, []).append(message)
    return (None if errors else config), errors


RESUME_TASK = "workers.bots.hedge_resume"


def hedge_resume(*, bot, actor) -> None:
    """The trader's decision to quote again after a hedge safety stop, flat or not: the bot's
    owner gets the ``hedge_resume`` control (task ``workers.bots.hedge_resume``). Recorded in the
    audit log and the bot's events."""
    from django.utils import timezone

    from apps.accounts.errors import FieldErrors
    from apps.accounts.models import AuditAction
    from apps.accounts.services import audit_record
    from apps.bots.services import _enqueue, bot_events_record
    from apps.core.timeseries import dt_to_ns

    if bot.strategy != STRATEGY:
        raise FieldErrors({"strategy": [f"{bot.strategy!r} is not a hedged bot; accepted: a {STRATEGY} bot"]})
    audit_record(
        action=AuditAction.BOT_RESUMED,
        actor=actor,
        owner=bot.owner,
        obj=bot,
        message="hedge quoting resumed by the trader",
    )
    bot_events_record(
        [
            (
                bot.pk,
                dt_to_ns(timezone.now()),
                "hedge",
                "hedge_resume_requested",
                f"quoting resume asked by {actor.username}",
                {},
            )
        ]
    )
    _enqueue(RESUME_TASK, args=[bot.pk])


def attribution(bot, limit: int = 200) -> dict[str, Any]:
    """The bot's per-fill attribution rows (newest first, exact decimal strings) and their
    distribution (expected and realized edge, slippage, hedge latency) over all its rows."""
    from statistics import median

    from apps.bots.models import HedgeFillAttribution

    rows = HedgeFillAttribution.objects.filter(bot=bot).order_by("-ts")
    fields = (
        "maker_trade_id", "ts", "side", "price", "quantity", "expected_hedge_price", "hedge_vwap", "hedged_quantity",
        "netted_quantity", "open_quantity", "expected_edge", "realized_edge", "slippage_bps", "hedge_latency_ms",
        "covered_latency_ms",
    )  # fmt: skip
    listed = [
        {f: (v.isoformat() if f == "ts" else None if v is None else str(v) if f not in ("side", "maker_trade_id") else v)
         for f, v in zip(fields, values, strict=True)}
        for values in rows.values_list(*fields)[:limit]
    ]  # fmt: skip
    distribution = {}
    for name in ("expected_edge", "realized_edge", "slippage_bps", "hedge_latency_ms"):
        values = sorted(v for v in rows.values_list(name, flat=True) if v is not None)
        distribution[name] = (
            {"count": len(values), "min": str(values[0]), "median": str(median(values)), "max": str(values[-1]),
             "sum": str(sum(values))}
            if values else {"count": 0, "min": None, "median": None, "max": None, "sum": None}
        )  # fmt: skip
    return {"fills": listed, "distribution": distribution, "count": rows.count()}


def hedge_leg(bot, status: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """The hedge leg of a hedged bot for listings: venue, symbol, and from its live ``status``
    the two legs' positions, the net exposure and whether quoting is stopped (None otherwise)."""
    from apps.exchanges.models import Market

    if bot.strategy != STRATEGY:
        return None
    market = Market.objects.filter(pk=(bot.params or {}).get("hedge_market")).first()
    live = (status or {}).get("hedged") or {}
    return {
        "venue": market.venue if market else "?",
        "symbol": market.symbol if market else "?",
        "maker_position": (live.get("maker") or {}).get("position"),
        "hedge_position": (live.get("hedge") or {}).get("position"),
        "exposure": live.get("exposure"),
        "halted": live.get("halted"),
    }
