"""Delivering queued notifications, and turning what happened into notifications.

:func:`deliver_one` is what the Celery task ``workers.notifications.deliver`` runs for one
:class:`~apps.notifications.models.Delivery`: a per-channel send rate limit in Redis (a sliding
minute), a Redis claim so two workers never send the same delivery, the transport, and the
delivery log (attempts, status, last error). The task retries with exponential backoff
(:func:`backoff_seconds`) until ``NOTIFICATIONS_MAX_ATTEMPTS``.

:func:`notify_recent_events` scans (all of, page by page) what happened since the last scan — new fills, bot events
(risk breaches, pauses, errors, stops) and feeds that are down — and calls
:func:`apps.notifications.services.notify` with a key per event, so each is sent once.
:func:`daily_summaries` sends each subscribed user a summary of the last day.

Bot events go to the bot's owner only: rules on bots shared with you are refused at creation
(``apps.notifications.services``), so no accepted rule silently never fires.
"""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db.models import Count, Sum
from django.utils import timezone

from apps.notifications import transports
from apps.notifications.models import Delivery, DeliveryStatus, EventKind, NotificationRule
from apps.notifications.services import channel_secret, delivery_record_attempt, notify

logger = logging.getLogger(__name__)
SCAN_OVERLAP = timedelta(seconds=60)
SCAN_PAGE = 1000  # rows per query; scans page through everything before moving the cursor
FEED_DOWN_STATES = ("reconnecting", "error", "resyncing")


def _prefix() -> str:
    return f"{settings.REDIS_PREFIX}:notif"


def _redis():
    from apps.core.health import redis_client

    return redis_client()


def max_attempts() -> int:
    return settings.NOTIFICATIONS_MAX_ATTEMPTS


def backoff_seconds(attempt: int) -> float:
    """Wait before retry ``attempt`` (1-based): base * 2^(attempt-1), +/-20 % jitter, capped."""
    base = settings.NOTIFICATIONS_RETRY_BASE_SECONDS
    cap = settings.NOTIFICATIONS_RETRY_MAX_SECONDS
    return min(cap, base * 2 ** max(0, attempt - 1)) * random.uniform(0.8, 1.2)


@dataclass(frozen=True)
class Outcome:
    """``sent``, ``retry`` (after ``retry_after`` s), ``failed`` or ``skipped`` (not queued
    any more, or another worker is sending it)."""

    status: str
    detail: str = ""
    retry_after: float | None = None


def _rate_ok(redis, channel_id: int, limit: int, now: float) -> float | None:
    """Sliding-minute limit per channel in Redis. None when a send may go now, else seconds to wait."""
    key = f"{_prefix()}:rate:{channel_id}"
    member = f"{now:.6f}:{random.random():.6f}"
    pipe = redis.pipeline()
    pipe.zremrangebyscore(key, 0, now - 60)
    pipe.zcard(key)
    pipe.zrange(key, 0, 0, withscores=True)
    _, count, oldest = pipe.execute()
    if count >= limit:
        return max(0.05, 60 - (now - oldest[0][1])) if oldest else 1.0
    pipe = redis.pipeline()
    pipe.zadd(key, {member: now})
    pipe.expire(key, 120)
    pipe.execute()
    return None


def deliver_one(*, delivery_id: int, redis=None) -> Outcome:
    """Send one queued delivery once; see the module docstring."""
    delivery = Delivery.objects.select_related("channel").filter(pk=delivery_id).first()
    if delivery is None or delivery.status != DeliveryStatus.QUEUED:
        return Outcome("skipped", "not queued")
    channel = delivery.channel
    if not channel.enabled and delivery.event_kind != EventKind.TEST:
        delivery_record_attempt(delivery_id=delivery_id, sent=False, error="channel disabled", final=True)
        return Outcome("failed", "channel disabled")
    redis = redis or _redis()
    wait = _rate_ok(redis, channel.pk, channel.rate_limit_per_minute, time.time())
    if wait is not None:
        return Outcome("retry", f"channel over {channel.rate_limit_per_minute}/min", retry_after=wait)
    claim = f"{_prefix()}:sending:{delivery_id}"
    if not redis.set(claim, "1", nx=True, ex=120):
        return Outcome("skipped", "another worker is sending it")
    try:
        message = {**(delivery.payload or {}), "event_kind": delivery.event_kind, "delivery_id": delivery.pk}
        detail = transports.send(channel.kind, channel.config or {}, channel_secret(channel=channel), message)
    except transports.TransportError as exc:
        final = exc.permanent or delivery.attempts + 1 >= max_attempts()
        delivery_record_attempt(delivery_id=delivery_id, sent=False, error=str(exc), final=final)
        redis.delete(claim)
        if final:
            return Outcome("failed", str(exc))
        return Outcome("retry", str(exc), retry_after=exc.retry_after or backoff_seconds(delivery.attempts + 1))
    except Exception as exc:  # a bug in a transport must not leave the delivery queued forever
        logger.exception("delivery %s crashed", delivery_id)
        delivery_record_attempt(delivery_id=delivery_id, sent=False, error=f"{type(exc).__name__}: {exc}", final=True)
        redis.delete(claim)
        return Outcome("failed", str(exc))
    delivery_record_attempt(delivery_id=delivery_id, sent=True)
    return Outcome("sent", detail)


