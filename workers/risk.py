"""Risk sweeps (beat, every 10 s), a second line of defence behind each loop's own limits.

Per bot, from its PnL snapshots: daily loss (equity now vs the first snapshot of the UTC day)
against ``risk.daily_loss_limit`` and trailing drawdown from peak equity against
``risk.max_drawdown``. Per user across bots: the summed daily loss against
``MM_USER_DAILY_LOSS_LIMIT`` (env/settings, quote currency). Per exchange account: the summed
absolute position value against ``MM_ACCOUNT_MAX_EXPOSURE``. A breach pauses the bot(s) with a
recorded reason: ``Bot.risk_paused_reason``/``risk_paused_at`` (the pause is part of the bot's
state in the database, :mod:`apps.bots.risk_pause`), BotEvent ``risk``/``risk_pause`` — which the
notifications scan turns into a risk-breach and a pause notification —, ``state_reason`` and an
incident, in one transaction; then one ``pause`` message to the owning host. Bots with
``auto_resume`` resume once the condition clears.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from decimal import Decimal

from celery import shared_task
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.bots.risk_pause import bot_risk_pause, bot_risk_resume
from workers import lifecycle

logger = logging.getLogger(__name__)


def sweep() -> dict[str, int]:
    """One pass over running bots; returns counters (paused, resumed)."""
    from apps.bots.models import Bot
    from apps.core.models import Incident
    from apps.portfolio.models import PnlSnapshot

    redis = lifecycle.redis_client()
    day_start = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    bots = list(Bot.objects.filter(desired_state__in=lifecycle.RUN_STATES).select_related("owner", "market"))
    breaches: dict[int, str] = {}
    daily: dict[int, Decimal] = {}
    user_loss: dict[int, Decimal] = defaultdict(Decimal)
    exposure: dict[int, Decimal] = defaultdict(Decimal)
    for bot in bots:
        latest = PnlSnapshot.objects.filter(bot=bot).order_by("-ts").first()
        if latest is None:
            continue
        first = PnlSnapshot.objects.filter(bot=bot, ts__gte=day_start).order_by("ts").first() or latest
        loss = first.equity - latest.equity
        daily[bot.pk] = loss
        user_loss[bot.owner_id] += loss
        if latest.mid is not None:
            exposure[bot.exchange_account_id] += abs(latest.position * latest.mid)
        risk = bot.risk or {}
        limit = risk.get("daily_loss_limit")
        if limit is not None and loss > Decimal(str(limit)):
            breaches[bot.pk] = f"daily loss {loss:.2f} above the limit {limit}"
            continue
        max_dd = risk.get("max_drawdown")
        if max_dd is not None:
            peak = max(
                latest.peak_equity,
                *(
                    s
                    for s in PnlSnapshot.objects.filter(bot=bot, ts__gte=day_start).values_list("equity", flat=True)[
                        :5000
                    ]
                ),
            )
            drawdown = peak - latest.equity
            if drawdown > Decimal(str(max_dd)):
                breaches[bot.pk] = f"drawdown {drawdown:.2f} from peak equity {peak:.2f} above the limit {max_dd}"
    user_limit = settings.USER_DAILY_LOSS_LIMIT
    account_limit = settings.ACCOUNT_MAX_EXPOSURE
    for bot in bots:
        if bot.pk in breaches:
            continue
        if user_limit is not None and user_loss[bot.owner_id] > user_limit:
            breaches[bot.pk] = f"your bots' daily loss {user_loss[bot.owner_id]:.2f} is above the limit {user_limit}"
        elif account_limit is not None and exposure[bot.exchange_account_id] > account_limit:
            breaches[bot.pk] = (
                f"exposure on the account {exposure[bot.exchange_account_id]:.2f} is above the limit {account_limit}"
            )
    paused = resumed = 0
    now = time.time_ns()
    for bot in bots:
        flagged = bot.risk_paused_at is not None
        reason = breaches.get(bot.pk)
        if reason and not flagged:
            with transaction.atomic():  # the pause, its event and its incident: all or none
                if not bot_risk_pause(bot.pk, reason, now):
                    continue  # stopped or paused by another sweep meanwhile
                Incident.objects.create(
                    owner=bot.owner,
                    bot=bot,
                    account_id=bot.exchange_account_id,
                    kind="risk",
                    message=f"{bot.name}: {reason}",
                )
            lifecycle.control(redis, bot.pk, "pause")  # the owner acts now; the row is the truth
            paused += 1
        elif flagged and not reason:
            if bot.desired_state != "running":  # the trader paused it meanwhile: paused by the trader now
                bot_risk_resume(bot.pk, now, auto=False)
            elif bot.auto_resume and bot_risk_resume(bot.pk, now, auto=True):
                lifecycle.control(redis, bot.pk, "resume")
                resumed += 1
            # Without auto_resume the pause stays until the trader resumes the bot.
    return {"checked": len(bots), "paused": paused, "resumed": resumed}


@shared_task(name="workers.risk.sweep")
def risk_sweep() -> dict[str, int]:
    """Beat entry point (every 10 s)."""
    return sweep()
