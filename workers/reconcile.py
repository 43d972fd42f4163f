"""Reconciliation (beat, every 30 s): venue vs database for every running bot with a paper leg
(and every one stopped in the last ten minutes).

The venue is the truth; each venue leg of a bot is reconciled on its own (a hedged bot's maker
and hedge legs: :func:`paper_leg_markets`). Open orders with the bot's prefix on the venue but closed or unknown in
the database are orphans: cancelled (through the owner, fenced). Orders open in the database
for more than a grace period but not on the venue are closed (filled if the venue's trades
cover them). Venue trades missing from the database for more than the same grace period are
recorded (idempotent); younger ones are still on their way through the bot's database writer
and are left to it. Balances are
replaced by the venue's (paper: initial balances plus the fills' movements). Every discrepancy
is an :class:`apps.core.models.Incident` visible to the owner and operators.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import timedelta
from decimal import Decimal

from celery import shared_task
from django.db.models import Q
from django.utils import timezone

from apps.orders.services import fills_record, orders_update
from workers import keys, lifecycle, records
from workers.paper_reports import delta_quote_units

logger = logging.getLogger(__name__)
GRACE_S = 30  # orders and fills younger than this are still in flight, never discrepancies
# A bot that stopped less than this ago is still reconciled: fills its host had not written
# (a host killed, or PostgreSQL crashed, just before the stop) are recorded from the venue.
RECENTLY_STOPPED_S = 600


def _incident(bot, kind: str, message: str, data: dict, account_id: int | None = None) -> None:
    from apps.core.models import Incident

    Incident.objects.create(
        owner_id=bot.owner_id,
        bot=bot,
        account_id=account_id or bot.exchange_account_id,
        kind=kind,
        message=message,
        data=data,
    )


def paper_leg_markets(bot) -> list[tuple[str, int, object, str]]:
    """(leg, account id, market, client-id prefix) of each venue a paper bot's orders rest on.

    A single-venue bot has one leg (``<bot prefix>-<n>`` ids). A hedged bot (``hedged_maker``,
    :mod:`workers.hedged_loop`) has two: the maker leg (its own account and market, ids
    ``<bot prefix>m-<n>``) and the hedge leg (its params' account and market, ids
    ``<bot prefix>h-<n>``); neither starts with ``<bot prefix>-``, so each leg is read under its
    own prefix, on its own account's keys, with its own market's instrument. Only paper legs are
    listed: a hedged bot whose maker is live and hedge paper (or the reverse) has its paper leg
    reconciled here (a live leg's orders and fills are the exchange's, recorded by its loop and
    its take-over). The hedge account is looked up among the bot owner's paper accounts only (a
    leg that no longer resolves is left out rather than read from another user's keys)."""
    from apps.bots.hedged import STRATEGY
    from apps.exchanges.models import ExchangeAccount, Market

    prefix = records.bot_prefix(bot)
    maker_paper = bot.exchange_account.kind == "paper"
    if bot.strategy != STRATEGY:
        return [("bot", bot.exchange_account_id, bot.market, prefix)] if maker_paper else []
    params = bot.params or {}
    legs = [("maker", bot.exchange_account_id, bot.market, prefix + "m")] if maker_paper else []
    hedge_market = Market.objects.filter(pk=params.get("hedge_market")).first()
    hedge_account = ExchangeAccount.objects.filter(
        pk=params.get("hedge_account"), owner_id=bot.owner_id, kind="paper"
    ).first()
    if hedge_market is not None and hedge_account is not None:
        legs.append(("hedge", hedge_account.pk, hedge_market, prefix + "h"))
    return legs


def reconcile_bot(redis, bot, fill_grace_s: float = GRACE_S) -> dict[str, int]:
    """Reconcile every venue leg of a paper bot (one, or a hedged bot's maker and hedge legs)."""
    out = {"orphans": 0, "closed": 0, "fills": 0}
    for leg, account_id, market, prefix in paper_leg_markets(bot):
        for k, v in _reconcile_leg(redis, bot, leg, account_id, market, prefix + "-", fill_grace_s).items():
            out[k] += v
    return out