# --- events -> notifications ----------------------------------------------------------------
def _subscribers(kind: str) -> set[int]:
    return set(
        NotificationRule.objects.filter(event_kind=kind, enabled=True, channels__enabled=True).values_list(
            "owner_id", flat=True
        )
    )


def _bot_event_kinds(kind: str, code: str) -> tuple[str, ...]:
    """Notification event kinds of a BotEvent (kind, code); empty: not notified. A risk pause
    is both a risk breach and a pause."""
    code = code or ""
    if kind == "risk":
        if "resume" in code:
            return ()
        return (EventKind.RISK_BREACH, EventKind.BOT_PAUSED) if "pause" in code else (EventKind.RISK_BREACH,)
    if kind == "error" or code == "stop_unconfirmed":
        return (EventKind.BOT_ERROR,)
    if kind == "lifecycle":
        if "pause" in code:
            return (EventKind.BOT_PAUSED,)
        if code.startswith(("stop", "kill")):
            return (EventKind.BOT_STOPPED,)
    return ()


def _since(redis, name: str, now: datetime) -> datetime:
    raw = redis.get(f"{_prefix()}:cursor:{name}")
    if raw is None:
        return now - SCAN_OVERLAP
    return datetime.fromisoformat(raw.decode()) - SCAN_OVERLAP


def _pages(queryset):
    """Every row of ``queryset`` in (ts, id) order, SCAN_PAGE rows per query (keyset paging)."""
    from django.db.models import Q

    queryset = queryset.order_by("ts", "id")
    page = list(queryset[:SCAN_PAGE])
    while page:
        yield from page
        if len(page) < SCAN_PAGE:
            return
        last = page[-1]
        page = list(queryset.filter(Q(ts__gt=last.ts) | Q(ts=last.ts, id__gt=last.id))[:SCAN_PAGE])


def _fills(since: datetime, now: datetime) -> int:
    from apps.orders.models import Fill

    users = _subscribers(EventKind.FILL)
    if not users:
        return 0
    sent = 0
    fills = Fill.objects.filter(ts__gte=since, ts__lte=now, bot__owner_id__in=users).select_related(
        "bot", "bot__market"
    )
    for fill in _pages(fills):
        notional = fill.price * fill.quantity
        result = notify(
            user=fill.bot.owner,
            kind=EventKind.FILL,
            key=f"fill:{fill.account_id}:{fill.venue_trade_id}",
            subject=f"{fill.bot.name}: {fill.side} {fill.quantity.normalize()} @ {fill.price.normalize()}",
            body=(
                f"Bot {fill.bot.name} ({fill.bot.market.venue} {fill.bot.market.symbol}) {fill.side} "
                f"{fill.quantity.normalize()} at {fill.price.normalize()} ({fill.liquidity}), fee {fill.fee.normalize()}."
            ),
            data={"bot_id": fill.bot_id, "notional": notional, "trade_id": fill.venue_trade_id},
            bot=fill.bot,
            value=notional,
        )
        sent += len(result["queued"])
    return sent


def _bot_events(since: datetime, now: datetime) -> int:
    from apps.bots.models import BotEvent

    sent = 0
    kinds = [EventKind.RISK_BREACH, EventKind.BOT_PAUSED, EventKind.BOT_ERROR, EventKind.BOT_STOPPED]
    users = set().union(*(_subscribers(k) for k in kinds))
    if not users:
        return 0
    events = BotEvent.objects.filter(ts__gte=since, ts__lte=now, bot__owner_id__in=users).select_related("bot")
    for event in _pages(events):
        for kind in _bot_event_kinds(event.kind, event.code):
            result = notify(
                user=event.bot.owner,
                kind=kind,
                key=f"{kind}:{event.bot_id}:{event.ts.isoformat()}:{event.code}"[:200],
                subject=f"{event.bot.name}: {EventKind(kind).label.lower()} ({event.code or event.kind})",
                body=event.message or event.code,
                data={"bot_id": event.bot_id, "code": event.code},
                bot=event.bot,
            )
            sent += len(result["queued"])
    return sent


