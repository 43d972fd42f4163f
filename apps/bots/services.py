"""Writes for bots: configuration (validated by ``trading``), lifecycle, sharing, kill switches.

State changes set the *desired* state, write the audit log and, once the transaction commits,
ask the bot workers to apply it (``workers.bots.apply_desired_state``, enqueued by name). The
supervisor also compares desired and actual states periodically, so a lost message only delays.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

from celery import current_app
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from apps.accounts.errors import FieldErrors
from apps.accounts.models import AuditAction, User
from apps.accounts.services import audit_record
from apps.bots import guards, hedged
from apps.bots.models import ActualState, Bot, BotConfigVersion, BotEvent, DesiredState
from apps.bots.risk_pause import risk_pause_clear
from apps.bots.start_lock import account_locked_for_start
from apps.core.timeseries import ns_to_dt
from apps.core.writes import batchable
from apps.exchanges.models import ExchangeAccount, Market
from apps.exchanges.services import market_to_instrument
from trading.config import ConfigError
from trading.instruments import InstrumentError
from trading.risk import RiskLimits
from trading.strategies import build_strategy

logger = logging.getLogger(__name__)

APPLY_TASK = "workers.bots.apply_desired_state"
CONFIG_FIELDS = ("strategy", "params", "risk")


def _enqueue(task: str, *, args: list, kwargs: dict | None = None) -> None:
    def send() -> None:
        try:
            current_app.send_task(task, args=args, kwargs=kwargs or {})
        except Exception:  # the broker being down must not undo a committed state change
            logger.exception("could not enqueue %s%s; the supervisor will apply it on its next sweep", task, args)

    transaction.on_commit(send)


def _snapshot(bot: Bot) -> dict[str, Any]:
    return {"strategy": bot.strategy, "params": bot.params, "risk": bot.risk, "version": bot.config_version}


def bot_config_validate(
    *,
    strategy: str,
    params: Mapping[str, Any],
    risk: Mapping[str, Any] | None,
    market: Market,
    account: ExchangeAccount | None = None,
    account_kind: str | None = None,
    confirm_large: bool = True,
) -> None:
    """Check strategy parameters (on the market's instrument) and risk limits, and, with the
    ``account``, the order size against the account's value (:mod:`apps.bots.guards`; without
    ``confirm_large`` a large order raises :class:`~apps.bots.guards.LargeOrderConfirmation`).

    Raises :class:`FieldErrors` like ``{"params": {"field": ["message"]}, "risk": {...}}``."""
    errors: dict[str, Any] = {}
    if not isinstance(params, Mapping):
        errors["params"] = ["must be an object of parameter -> value"]
    elif strategy == hedged.STRATEGY:
        owner = account.owner if account is not None else None  # the hedge account must be the bot owner's too
        _config, hedge_errors = hedged.validate(params, market, owner=owner, account=account)
        if hedge_errors:
            errors["params"] = hedge_errors
    else:
        try:
            build_strategy(strategy, dict(params), market_to_instrument(market))
        except ConfigError as exc:
            for name, message in exc.errors.items():
                if name == "strategy":
                    errors["strategy"] = [message]
                else:
                    errors.setdefault("params", {})[name] = [message]
        except InstrumentError as exc:
            errors.setdefault("params", {})["__all__"] = [str(exc)]
        except ArithmeticError as exc:  # decimal overflow from an absurd magnitude such as 1e999999
            errors.setdefault("params", {})["__all__"] = [
                f"a value is too large or too precise for {market.symbol} ({type(exc).__name__}); "
                "give amounts and prices of realistic size"
            ]
    if risk is not None and not isinstance(risk, Mapping):
        errors["risk"] = ["must be an object of limit -> value"]
    elif risk is not None:
        from apps.derivatives import hosting as perp_hosting

        try:
            RiskLimits.from_dict(perp_hosting.split_risk(dict(risk))[0], market_to_instrument(market))
        except ConfigError as exc:
            errors["risk"] = {name: [message] for name, message in exc.errors.items()}
        paper = account_kind == "paper" if account is None else account.kind == "paper"
        perp_errors = perp_hosting.validate(dict(risk), market.venue, market.symbol, market, paper=paper)
        if perp_errors:
            errors.setdefault("risk", {}).update({name: [message] for name, message in perp_errors.items()})
    if errors:
        raise FieldErrors(errors)
    if account is not None and isinstance(params, Mapping):
        guards.check_order_size(
            params=params, risk=risk, view=guards.account_view(account, market), confirm_large=confirm_large
        )


def _check_account_market(*, owner: User, account: ExchangeAccount, market: Market) -> None:
    if account.owner_id != owner.pk:
        raise FieldErrors({"exchange_account": [f"account #{account.pk} is not one of {owner.username}'s accounts"]})
    if market.venue != account.venue:
        raise FieldErrors(
            {"market": [f"{market.symbol} is on venue {market.venue!r}; the account trades on {account.venue!r}"]}
        )
    if not market.active:
        raise FieldErrors({"market": [f"{market} is not active on the venue"]})
    from apps.exchanges.market_types import account_market_error

    wrong_type = account_market_error(account, market)
    if wrong_type:
        raise FieldErrors({"market": [wrong_type]})


def _check_wallets(bot_id, account, market, strategy, params, risk) -> None:
    """Paper perpetual wallet allocations within the account's balance (:mod:`apps.derivatives.paper_wallets`)."""
    from apps.derivatives.paper_wallets import check_bot

    errors = check_bot(bot_id=bot_id, account=account, market=market, strategy=strategy, params=params, risk=risk)
    if errors:
        raise FieldErrors(errors)


