"""Writes of the risk sweep's pause (``Bot.risk_paused_reason`` / ``risk_paused_at``).

The pause is part of the bot's row, next to its desired state: the risk sweep
(``workers/risk.py``) sets it in the transaction of its incident (and a hosted paper perpetual's
liquidation sets it through its loop, :func:`bot_risk_hold`), and everything that decides
whether a bot quotes reads it from there with the desired state — the owning host every few
seconds, a new owner at take-over, the supervisor, ``workers.lifecycle.apply``. The control
message the sweep publishes only makes the owner act at once. ``Bot.risk_paused_by`` says what
set it (``risk_sweep``, ``liquidation``). The sweep clears only its own pauses (``AUTO_RESUMABLE``)
when their condition cleared (auto-resume, or a bot the trader paused meanwhile): a
liquidation's pause stays until the trader's start or resume (an override, BotEvent
``risk_override``), stop or kill (``apps.bots.services``), which clear any.
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from apps.bots.models import (
    AUTO_RESUMABLE,
    RISK_PAUSE_REASON_MAX,
    ActualState,
    Bot,
    BotEvent,
    DesiredState,
    RiskPausedBy,
)
from apps.core.timeseries import ns_to_dt


def risk_pause_clear(bot: Bot) -> list[str]:
    """Clear the risk pause on ``bot`` (not saved); returns the fields to save."""
    if bot.risk_paused_at is None and not bot.risk_paused_reason:
        return []
    bot.risk_paused_reason, bot.risk_paused_at, bot.risk_paused_by = "", None, ""
    return ["risk_paused_reason", "risk_paused_at", "risk_paused_by"]


def bot_risk_pause(bot_id: int, reason: str, ts_ns: int) -> bool:
    """Record the risk sweep's pause of a bot that must run (desired running or paused) and is
    not risk-paused yet: the reason (at most ``RISK_PAUSE_REASON_MAX`` characters) and time on
    the row, ``actual_state`` paused with the reason, and a BotEvent ``risk_pause`` (which the
    notifications' event scan sends). Returns whether it was recorded (``False``: already
    paused by the sweep, or stopped meanwhile). The caller runs it in one transaction with its
    incident."""
    reason = reason[:RISK_PAUSE_REASON_MAX]
    done = Bot.objects.filter(
        pk=bot_id, risk_paused_at__isnull=True, desired_state__in=(DesiredState.RUNNING, DesiredState.PAUSED)
    ).update(
        risk_paused_reason=reason,
        risk_paused_at=ns_to_dt(ts_ns),
        risk_paused_by=RiskPausedBy.RISK_SWEEP,
        actual_state=ActualState.PAUSED,
        state_reason=f"risk: {reason}",
        updated=timezone.now(),
    )
    if done:
        _event(bot_id, ts_ns, "risk_pause", f"paused by the risk sweep: {reason}")
    return bool(done)


def bot_risk_hold(bot_id: int, reason: str, ts_ns: int) -> None:
    """A risk pause the venue imposed (a paper perpetual's liquidation, ``workers.paper_perp``):
    recorded on the row as the sweep's is, replacing any pause there, with ``actual_state``
    paused and the reason, ``risk_paused_by`` ``liquidation`` (auto-resume leaves it: the trader
    resumes); no event (the caller records its own incident and notification)."""
    reason = reason[:RISK_PAUSE_REASON_MAX]
    Bot.objects.filter(pk=bot_id).update(
        risk_paused_reason=reason,
        risk_paused_at=ns_to_dt(ts_ns),
        risk_paused_by=RiskPausedBy.LIQUIDATION,
        actual_state=ActualState.PAUSED,
        state_reason=f"risk: {reason}",
        updated=timezone.now(),
    )


def bot_risk_resume(bot_id: int, ts_ns: int, *, auto: bool) -> bool:
    """The risk sweep: clear its own pause (``risk_paused_by`` in ``AUTO_RESUMABLE``; a
    liquidation's is left for the trader) once its condition cleared. With ``auto`` (the bot's
    ``auto_resume``, desired running) the bot quotes again: ``actual_state`` running and a
    BotEvent ``risk_resume``. Returns whether a pause was cleared."""
    fields: dict[str, Any] = {
        "risk_paused_reason": "", "risk_paused_at": None, "risk_paused_by": "", "updated": timezone.now()
    }  # fmt: skip
    if auto:
        fields.update(actual_state=ActualState.RUNNING, state_reason="")
    must = {"desired_state": DesiredState.RUNNING} if auto else {}  # not one the trader paused meanwhile
    done = Bot.objects.filter(
        pk=bot_id, risk_paused_at__isnull=False, risk_paused_by__in=AUTO_RESUMABLE, **must
    ).update(**fields)
    if done and auto:
        _event(bot_id, ts_ns, "risk_resume", "risk condition cleared; auto-resumed")
    return bool(done)


def _event(bot_id: int, ts_ns: int, code: str, message: str) -> None:
    BotEvent.objects.create(bot_id=bot_id, ts=ns_to_dt(ts_ns), kind="risk", code=code, message=message)