def _reconcile_leg(redis, bot, leg: str, account_id: int, market, prefix: str, fill_grace_s: float) -> dict[str, int]:
    from apps.orders.models import CLOSED_STATUSES, Fill, Order

    inst = records.market_instrument(market)
    where = "" if leg == "bot" else f" ({leg} leg, {market.symbol} on {market.venue})"
    k_orders = keys.paper(account_id, market.symbol, "orders")
    k_trades = keys.paper(account_id, market.symbol, "trades")
    venue_open = {
        cid.decode(): json.loads(blob)
        for cid, blob in redis.hgetall(k_orders).items()
        if cid.decode().startswith(prefix)
    }
    db_orders = {o.client_order_id: o for o in Order.objects.filter(bot=bot, client_order_id__startswith=prefix)}
    out = {"orphans": 0, "closed": 0, "fills": 0}
    # Trades first: they decide whether a vanished order was filled.
    trades = [json.loads(b) for b in redis.lrange(k_trades, 0, -1)]
    ours = [t for t in trades if t["cid"].startswith(prefix)]
    if ours:
        known = set(
            Fill.objects.filter(account_id=account_id, venue_trade_id__in=[t["id"] for t in ours]).values_list(
                "venue_trade_id", flat=True
            )
        )
        # A fill the venue reported less than GRACE_S ago is normally still queued in the bot's
        # database writer: recording it here would raise a false incident.
        settled_ns = time.time_ns() - int(fill_grace_s * 1_000_000_000)
        missing = [t for t in ours if t["id"] not in known and t["ts"] <= settled_ns]
        if missing:
            rows = [
                {
                    "ts": records.ns_to_dt(t["ts"]),
                    "account_id": account_id,
                    "bot_id": bot.pk,
                    "client_order_id": t["cid"],
                    "venue_trade_id": t["id"],
                    "side": "buy" if t["side"] == 1 else "sell",
                    "price": inst.price(t["price"]),
                    "quantity": inst.quantity(t["qty"]),
                    "fee": inst.cash(t["fee"]),
                    "fee_currency": inst.quote,
                    "liquidity": "maker" if t.get("maker", True) else "taker",
                }
                for t in missing
            ]
            out["fills"] = fills_record(rows, count_new=True)
            if out["fills"]:
                _incident(
                    bot,
                    "missing_fill",
                    f"{out['fills']} venue fills were missing from the database{where}; recorded",
                    {"trade_ids": [t["id"] for t in missing][:50], "leg": leg},
                    account_id,
                )
    filled_by_cid: dict[str, int] = {}
    for t in ours:
        filled_by_cid[t["cid"]] = filled_by_cid.get(t["cid"], 0) + t["qty"]
    # Orphans: on the venue, not open in the database.
    now_ns = timezone.now().timestamp() * 1e9
    for cid, record in venue_open.items():
        row = db_orders.get(cid)
        if row is None and now_ns - record.get("ts", 0) < GRACE_S * 1e9:
            continue  # a paper order's row is written just behind the venue: not an orphan yet
        if row is None or row.status in CLOSED_STATUSES:
            out["orphans"] += 1
            _incident(
                bot,
                "orphan_order",
                f"order {cid}{where} open on the venue but {'unknown' if row is None else row.status}"
                " in the database; cancelled",
                {"client_order_id": cid, "leg": leg},
                account_id,
            )
            if lifecycle.lease_value(redis, bot.pk):
                lifecycle.control(redis, bot.pk, f"cancel:{cid}")
            else:
                lifecycle.stop_unowned(redis, bot, "orphan cancelled by reconciliation")
    # Open in the database, gone from the venue (past a grace period).
    cutoff = timezone.now() - timedelta(seconds=GRACE_S)
    for cid, row in db_orders.items():
        if row.status in CLOSED_STATUSES or cid in venue_open or row.updated > cutoff:
            continue
        qty = inst.lots(row.quantity)
        filled = filled_by_cid.get(cid, 0)
        status = "filled" if filled >= qty else "cancelled"
        orders_update([(cid, status, "", filled, "closed by reconciliation", inst)])
        _incident(
            bot,
            "missing_order",
            f"order {cid}{where} open in the database but not on the venue; marked {status}",
            {"client_order_id": cid, "leg": leg},
            account_id,
        )
        out["closed"] += 1
    return out


