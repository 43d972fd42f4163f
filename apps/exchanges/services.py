"""Writes for exchange accounts (credentials encrypted at rest) and markets."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import ccxt
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from apps.accounts.models import AuditAction, User
from apps.accounts.services import audit_record
from apps.exchanges import crypto
from apps.exchanges.models import ExchangeAccount, MarketType, VenueKind, VerifyStatus
from trading.amounts import AmountError, plain_decimal

logger = logging.getLogger(__name__)

_SYNTHETIC_VENUE = re.compile(r"^(replay|sim):[a-z0-9][a-z0-9._-]{0,40}$")
_ASSET = re.compile(r"^[A-Z0-9]{1,20}$")


@dataclass(frozen=True)
class Credentials:
    """Decrypted credentials; the repr never shows them."""

    api_key: str = field(repr=False, default="")
    secret: str = field(repr=False, default="")
    passphrase: str = field(repr=False, default="")

    def __repr__(self) -> str:
        return f"Credentials(api_key={crypto.mask(self.api_key)!r}, secret=••••, passphrase=••••)"


def venue_validate(*, kind: str, venue: str) -> None:
    """Raise ValidationError naming ``venue``/``kind`` unless the pair is usable."""
    if kind not in VenueKind.values:
        raise ValidationError({"kind": f"{kind!r} is not a venue kind; accepted: {', '.join(VenueKind.values)}"})
    if _SYNTHETIC_VENUE.match(venue or ""):
        if kind == VenueKind.LIVE:
            raise ValidationError({"kind": f"{venue!r} is a replay/simulated venue; accepted kind: 'paper'"})
        return
    if venue not in ccxt.exchanges:
        raise ValidationError(
            {
                "venue": f"{venue!r} is not a venue; accepted: a ccxt exchange id (e.g. 'binance'), "
                "'replay:<name>' or 'sim:<name>'"
            }
        )


def paper_balances_clean(balances: Mapping[str, Any] | None) -> dict[str, str]:
    """Validate ``{asset: amount}``; return ``{ASSET: decimal string}``."""
    if balances is None:
        return {}
    if not isinstance(balances, Mapping):
        raise ValidationError({"paper_balances": "must be an object of asset -> amount, e.g. {'USDT': '10000'}"})
    out: dict[str, str] = {}
    for asset, amount in balances.items():
        name = str(asset).upper()
        if not _ASSET.match(name):
            raise ValidationError({"paper_balances": f"asset {asset!r} is not an asset code; e.g. 'BTC', 'USDT'"})
        try:
            value = plain_decimal(amount)
        except AmountError as exc:
            raise ValidationError({"paper_balances": f"{name}: {exc}"}) from None
        if value < 0:
            raise ValidationError(
                {"paper_balances": f"{name}: {amount!r} is negative; accepted: a decimal of 0 or more"}
            )
        out[name] = str(value)
    return out


@transaction.atomic
def exchange_account_create(
    *,
    owner: User,
    label: str,
    venue: str,
    kind: str = VenueKind.PAPER,
    api_key: str = "",
    api_secret: str = "",
    passphrase: str = "",
    paper_balances: Mapping[str, Any] | None = None,
    default_type: str = "",
    actor: User | None = None,
    ip: str | None = None,
) -> ExchangeAccount:
    """Create an account. Live accounts need an API key and secret; paper accounts get balances.
    ``default_type`` is spot or swap (derivatives), checked against what the venue offers
    (:mod:`apps.exchanges.market_types`); blank takes the venue's (spot where it has spot)."""
    from apps.exchanges.market_types import default_type_validate

    label = (label or "").strip()
    if not label:
        raise ValidationError({"label": "is empty; give a short name such as 'binance main'"})
    venue_validate(kind=kind, venue=venue)
    default_type = default_type_validate(venue=venue, default_type=default_type)
    if kind == VenueKind.LIVE and not (api_key and api_secret):
        raise ValidationError({"api_key": "live accounts need an API key and secret"})
    if ExchangeAccount.objects.filter(owner=owner, label=label).exists():
        raise ValidationError({"label": f"{label!r} is already used by another of your accounts"})
    account = ExchangeAccount(
        owner=owner,
        label=label,
        kind=kind,
        venue=venue,
        api_key_enc=crypto.encrypt(api_key),
        api_secret_enc=crypto.encrypt(api_secret),
        passphrase_enc=crypto.encrypt(passphrase),
        paper_balances=paper_balances_clean(paper_balances) if kind == VenueKind.PAPER else {},
        default_type=default_type,
    )
    try:
        with transaction.atomic():
            account.save()
    except IntegrityError:
        raise ValidationError({"label": f"{label!r} is already used by another of your accounts"}) from None
    actor = actor or owner
    after = {"label": label, "kind": kind, "venue": venue, "default_type": default_type}
    audit_record(action=AuditAction.ACCOUNT_CREATED, actor=actor, owner=owner, obj=account, after=after, ip=ip)
    if api_key or api_secret:
        audit_record(
            action=AuditAction.KEY_ADDED,
            actor=actor,
            owner=owner,
            obj=account,
            after={"api_key": crypto.mask(api_key)},
            ip=ip,
        )
    return account


