"""Position reconciliation of live perpetual bots (beat, every 30 s): the position booked from the
bots' recorded fills against the exchange's ``fetchPositions``.

Scope: every bot on a **live** account whose own market is a live perpetual
(:func:`apps.derivatives.hosting.live_perp`, as the host decides), running or not. The
exchange keeps one position per account and market, so the comparison is per (account, market):
the fills of all the account's bots on that market, recorded on that account (a hedged bot's
maker leg; its hedge leg is on another account and not compared here), from flat, against the
exchange's net position of the market. Each account is read once per sweep, through its own
keys and its shared rate limit (:func:`workers.live_venue.build_gateway`).

A difference is an incident only when the same figures (booked, exchange) are seen on **two
sweeps in a row** (the first sighting is kept in Redis): a fill the exchange counted may still be
on its way to the database. The ``position_mismatch`` incident (the bot's, the account's;
:func:`connectors.perp_venue.position_mismatch` says both figures) is made **once**: not while an
unresolved one with the same figures exists, whoever made it.

**Hosted bots are left to their own loop.** While any bot of an (account, market) pair holds its
lease (a host runs it), the sweep does not read or judge that pair, and forgets a first sighting:
the bot's loop compares the exchange's position on every read (streamed and polled,
:mod:`workers.perp_live`), makes the same incident itself and has perpetual risk take the
exchange's position; a second judge of the same pair would race its booked fills, still in the
bot's database writer, and double the incident. The sweep covers what no loop watches: stopped
bots, bots in error, and running bots whose host is gone (lease expired).
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from decimal import Decimal

from celery import shared_task
from django.db.models import Sum

from workers import keys, lifecycle

logger = logging.getLogger(__name__)
SEEN_TTL_S = 3600  # a first sighting older than this is forgotten (no sweep ran in between)


def seen_key(account_id: int, market_id: int) -> str:
    return f"{keys.prefix()}:perprecon:{account_id}:{market_id}"


def live_perp_pairs() -> dict[tuple[int, int], list]:
    """(account id, market id) -> the live perpetual bots on that account and market."""
    from apps.bots.models import Bot
    from apps.derivatives.hosting import live_perp

    pairs: dict[tuple[int, int], list] = defaultdict(list)
    bots = Bot.objects.filter(exchange_account__kind="live").select_related("market").order_by("pk")
    for bot in bots:
        if live_perp(bot.market.venue, bot.market.symbol):  # as the host decides (workers.bot_start)
            pairs[(bot.exchange_account_id, bot.market_id)].append(bot)
    return pairs


def booked(account_id: int, bots: list) -> Decimal:
    """Contracts bought less sold by these bots on this account, from their recorded fills."""
    from apps.orders.models import Fill

    rows = Fill.objects.filter(account_id=account_id, bot__in=bots).values("side").annotate(q=Sum("quantity"))
    sums = {r["side"]: r["q"] or Decimal(0) for r in rows}
    return sums.get("buy", Decimal(0)) - sums.get("sell", Decimal(0))


async def _read_account(account_id: int, symbols: list[str], exchange_id: str, credentials, options, redis_url):
    """The exchange's positions of these symbols on one account: symbol -> PositionReport rows."""
    from connectors.perp_venue import CcxtPerpAccount
    from workers import live_venue

    gateway = live_venue.build_gateway(
        exchange_id, credentials, account_id=account_id, redis_url=redis_url, options=options
    )
    account = CcxtPerpAccount(gateway.exchange)
    out = {}
    try:
        for symbol in symbols:
            await gateway.limiter.acquire(1)
            out[symbol] = await account.fetch_positions(symbol)
    finally:
        await gateway.exchange.close()
    return out


def read_account(account_id: int, symbols: list[str]) -> dict:
    from django.conf import settings

    from workers import live_venue

    exchange_id, credentials = live_venue.account_credentials(account_id)
    options = live_venue.account_options(account_id)
    return asyncio.run(_read_account(account_id, symbols, exchange_id, credentials, options, settings.REDIS_URL))


def _already_reported(account_id: int, bot, figures: dict[str, str]) -> bool:
    from apps.core.models import Incident

    return Incident.objects.filter(
        account_id=account_id,
        bot=bot,
        kind="position_mismatch",
        resolved=False,
        data__ours=figures["ours"],
        data__venue=figures["venue"],
    ).exists()


def judge(redis, account_id: int, market, bots: list, reports: list) -> str:
    """One pair's comparison: ``agree``, ``first`` (first sighting), ``reported`` (an incident
    made now) or ``known`` (already reported)."""
    from apps.core.models import Incident
    from connectors.perp_venue import position_mismatch

    key = seen_key(account_id, market.pk)
    ours = booked(account_id, bots)
    message = position_mismatch(market.symbol, ours, reports)
    if message is None:
        redis.delete(key)
        return "agree"
    venue = sum((r.contracts for r in reports), Decimal(0))
    figures = {"ours": _plain(ours), "venue": _plain(venue), "tolerance": "0"}
    sighting = f"{figures['ours']}|{figures['venue']}"
    previous = redis.get(key)
    if previous is None or previous.decode() != sighting:
        redis.set(key, sighting, ex=SEEN_TTL_S)
        return "first"
    bot = bots[0]
    if _already_reported(account_id, bot, figures):
        return "known"
    if len(bots) > 1:
        figures["bots"] = [b.pk for b in bots]
        message += f" (bots {', '.join(str(b.pk) for b in bots)} together)"
    Incident.objects.create(
        owner_id=bot.owner_id, bot=bot, account_id=account_id, kind="position_mismatch", message=message, data=figures
    )
    return "reported"


def run() -> dict[str, int]:
    """One sweep over every live perpetual (account, market) pair (see the module docstring)."""
    redis = lifecycle.redis_client()
    totals = {"pairs": 0, "hosted": 0, "agree": 0, "first": 0, "reported": 0, "known": 0, "errors": 0}
    by_account: dict[int, dict[tuple[int, int], list]] = defaultdict(dict)
    for (account_id, market_id), bots in live_perp_pairs().items():
        totals["pairs"] += 1
        if any(lifecycle.lease_value(redis, b.pk) for b in bots):
            totals["hosted"] += 1
            redis.delete(seen_key(account_id, market_id))  # the bot's own loop judges this pair
            continue
        by_account[account_id][(account_id, market_id)] = bots
    for account_id, pairs in by_account.items():
        symbols = sorted({bots[0].market.symbol for bots in pairs.values()})
        try:
            positions = read_account(account_id, symbols)
        except Exception as exc:
            totals["errors"] += 1
            logger.warning(
                "position reconciliation: account %s not read: %s: %.200s", account_id, type(exc).__name__, exc
            )
            continue
        for (_account, _market), bots in pairs.items():
            market = bots[0].market
            try:
                totals[judge(redis, account_id, market, bots, positions[market.symbol])] += 1
            except Exception:
                totals["errors"] += 1
                logger.exception("position reconciliation of account %s %s failed", account_id, market.symbol)
    return totals


def _plain(value: Decimal) -> str:
    return f"{value.normalize():f}" if value else "0"


@shared_task(name="workers.perp_reconcile.sweep")
def sweep() -> dict[str, int]:
    """Beat entry point (every 30 s)."""
    from apps.core import metrics

    totals = run()
    metrics.reconcile_mismatch("position", totals["reported"])
    return totals