@transaction.atomic
def bot_create(
    *,
    owner: User,
    name: str,
    exchange_account: ExchangeAccount,
    market: Market,
    strategy: str,
    params: Mapping[str, Any],
    risk: Mapping[str, Any] | None = None,
    auto_resume: bool = False,
    actor: User | None = None,
    confirm_large: bool = True,
) -> Bot:
    """Create a stopped bot with configuration version 1. Without a maximum order size or
    position in ``risk`` it gets them from the account's value (:mod:`apps.bots.guards`)."""
    actor = actor or owner
    name = (name or "").strip()
    if not name:
        raise FieldErrors({"name": ["is empty; give the bot a name"]})
    if Bot.objects.filter(owner=owner, name=name).exists():
        raise FieldErrors({"name": [f"{name!r} is already the name of another of your bots"]})
    _check_account_market(owner=owner, account=exchange_account, market=market)
    if strategy == hedged.STRATEGY and isinstance(params, Mapping):  # the hedge account must be the owner's
        _config, hedge_errors = hedged.validate(params, market, owner=owner, account=exchange_account)
        if hedge_errors:
            raise FieldErrors({"params": hedge_errors})
    risk = dict(risk or {})
    bot_config_validate(strategy=strategy, params=params, risk=risk, market=market, account_kind=exchange_account.kind)
    view = guards.account_view(exchange_account, market)
    guards.check_order_size(params=params, risk=risk, view=view, confirm_large=confirm_large)
    defaults = guards.default_limits(params=params, risk=risk, view=view)
    if defaults != risk:
        risk = defaults
        bot_config_validate(
            strategy=strategy, params=params, risk=risk, market=market, account_kind=exchange_account.kind
        )
    _check_wallets(None, exchange_account, market, strategy, params, risk)
    bot = Bot.objects.create(
        owner=owner,
        name=name,
        exchange_account=exchange_account,
        market=market,
        strategy=strategy,
        params=dict(params),
        risk=risk,
        auto_resume=auto_resume,
    )
    bot.client_id_prefix = f"mm{bot.pk}x"
    bot.save(update_fields=["client_id_prefix"])
    BotConfigVersion.objects.create(
        bot=bot, version=1, strategy=strategy, params=bot.params, risk=bot.risk, author=actor
    )
    audit_record(action=AuditAction.BOT_CREATED, actor=actor, owner=owner, obj=bot, after=_snapshot(bot))
    return bot