def reconcile_position(bot, venue_positions, tolerance: Decimal = Decimal(0)) -> bool:
    """Perpetuals: the bot's position from its recorded fills (contracts, from flat) against the
    venue's (``connectors.ccxt_perp.PositionReport`` rows of the bot's market, from
    ``fetchPositions``). Beyond ``tolerance`` contracts the difference is an incident; returns
    whether they agree."""
    from django.db.models import Sum

    from apps.orders.models import Fill
    from connectors.perp_venue import position_mismatch

    sums = dict(Fill.objects.filter(bot=bot).values("side").annotate(q=Sum("quantity")).values_list("side", "q"))
    ours = (sums.get("buy") or Decimal(0)) - (sums.get("sell") or Decimal(0))
    message = position_mismatch(bot.market.symbol, ours, venue_positions, tolerance)
    if message is None:
        return True
    venue = sum((p.contracts for p in venue_positions), Decimal(0))
    figures = {"ours": ours, "venue": venue, "tolerance": tolerance}
    _incident(bot, "position_mismatch", message, {k: f"{v.normalize():f}" for k, v in figures.items()})
    return False


def reconcile_live_position(bot_id: int, venue_positions) -> bool:
    """A live perpetual bot's loop found the exchange's position differing from the one it
    booked on two reads in a row (:mod:`workers.perp_live`): compare the recorded fills with the
    exchange's position (:func:`reconcile_position`, the ``position_mismatch`` incident)."""
    from apps.bots.models import Bot

    return reconcile_position(Bot.objects.select_related("market").get(pk=bot_id), venue_positions)


def reconcile_balances(redis, account) -> None:
    """Paper balances on the venue = initial paper balances + every symbol's fill movements."""
    from apps.exchanges.models import Market
    from apps.portfolio.services import balances_replace

    totals = {k.upper(): Decimal(str(v)) for k, v in (account.paper_balances or {}).items()}
    for key in redis.scan_iter(match=keys.paper(account.pk, "*", "delta"), count=200):
        symbol = key.decode()[len(keys.paper_account(account.pk, "")) : -len(":delta")]
        market = Market.objects.filter(venue=account.venue, symbol=symbol).first()
        if market is None:
            continue
        inst = records.market_instrument(market)
        raw = redis.hgetall(key)
        totals[inst.base] = totals.get(inst.base, Decimal(0)) + inst.quantity(int(raw.get(b"base", 0)))
        totals[inst.quote] = totals.get(inst.quote, Decimal(0)) + inst.cash(delta_quote_units(raw))
    balances_replace(
        account=account,
        balances={a: {"free": max(v, Decimal(0)), "total": max(v, Decimal(0))} for a, v in totals.items()},
    )


def run(fill_grace_s: float = GRACE_S) -> dict[str, int]:
    """Reconcile every bot with a paper leg (a paper bot, or a hedged bot whose maker or hedge
    leg is a paper account) that runs, has not settled, or changed state (stopped) in the last
    ``RECENTLY_STOPPED_S``. ``fill_grace_s``: venue fills younger than this are left to their
    bot's writer (an audit of a settled system passes 0)."""
    from apps.bots.hedged import STRATEGY
    from apps.bots.models import Bot
    from apps.exchanges.models import ExchangeAccount

    redis = lifecycle.redis_client()
    totals = {"bots": 0, "orphans": 0, "closed": 0, "fills": 0}
    accounts = {}
    recent = timezone.now() - timedelta(seconds=RECENTLY_STOPPED_S)
    for bot in Bot.objects.filter(
        Q(desired_state__in=lifecycle.RUN_STATES) | ~Q(actual_state="stopped") | Q(updated__gte=recent),
        Q(exchange_account__kind="paper") | Q(strategy=STRATEGY),
    ).select_related("market", "exchange_account"):
        try:
            legs = paper_leg_markets(bot)
            if not legs:  # a hedged bot whose two legs are live
                continue
            result = reconcile_bot(redis, bot, fill_grace_s)
        except Exception:
            logger.exception("reconciliation of bot %s failed", bot.pk)
            continue
        totals["bots"] += 1
        for k, v in result.items():
            totals[k] += v
        for _leg, account_id, _market, _prefix in legs:  # each paper leg moves its own account's balances
            if account_id not in accounts:
                accounts[account_id] = (
                    bot.exchange_account
                    if account_id == bot.exchange_account_id
                    else ExchangeAccount.objects.get(pk=account_id)
                )
    for account in accounts.values():
        try:
            reconcile_balances(redis, account)
        except Exception:
            logger.exception("balance reconciliation of account %s failed", account.pk)
    return totals


@shared_task(name="workers.reconcile.run")
def reconcile_run() -> dict[str, int]:
    """Beat entry point (every 30 s)."""
    from apps.core import metrics

    totals = run()
    for kind in ("orphans", "closed", "fills"):
        metrics.reconcile_mismatch(kind, totals.get(kind, 0))
    return totals
