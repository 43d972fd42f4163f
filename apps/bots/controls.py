"""Trader controls beyond the lifecycle: flatten a bot's position (also a stopped bot's), close
every position of an account, an account's kill switch, and the global kill switch (turning it on,
its state and its lifting).

Flattening always goes through the bot's own loop (``kill_flatten``: cancel everything, then a
reduce-only IOC taker order priced at most 0.5 % through the touch), so it passes the same
pre-trade risk as the bot's orders. A stopped bot is first brought up paused (no quoting), then
told to flatten and stop (``workers.bots.flatten``). In hedge position mode a flatten closes both
legs, one reduce-only order per leg (:mod:`apps.bots.hedge_position`): a bot whose legs net to
zero is not flat."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Case, DecimalField, F, Sum, Value, When

from apps.accounts.errors import FieldErrors
from apps.accounts.models import AuditAction, AuditLog, User
from apps.accounts.services import audit_record
from apps.bots.hedge_position import Legs, bot_legs
from apps.bots.models import ActualState, Bot, DesiredState
from apps.bots.risk_pause import risk_pause_clear
from apps.bots.services import APPLY_TASK, _enqueue, bot_kill
from apps.exchanges.models import ExchangeAccount

FLATTEN_TASK = "workers.bots.flatten"
GLOBAL = "global"


def bot_position(bot_id: int) -> Decimal:
    """The bot's position from its own fills (base currency)."""
    from apps.orders.models import Fill

    signed = Case(When(side="buy", then=F("quantity")), default=-F("quantity"), output_field=DecimalField())
    return Fill.objects.filter(bot_id=bot_id).aggregate(p=Sum(signed, default=Value(Decimal(0))))["p"]


@transaction.atomic
def bot_flatten(*, bot: Bot, actor: User) -> Decimal:
    """Close the bot's position with a reduce-only IOC order and leave the bot stopped; returns
    the position being closed. Raises ``FieldErrors`` when flat or the account's kill switch is on."""
    bot = (
        Bot.objects.select_for_update(no_key=True, of=("self",))
        .select_related("exchange_account", "market")
        .get(pk=bot.pk)
    )
    position = bot_position(bot.pk)
    legs = bot_legs(bot)
    if not _holds(position, legs):
        held = f"no {bot.market.base}" if legs is None else "nothing on its long or short leg"
        raise FieldErrors({"position": [f"{bot.name} holds {held}: nothing to flatten"]})
    if bot.exchange_account.kill_switch:
        raise FieldErrors(
            {
                "exchange_account": [
                    f"the kill switch of account {bot.exchange_account.label!r} is on: clear it to let "
                    f"{bot.name} place the closing order"
                ]
            }
        )
    running = bot.desired_state != DesiredState.STOPPED
    before = {"desired_state": bot.desired_state}
    bot.desired_state = DesiredState.STOPPED
    bot.state_reason = f"flatten requested by {actor.username}"
    bot.save(update_fields=["desired_state", "state_reason", "updated", *risk_pause_clear(bot)])
    audit_record(
        action=AuditAction.BOT_KILLED,
        actor=actor,
        owner=bot.owner,
        obj=bot,
        before=before,
        after={"desired_state": DesiredState.STOPPED, "flatten": str(position)}
        | ({} if legs is None else {"legs": {"long": _text(legs.long), "short": _text(legs.short)}}),
        message=f"flatten {flatten_text(bot, position, legs)}",
    )
    if running:
        _enqueue(APPLY_TASK, args=[bot.pk], kwargs={"kill": True, "flatten": True})
    else:
        _enqueue(FLATTEN_TASK, args=[bot.pk])
    return position


def flatten_text(bot: Bot, position: Decimal, legs: Legs | None) -> str:
    """What a flatten of ``bot`` closes, for the trader: its net, or in hedge mode both legs."""
    if legs is None:
        return f"{position} {bot.market.base}"
    return legs.text("contracts") + ", one reduce-only order per leg"