@transaction.atomic
def bot_update_config(
    *,
    bot: Bot,
    actor: User,
    name: str | None = None,
    strategy: str | None = None,
    params: Mapping[str, Any] | None = None,
    risk: Mapping[str, Any] | None = None,
    auto_resume: bool | None = None,
    exchange_account: ExchangeAccount | None = None,
    market: Market | None = None,
) -> Bot:
    """Change a bot. A change of strategy, params or risk adds a configuration version and an
    audit entry with before/after; a running bot is told to reload. Account and market can
    change only while the bot is stopped."""
    bot = Bot.objects.select_for_update(no_key=True).get(pk=bot.pk)
    before = _snapshot(bot)
    changed: list[str] = []
    if name is not None:
        name = name.strip()
        if not name:
            raise FieldErrors({"name": ["is empty; give the bot a name"]})
        if Bot.objects.filter(owner=bot.owner, name=name).exclude(pk=bot.pk).exists():
            raise FieldErrors({"name": [f"{name!r} is already the name of another of your bots"]})
        if name != bot.name:
            bot.name = name
            changed.append("name")
    if auto_resume is not None and auto_resume != bot.auto_resume:
        bot.auto_resume = auto_resume
        changed.append("auto_resume")
    moving = (exchange_account is not None and exchange_account.pk != bot.exchange_account_id) or (
        market is not None and market.pk != bot.market_id
    )
    if moving:
        if bot.desired_state != DesiredState.STOPPED or bot.actual_state not in (
            ActualState.STOPPED,
            ActualState.ERROR,
        ):
            raise FieldErrors({"market": ["stop the bot before moving it to another account or market"]})
        account = exchange_account or bot.exchange_account
        new_market = market or bot.market
        _check_account_market(owner=bot.owner, account=account, market=new_market)
        bot.exchange_account, bot.market = account, new_market
        changed += ["exchange_account", "market"]
    new = {
        "strategy": bot.strategy if strategy is None else strategy,
        "params": bot.params if params is None else dict(params) if isinstance(params, Mapping) else params,
        "risk": bot.risk if risk is None else dict(risk) if isinstance(risk, Mapping) else risk,
    }
    config_changed = any(new[k] != getattr(bot, k) for k in CONFIG_FIELDS)
    if config_changed or moving:
        bot_config_validate(
            strategy=new["strategy"],
            params=new["params"],
            risk=new["risk"],
            market=bot.market,
            account=bot.exchange_account,
        )
        _check_wallets(bot.pk, bot.exchange_account, bot.market, new["strategy"], new["params"], new["risk"])
    if config_changed:
        bot.strategy, bot.params, bot.risk = new["strategy"], new["params"], new["risk"]
        bot.config_version += 1
        changed += ["strategy", "params", "risk", "config_version"]
        BotConfigVersion.objects.create(
            bot=bot, version=bot.config_version, strategy=bot.strategy, params=bot.params, risk=bot.risk, author=actor
        )
    if not changed:
        return bot
    bot.save()
    if config_changed:
        audit_record(
            action=AuditAction.CONFIG_CHANGED,
            actor=actor,
            owner=bot.owner,
            obj=bot,
            before=before,
            after=_snapshot(bot),
        )
        if bot.desired_state != DesiredState.STOPPED:
            _enqueue(APPLY_TASK, args=[bot.pk], kwargs={"reload_config": True})
    return bot


@transaction.atomic
def bot_delete(*, bot: Bot, actor: User) -> None:
    """Delete a stopped bot. Its orders and fills stay as they are, with its id (no row of them
    is rewritten: docs/timescaledb.md, "Deleting a bot")."""
    if bot.desired_state != DesiredState.STOPPED or bot.actual_state not in (ActualState.STOPPED, ActualState.ERROR):
        raise FieldErrors({"desired_state": [f"the bot is {bot.actual_state}; stop it before deleting it"]})
    audit_record(action=AuditAction.BOT_DELETED, actor=actor, owner=bot.owner, obj=bot, before=_snapshot(bot))
    bot.delete()


def _transition(
    bot: Bot,
    *,
    actor: User,
    desired: str,
    action: str,
    verb: str,
    allowed_from: Iterable[str],
    reason: str,
    kill: bool = False,
    flatten: bool = False,
) -> Bot:
    # FOR NO KEY UPDATE of the bot row alone: the bots' database writers hold FOR KEY SHARE on the
    # bot and its account while they insert orders, fills and events; FOR UPDATE (and a lock on
    # the joined account) would wait for them, and a kill-all could deadlock with them.
    bot = Bot.objects.select_for_update(no_key=True, of=("self",)).select_related("exchange_account").get(pk=bot.pk)
    # A start/resume of a bot the risk sweep paused is the trader's override, also when its
    # desired state is already running (the sweep pauses the loop, not the desired state).
    overriding_risk = desired == DesiredState.RUNNING and bot.risk_paused_at is not None
    if bot.desired_state == desired and not kill and not overriding_risk:
        return bot
    if bot.desired_state not in allowed_from and not (overriding_risk and bot.desired_state == desired):
        raise FieldErrors(
            {
                "desired_state": [
                    f"cannot {verb} a bot whose desired state is {bot.desired_state}; "
                    f"accepted from: {', '.join(allowed_from)}"
                ]
            }
        )
    if desired == DesiredState.RUNNING:
        bot.exchange_account = account_locked_for_start(bot)
    if desired == DesiredState.RUNNING and bot.exchange_account.kill_switch:
        raise FieldErrors(
            {"exchange_account": [f"the kill switch of account {bot.exchange_account.label!r} is on; clear it first"]}
        )
    before = {"desired_state": bot.desired_state, "actual_state": bot.actual_state}
    if bot.risk_paused_at is not None:
        before["risk_paused_reason"] = bot.risk_paused_reason
    bot.desired_state = desired
    bot.state_reason = reason
    fields = ["desired_state", "state_reason", "updated"]
    if overriding_risk:
        bot_events_record([(bot.pk, time.time_ns(), "risk", "risk_override", f"risk pause cleared: {reason}", None)])
    if desired != DesiredState.PAUSED:  # a pause keeps it: the bot stays paused either way
        fields += risk_pause_clear(bot)
    bot.save(update_fields=fields)
    audit_record(
        action=action,
        actor=actor,
        owner=bot.owner,
        obj=bot,
        before=before,
        after={"desired_state": desired},
        message=reason,
    )
    _enqueue(
        APPLY_TASK,
        args=[bot.pk],
        kwargs=({"kill": True, "flatten": True} if flatten else {"kill": True}) if kill else {},
    )
    return bot


