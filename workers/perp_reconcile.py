"""Position reconciliation of live perpetual bots (beat, every 30 s): the position booked from the
bots' recorded fills against the exchange's ``fetchPositions``.

Scope: every bot on a **live** account whose own market is a live perpetual
(:func:`apps.derivatives.hosting.live_perp`, as the host decides), running or not, and every
**leg** of a hedged bot (:mod:`apps.bots.hedged`) that is a live perpetual: its maker leg (the
bot's own account and market) and its hedge leg (``params.hedge_account`` / ``hedge_market``).
The exchange keeps one position per account and market, so the comparison is per (account,
market): the fills recorded on that account by all the bots and legs trading that market there
(a single-venue bot's every fill on the account, a hedged leg's by its client-id family,
``<bot prefix>m-`` / ``<bot prefix>h-``, so that two legs on one account are kept apart), from
flat, against the exchange's net position of the market. Each account is read once per sweep,
through its own keys and its shared rate limit (:func:`workers.live_venue.build_gateway`).
A live **spot** leg is not compared: the exchange's balance is the account's whole holding
(deposits, other trading), not the sum of the leg's fills, and no starting balance is kept to
compare it with.

A difference is an incident only when the same figures (booked, exchange) are seen on **two
sweeps in a row** (the first sighting is kept in Redis): a fill the exchange counted may still be
on its way to the database. The ``position_mismatch`` incident (the bot's, the account's;
:func:`connectors.perp_venue.position_mismatch` says both figures) is made **once**: not while an
unresolved one with the same figures exists, whoever made it.

**Hosted bots are left to their own loop.** While any bot of an (account, market) pair holds its
lease (a host runs it), the sweep does not read or judge that pair, and forgets a first sighting:
the bot's loop compares the exchange's position on every read (streamed and polled,
:mod:`workers.perp_live`), makes the same incident itself and has perpetual risk take the
exchange's position (a hedged bot's live perpetual leg: :mod:`workers.hedged_live_perp`, a
``position_mismatch`` bot event naming the leg); a second judge of the same pair would race its
booked fills, still in the bot's database writer, and double the incident. The sweep covers what no loop watches: stopped
bots, bots in error, and running bots whose host is gone (lease expired).
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from celery import shared_task
from django.db.models import Q, Sum

from workers import keys, lifecycle

logger = logging.getLogger(__name__)
SEEN_TTL_S = 3600  # a first sighting older than this is forgotten (no sweep ran in between)


def seen_key(account_id: int, market_id: int) -> str:
    return f"{keys.prefix()}:perprecon:{account_id}:{market_id}"


@dataclass(frozen=True)
class Member:
    """A bot trading a pair: a single-venue bot (``prefix`` None: its every fill on the account) or
    one leg of a hedged bot (``leg`` maker / hedge, its fills those of ``prefix``-``n`` ids)."""

    bot: Any
    leg: str = "bot"
    prefix: str | None = None


@dataclass
class Pair:
    market: Any
    members: list[Member] = field(default_factory=list)

    @property
    def bots(self) -> list:
        return list({m.bot.pk: m.bot for m in self.members}.values())


def live_perp_pairs() -> dict[tuple[int, int], Pair]:
    """(account id, market id) -> the market and the live perpetual bots and hedged legs trading it."""
    from apps.bots.hedged import STRATEGY
    from apps.bots.models import Bot
    from apps.derivatives.hosting import live_perp
    from apps.exchanges.models import ExchangeAccount, Market
    from workers.records import bot_prefix

    pairs: dict[tuple[int, int], Pair] = {}

    def add(account_id: int, market, member: Member) -> None:
        pairs.setdefault((account_id, market.pk), Pair(market)).members.append(member)

    bots = Bot.objects.filter(exchange_account__kind="live").select_related("market").order_by("pk")
    for bot in bots:
        if live_perp(bot.market.venue, bot.market.symbol):  # as the host decides (workers.bot_start)
            hedged = bot.strategy == STRATEGY
            add(
                bot.exchange_account_id,
                bot.market,
                Member(bot, "maker", bot_prefix(bot) + "m") if hedged else Member(bot),
            )
    hedged = list(Bot.objects.filter(strategy=STRATEGY).order_by("pk"))
    accounts = {a.pk for a in ExchangeAccount.objects.filter(kind="live")}
    markets = Market.objects.in_bulk([b.params.get("hedge_market") for b in hedged if isinstance(b.params, dict)])
    for bot in hedged:
        params = bot.params if isinstance(bot.params, dict) else {}
        account_id, market = params.get("hedge_account"), markets.get(params.get("hedge_market"))
        if account_id in accounts and market is not None and live_perp(market.venue, market.symbol):
            add(account_id, market, Member(bot, "hedge", bot_prefix(bot) + "h"))
    return pairs


def booked(account_id: int, members: list) -> Decimal:
    """Contracts bought less sold on this account by these bots (``Bot`` rows) or legs
    (:class:`Member`), from their recorded fills."""
    from apps.orders.models import Fill

    members = [m if isinstance(m, Member) else Member(m) for m in members]
    which = Q(pk__in=[])
    whole = [m.bot.pk for m in members if m.prefix is None]
    if whole:
        which |= Q(bot_id__in=whole)
    for m in members:
        if m.prefix is not None:
            which |= Q(bot_id=m.bot.pk, client_order_id__startswith=m.prefix + "-")
    rows = Fill.objects.filter(which, account_id=account_id).values("side").annotate(q=Sum("quantity"))
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


def judge(redis, account_id: int, market, members: list, reports: list) -> str:
    """One pair's comparison: ``agree``, ``first`` (first sighting), ``reported`` (an incident
    made now) or ``known`` (already reported). ``members``: the pair's bots or :class:`Member` legs."""
    from apps.core.models import Incident
    from connectors.perp_venue import position_mismatch

    members = [m if isinstance(m, Member) else Member(m) for m in members]
    key = seen_key(account_id, market.pk)
    ours = booked(account_id, members)
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
    bot = members[0].bot
    if _already_reported(account_id, bot, figures):
        return "known"
    legs = [m for m in members if m.leg != "bot"]
    if legs:
        figures["legs"] = [f"{m.bot.pk}:{m.leg}" for m in legs]
    if len(members) > 1:
        figures["bots"] = [m.bot.pk for m in members]
        message += f" ({', '.join(_who(m) for m in members)} together)"
    elif legs:
        message += f" ({_who(members[0])})"
    Incident.objects.create(
        owner_id=bot.owner_id, bot=bot, account_id=account_id, kind="position_mismatch", message=message, data=figures
    )
    return "reported"