@transaction.atomic
def exchange_account_update(
    *,
    account: ExchangeAccount,
    actor: User,
    label: str | None = None,
    paper_balances: Mapping[str, Any] | None = None,
    default_type: str | None = None,
) -> ExchangeAccount:
    """Rename an account, reset a paper account's balances and/or change its type
    (``default_type``: spot or swap, checked against the venue as at creation; blank takes the
    venue's). A type change is refused while any of the account's bots runs
    (:func:`account_type_change_error`)."""
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    if default_type is not None:
        from apps.exchanges.market_types import default_type_validate, venue_default_type

        list(ExchangeAccount.objects.select_for_update().filter(pk=account.pk).values_list("pk"))  # row locked
        wanted = default_type or venue_default_type(account.venue)
        if wanted != account.default_type:
            # a running bot first (no change at all now), then whether the venue offers the type
            error = account_type_change_error(account, wanted) if wanted in MarketType.values else None
            if error:
                raise ValidationError({"default_type": error})
            wanted = default_type_validate(venue=account.venue, default_type=wanted)
            before["default_type"], after["default_type"] = account.default_type, wanted
            account.default_type = wanted
    if label is not None:
        label = label.strip()
        if not label:
            raise ValidationError({"label": "is empty; give a short name such as 'binance main'"})
        clash = ExchangeAccount.objects.filter(owner=account.owner, label=label).exclude(pk=account.pk)
        if clash.exists():
            raise ValidationError({"label": f"{label!r} is already used by another of your accounts"})
        if label != account.label:
            before["label"], after["label"] = account.label, label
            account.label = label
    if paper_balances is not None:
        if account.kind != VenueKind.PAPER:
            raise ValidationError({"paper_balances": "only paper accounts have simulated balances"})
        cleaned = paper_balances_clean(paper_balances)
        if cleaned != account.paper_balances:
            before["paper_balances"], after["paper_balances"] = account.paper_balances, cleaned
            account.paper_balances = cleaned
    if after:
        account.save()
        audit_record(
            action=AuditAction.CONFIG_CHANGED, actor=actor, owner=account.owner, obj=account, before=before, after=after
        )
    return account


def account_type_change_error(account: ExchangeAccount, wanted: str) -> str | None:
    """Why the type of ``account`` cannot become ``wanted`` now, or None: one of its bots runs
    (desired running or paused, or its loop not stopped yet; a hedged bot whose hedge leg is on
    the account counts), and its exchange object, wallet
    and markets would change under it. Run in the update's transaction, the account row locked."""
    from apps.bots.hedged import STRATEGY
    from apps.bots.models import ActualState, Bot, DesiredState

    # the account's own bots, and hedged bots whose hedge leg trades on it
    of_account = Q(exchange_account=account) | Q(
        Q(params__hedge_account=account.pk) | Q(params__hedge_account=str(account.pk)), strategy=STRATEGY
    )
    running = list(
        Bot.objects.filter(of_account)
        .filter(
            Q(desired_state__in=(DesiredState.RUNNING, DesiredState.PAUSED))
            | Q(actual_state__in=(ActualState.STARTING, ActualState.RUNNING, ActualState.PAUSED,
                                         ActualState.STOPPING))
        )
        .order_by("name")
        .values_list("name", flat=True)[:6]
    )  # fmt: skip
    if not running:
        return None
    names = ", ".join(repr(n) for n in running[:5]) + (", ..." if len(running) > 5 else "")
    return (
        f"{wanted!r} is not accepted now: the type of account {account.label!r} ({account.default_type!r}) "
        f"cannot change while its bots run ({names}): their exchange connection, wallet and markets "
        "would change under them; stop them first, then change the type"
    )