def _feeds_down(redis, now: datetime) -> int:
    """Notify owners of running bots whose feed reports a non-live health."""
    from apps.bots.models import Bot

    users = _subscribers(EventKind.FEED_DOWN)
    if not users:
        return 0
    bots = Bot.objects.filter(owner_id__in=users, desired_state="running").select_related("market", "owner")
    feeds: dict[tuple[str, str], list] = {}
    for bot in bots:
        feeds.setdefault((bot.market.venue, bot.market.symbol), []).append(bot)
    sent = 0
    window = now.strftime("%Y%m%d%H") + f"{now.minute // 10}"
    for (venue, symbol), owners in feeds.items():
        raw = redis.get(f"{settings.REDIS_PREFIX}:feed:{venue}:{symbol}:health")
        health = json.loads(raw).get("health") if raw else None
        if health not in FEED_DOWN_STATES:
            continue
        info = json.loads(raw)
        for bot in owners:
            result = notify(
                user=bot.owner,
                kind=EventKind.FEED_DOWN,
                key=f"feed:{venue}:{symbol}:{window}",
                subject=f"Feed {venue} {symbol} is {health}",
                body=f"The market data feed {venue} {symbol} is {health}: {info.get('last_error') or 'no detail'}.",
                data={"venue": venue, "symbol": symbol, "health": health},
                bot=bot,
            )
            sent += len(result["queued"])
    return sent


def notify_recent_events(*, now: datetime | None = None, redis=None) -> dict[str, int]:
    """One scan of fills, bot events and feed health since the previous scan (60 s overlap;
    event keys make the overlap harmless)."""
    now = now or timezone.now()
    redis = redis or _redis()
    counts = {
        "fills": _fills(_since(redis, "fills", now), now),
        "bot_events": _bot_events(_since(redis, "bot_events", now), now),
        "feeds": _feeds_down(redis, now),
    }
    for name in ("fills", "bot_events"):
        redis.set(f"{_prefix()}:cursor:{name}", now.isoformat(), ex=7 * 86400)
    return counts


def daily_summaries(*, day_end: datetime | None = None) -> int:
    """Send every user with a daily-summary rule the last 24 h: PnL per bot (equity change),
    fills and volume, and arbitrage opportunities seen. Keyed per user and day."""
    from apps.accounts.models import User
    from apps.arbitrage.models import Opportunity
    from apps.bots.models import Bot
    from apps.orders.models import Fill
    from apps.portfolio.models import PnlSnapshot

    end = day_end or timezone.now()
    start = end - timedelta(days=1)
    opportunities = Opportunity.objects.filter(ts__gte=start, ts__lt=end).aggregate(n=Count("id"))["n"]
    sent = 0
    for user in User.objects.filter(pk__in=_subscribers(EventKind.DAILY_SUMMARY)):
        lines, total = [], Decimal(0)
        for bot in Bot.objects.filter(owner=user).order_by("name"):
            snaps = PnlSnapshot.objects.filter(bot=bot, ts__gte=start, ts__lt=end).order_by("ts")
            first, last = snaps.first(), snaps.last()
            pnl = (last.equity - first.equity) if first and last else Decimal(0)
            total += pnl
            agg = Fill.objects.filter(bot=bot, ts__gte=start, ts__lt=end).aggregate(n=Count("id"), q=Sum("quantity"))
            lines.append(
                f"- {bot.name} ({bot.actual_state}): PnL {pnl.normalize():f}, {agg['n']} fills, "
                f"volume {(agg['q'] or Decimal(0)).normalize():f}"
            )
        body = "\n".join(
            [
                f"Summary {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC",
                f"Total PnL: {total.normalize():f}",
                *lines,
                f"Arbitrage opportunities seen: {opportunities}",
            ]
        )
        result = notify(
            user=user,
            kind=EventKind.DAILY_SUMMARY,
            key=f"daily:{user.pk}:{end:%Y-%m-%d}",
            subject=f"Daily summary {end:%Y-%m-%d}: PnL {total.normalize():f}",
            body=body,
            data={"total_pnl": total, "bots": len(lines), "opportunities": opportunities},
        )
        sent += len(result["queued"])
    return sent