def _who(member: Member) -> str:
    return f"bot {member.bot.pk}" if member.leg == "bot" else f"the {member.leg} leg of hedged bot {member.bot.pk}"


def run() -> dict[str, int]:
    """One sweep over every live perpetual (account, market) pair (see the module docstring)."""
    redis = lifecycle.redis_client()
    totals = {"pairs": 0, "hosted": 0, "agree": 0, "first": 0, "reported": 0, "known": 0, "errors": 0}
    by_account: dict[int, dict[tuple[int, int], Pair]] = defaultdict(dict)
    for (account_id, market_id), pair in live_perp_pairs().items():
        totals["pairs"] += 1
        if any(lifecycle.lease_value(redis, b.pk) for b in pair.bots):
            totals["hosted"] += 1
            redis.delete(seen_key(account_id, market_id))  # the bot's own loop judges this pair
            continue
        by_account[account_id][(account_id, market_id)] = pair
    for account_id, pairs in by_account.items():
        symbols = sorted({pair.market.symbol for pair in pairs.values()})
        try:
            positions = read_account(account_id, symbols)
        except Exception as exc:
            totals["errors"] += 1
            logger.warning(
                "position reconciliation: account %s not read: %s: %.200s", account_id, type(exc).__name__, exc
            )
            continue
        for pair in pairs.values():
            market = pair.market
            try:
                totals[judge(redis, account_id, market, pair.members, positions[market.symbol])] += 1
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