@transaction.atomic
def bot_start(*, bot: Bot, actor: User) -> Bot:
    """Ask for the bot to run (from stopped or paused; also overrides a risk pause)."""
    return _transition(
        bot,
        actor=actor,
        desired=DesiredState.RUNNING,
        action=AuditAction.BOT_STARTED,
        verb="start",
        allowed_from=(DesiredState.STOPPED, DesiredState.PAUSED),
        reason=f"started by {actor.username}",
    )


@transaction.atomic
def bot_pause(*, bot: Bot, actor: User) -> Bot:
    """Ask a running bot to pause: cancel its quotes, keep its position and state."""
    return _transition(
        bot,
        actor=actor,
        desired=DesiredState.PAUSED,
        action=AuditAction.BOT_PAUSED,
        verb="pause",
        allowed_from=(DesiredState.RUNNING,),
        reason=f"paused by {actor.username}",
    )


@transaction.atomic
def bot_resume(*, bot: Bot, actor: User) -> Bot:
    """Ask a paused bot to quote again, also one the risk sweep paused (the trader's override:
    the sweep pauses it again if its condition still holds)."""
    return _transition(
        bot,
        actor=actor,
        desired=DesiredState.RUNNING,
        action=AuditAction.BOT_RESUMED,
        verb="resume",
        allowed_from=(DesiredState.PAUSED,),
        reason=f"resumed by {actor.username}",
    )


@transaction.atomic
def bot_stop(*, bot: Bot, actor: User) -> Bot:
    """Ask the bot to stop gracefully (cancel its orders, then stop)."""
    return _transition(
        bot,
        actor=actor,
        desired=DesiredState.STOPPED,
        action=AuditAction.BOT_STOPPED,
        verb="stop",
        allowed_from=(DesiredState.RUNNING, DesiredState.PAUSED),
        reason=f"stopped by {actor.username}",
    )


@transaction.atomic
def bot_kill(*, bot: Bot, actor: User, reason: str = "", flatten: bool = False) -> Bot:
    """Stop now: the worker cancels every order at once (``kill=True``), and with ``flatten``
    also closes the position with a reduce-only taker order. Works from any state."""
    return _transition(
        bot,
        actor=actor,
        desired=DesiredState.STOPPED,
        action=AuditAction.BOT_KILLED,
        verb="kill",
        allowed_from=tuple(DesiredState.values),
        reason=f"killed by {actor.username}" + (f": {reason}" if reason else ""),
        kill=True,
        flatten=flatten,
    )


@transaction.atomic
def bot_share(*, bot: Bot, actor: User, users: Iterable[User], share: bool = True) -> Bot:
    """Give (or take back) read-only access to the bot."""
    users = list(users)
    if any(u.pk == bot.owner_id for u in users):
        raise FieldErrors({"users": ["the owner already has access to the bot"]})
    if share:
        bot.shared_with.add(*users)
    else:
        bot.shared_with.remove(*users)
    audit_record(
        action=AuditAction.BOT_SHARED,
        actor=actor,
        owner=bot.owner,
        obj=bot,
        after={"share": share, "users": [u.username for u in users]},
    )
    return bot


def bot_state_set(bot_id: int, actual_state: str, reason: str | None = None) -> None:
    """Set a bot's actual state (what its loop is doing) and, when given, its reason, without
    touching anything else."""
    if actual_state not in ActualState.values:
        raise ValidationError(
            {"actual_state": f"{actual_state!r} is not a state; accepted: {', '.join(ActualState.values)}"}
        )
    fields = {"actual_state": actual_state, "updated": timezone.now()}
    if reason is not None:
        fields["state_reason"] = reason[:2000]
    Bot.objects.filter(pk=bot_id).update(**fields)


@batchable
def bot_events_record(rows: list[tuple]) -> None:
    """Insert bot events: (bot id, ts ns, kind, code, message, data)."""
    BotEvent.objects.bulk_create(
        [
            BotEvent(bot_id=b, ts=ns_to_dt(ts), kind=kind[:32], code=code[:64], message=msg, data=data or {})
            for b, ts, kind, code, msg, data in rows
        ]
    )