def _holds(position: Decimal, legs: Legs | None) -> bool:
    return bool(position) if legs is None else legs.open


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def account_close_all(*, account: ExchangeAccount, actor: User) -> list[tuple[Bot, Decimal]]:
    """Flatten every bot of the account that holds a position (hedge mode: on either leg);
    returns ``(bot, net position)`` pairs."""
    done = []
    for bot in Bot.objects.filter(exchange_account=account).select_related("market", "exchange_account"):
        if _holds(bot_position(bot.pk), bot_legs(bot)):
            done.append((bot, bot_flatten(bot=bot, actor=actor)))
    return done


def global_kill_state() -> dict[str, Any] | None:
    """The last global kill or lift: ``{on, ts, actor, reason, accounts}`` (``None``: never used)."""
    row = (
        AuditLog.objects.filter(action=AuditAction.KILL_SWITCH, object_type=GLOBAL)
        .order_by("-ts", "-id")
        .values("ts", "actor_name", "message", "after")
        .first()
    )
    if row is None:
        return None
    after = row["after"] or {}
    return {
        "on": not after.get("lifted", False),
        "ts": row["ts"],
        "actor": row["actor_name"],
        "reason": row["message"],
        "accounts": after.get("accounts", []),
        "bots_killed": after.get("bots_killed"),
    }


@transaction.atomic
def global_kill_lift(*, actor: User, reason: str) -> int:
    """Operators only: clear the kill switches the last global kill turned on (bots stay
    stopped; their owners start them). ``reason`` is required and shown to every trader.
    Returns the number of accounts cleared."""
    if not actor.is_operator:
        raise PermissionDenied("only operators may lift the global kill switch")
    reason = (reason or "").strip()
    if not reason:
        raise FieldErrors({"reason": ["required: say why trading may resume (traders see it)"]})
    state = global_kill_state()
    if state is None or not state["on"]:
        raise FieldErrors({"global": ["the global kill switch is not on"]})
    cleared = 0
    # Only the switches that kill turned on: a trader's own account kill stays on.
    for account in ExchangeAccount.objects.filter(kill_switch=True, pk__in=state["accounts"]):
        account_kill_switch(account=account, actor=actor, on=False, reason=f"global kill lifted: {reason}")
        cleared += 1
    audit_record(
        action=AuditAction.KILL_SWITCH,
        actor=actor,
        object_type=GLOBAL,
        after={"lifted": True, "accounts_cleared": cleared},
        message=reason,
    )
    return cleared


@transaction.atomic
def account_kill_switch(*, account: ExchangeAccount, actor: User, on: bool = True, reason: str = "") -> int:
    """Turn an account's kill switch on (kill every active bot on it; no bot may start) or off.
    Returns the number of bots killed."""
    account = ExchangeAccount.objects.select_for_update(no_key=True).get(pk=account.pk)  # see _transition
    before = account.kill_switch
    account.kill_switch = on
    account.save(update_fields=["kill_switch", "updated"])
    killed = 0
    if on:
        for bot in Bot.objects.filter(exchange_account=account).exclude(
            desired_state=DesiredState.STOPPED, actual_state=ActualState.STOPPED
        ):
            bot_kill(bot=bot, actor=actor, reason=reason or f"kill switch of account {account.label!r}")
            killed += 1
    audit_record(
        action=AuditAction.KILL_SWITCH,
        actor=actor,
        owner=account.owner,
        obj=account,
        before={"kill_switch": before},
        after={"kill_switch": on, "bots_killed": killed},
        message=reason,
    )
    return killed


@transaction.atomic
def global_kill_switch(*, actor: User, reason: str = "") -> int:
    """Operators only: kill every active bot and turn on the kill switch of their accounts."""
    if not actor.is_operator:
        raise PermissionDenied("only operators may use the global kill switch")
    accounts = ExchangeAccount.objects.filter(
        pk__in=Bot.objects.exclude(desired_state=DesiredState.STOPPED, actual_state=ActualState.STOPPED).values(
            "exchange_account_id"
        )
    )
    killed = 0
    ids = []
    for account in accounts:
        killed += account_kill_switch(account=account, actor=actor, on=True, reason=reason or "global kill switch")
        ids.append(account.pk)
    audit_record(
        action=AuditAction.KILL_SWITCH,
        actor=actor,
        object_type="global",
        after={"bots_killed": killed, "accounts": ids},
        message=reason or "global kill switch",
    )
    return killed