@transaction.atomic
def exchange_account_delete(*, account: ExchangeAccount, actor: User) -> None:
    """Delete an account that has no bots, orders or fills (those are never lost)."""
    blockers = []
    if account.bots.exists():
        blockers.append(f"{account.bots.count()} bot(s)")
    if account.orders.exists():
        blockers.append(f"{account.orders.count()} order(s)")
    if account.fills.exists():
        blockers.append("fills")
    if blockers:
        raise ValidationError(
            {
                "account": f"cannot be deleted: it has {', '.join(blockers)}; delete its bots first "
                "(orders and fills are kept for the record)"
            }
        )
    audit_record(
        action=AuditAction.ACCOUNT_DELETED,
        actor=actor,
        owner=account.owner,
        obj=account,
        before={"label": account.label, "venue": account.venue},
    )
    account.delete()


@transaction.atomic
def exchange_account_rotate_keys(
    *, account: ExchangeAccount, actor: User, api_key: str, api_secret: str, passphrase: str = ""
) -> ExchangeAccount:
    """Replace an account's API key, secret and passphrase; verification is reset."""
    if not api_key or not api_secret:
        raise ValidationError({"api_key": "give both the new API key and its secret"})
    try:
        old_mask = crypto.mask(exchange_account_credentials(account=account).api_key)
    except crypto.CredentialDecryptError:
        # The stored key cannot be read (encrypted with a key no longer configured): that is
        # exactly when a rotation is needed, so it must not fail.
        old_mask = "(unreadable)"
    account.api_key_enc = crypto.encrypt(api_key)
    account.api_secret_enc = crypto.encrypt(api_secret)
    account.passphrase_enc = crypto.encrypt(passphrase)
    account.verify_status = VerifyStatus.UNVERIFIED
    account.verified_at = None
    account.verify_message = ""
    account.save()
    audit_record(
        action=AuditAction.KEY_ROTATED,
        actor=actor,
        owner=account.owner,
        obj=account,
        before={"api_key": old_mask},
        after={"api_key": crypto.mask(api_key)},
    )
    return account


def exchange_account_credentials(*, account: ExchangeAccount) -> Credentials:
    """Decrypt an account's credentials (for the gateway only; never log or return them)."""
    return Credentials(
        api_key=crypto.decrypt(account.api_key_enc),
        secret=crypto.decrypt(account.api_secret_enc),
        passphrase=crypto.decrypt(account.passphrase_enc),
    )


def credentials_reencrypt_all() -> int:
    """Re-encrypt every stored credential with the newest key; returns the accounts changed."""
    changed = 0
    with transaction.atomic():
        for account in ExchangeAccount.objects.select_for_update().exclude(api_key_enc="", api_secret_enc=""):
            fields = ("api_key_enc", "api_secret_enc", "passphrase_enc")
            for name in fields:
                setattr(account, name, crypto.rotate(getattr(account, name)))
            account.save(update_fields=[*fields, "updated"])
            changed += 1
    return changed


# --- verification -------------------------------------------------------------------------------

ExchangeFactory = Callable[[ExchangeAccount, Credentials], Any]


def _default_exchange(account: ExchangeAccount, creds: Credentials) -> Any:
    from connectors.ccxt_venue import make_exchange

    return make_exchange(
        account.venue,
        api_key=creds.api_key,
        secret=creds.secret,
        password=creds.passphrase or None,
        streaming=False,
        timeout_ms=10_000,
        options=account.ccxt_options,  # a derivatives account's balances are its swap wallet's
    )


async def _fetch_balances(exchange: Any) -> dict[str, dict[str, Decimal]]:
    """Free and total balance per asset through the ccxt gateway (its rate limiter and retry
    policy; one retry only: a person is waiting for the answer)."""
    from connectors.ccxt_gateway import CcxtGateway
    from connectors.errors import RetryPolicy

    gateway = CcxtGateway(exchange, retry_policy=RetryPolicy(attempts=2), close_exchange=True)
    try:
        return await gateway.fetch_balance_amounts()
    finally:
        await gateway.close()


def account_balances_store(*, account: ExchangeAccount, balances: Mapping[str, Mapping[str, Any]]) -> str:
    """Store a live account's balances as just fetched from the exchange (``{asset: {"free",
    "total"}}``) as its portfolio ``Balance`` rows, replacing the previous ones, and stamp
    ``balances_at``: the new-bot guards (``apps.bots.guards``) judge its orders on them. Returns
    "" when stored, else why not (an amount out of the rows' bounds: nothing is stored)."""
    from apps.portfolio.services import balances_replace

    try:
        with transaction.atomic():
            balances_replace(account=account, balances=balances)
            account.balances_at = timezone.now()
            account.save(update_fields=["balances_at", "updated"])
    except ValidationError as exc:
        logger.warning("balances of account %s not stored: %s", account.pk, exc)
        return f"balances not stored: {'; '.join(exc.messages)}"
    return ""


def exchange_account_verify(
    *, account: ExchangeAccount, actor: User | None = None, exchange_factory: ExchangeFactory | None = None
) -> ExchangeAccount:
    """Check an account works: live -> fetch the balance with its keys; paper -> its balances.

    The result is stored (``verify_status``, ``verify_message``, ``verified_at``) with a message
    telling authentication failures apart from network trouble. Never raises for venue errors.
    """
    from connectors.errors import ErrorKind, RetryBudgetExhausted, classify, describe

    if account.kind == VenueKind.PAPER:
        status, balances = VerifyStatus.OK, dict(account.paper_balances)
        assets = ", ".join(f"{a} {v}" for a, v in sorted(balances.items())) or "no balances"
        message = f"paper account on {account.venue}: {assets}"
    else:
        creds = Credentials()
        try:
            creds = exchange_account_credentials(account=account)
            exchange = (exchange_factory or _default_exchange)(account, creds)
            balances = asyncio.run(_fetch_balances(exchange))
        except crypto.CredentialDecryptError as exc:
            status, message = VerifyStatus.ERROR, str(exc)
        except Exception as exc:  # every venue failure becomes a readable status
            if isinstance(exc, RetryBudgetExhausted):
                exc = exc.last
            kind = classify(exc)
            text = describe(exc)
            for secret in (creds.api_key, creds.secret, creds.passphrase):
                if secret:
                    text = text.replace(secret, crypto.mask(secret))
            if kind == ErrorKind.AUTH:
                status = VerifyStatus.AUTH_FAILED
                message = (
                    f"{account.venue} refused the API key: check the key, secret, permissions and IP whitelist ({text})"
                )
            elif kind == ErrorKind.TEMPORARY:
                status = VerifyStatus.NETWORK_ERROR
                message = f"could not reach {account.venue} (network or venue trouble, try again): {text}"
            else:
                status = VerifyStatus.ERROR
                message = f"{account.venue} answered with an error: {text}"
        else:
            stored = account_balances_store(account=account, balances=balances)
            assets = ", ".join(f"{a} {v['total']}" for a, v in sorted(balances.items())[:20]) or "no balances"
            status, message = VerifyStatus.OK, f"balance fetched from {account.venue}: {assets}"
            if stored:
                message += f" ({stored})"
    account.verify_status = status
    account.verify_message = message[:2000]
    account.verified_at = timezone.now()
    account.save(update_fields=["verify_status", "verify_message", "verified_at", "updated"])
    logger.info("exchange account %s verified: %s", account.pk, status)
    audit_record(
        action=AuditAction.ACCOUNT_VERIFIED,
        actor=actor,
        owner=account.owner,
        obj=account,
        after={"status": status},
        message=account.verify_message,
    )
    return account


# Markets live in apps.exchanges.markets; re-exported for callers of this module.
from apps.exchanges.markets import market_sync, market_to_instrument  # noqa: E402

__all__ = [
    "Credentials",
    "credentials_reencrypt_all",
    "exchange_account_create",
    "exchange_account_credentials",
    "exchange_account_delete",
    "exchange_account_rotate_keys",
    "exchange_account_update",
    "exchange_account_verify",
    "market_sync",
    "market_to_instrument",
    "paper_balances_clean",
    "venue_validate",
]
