"""Writes of notifications: channels (secrets encrypted), rules, and :func:`notify`, which
turns an event into deliveries (deduplicated per channel, rate limited per channel) and
enqueues ``workers.notifications.deliver`` by name after commit."""

from __future__ import annotations

import ipaddress
import re
import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from celery import current_app
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.exchanges import crypto
from apps.notifications.models import (
    ChannelKind,
    Delivery,
    DeliveryStatus,
    EventKind,
    NotificationChannel,
    NotificationRule,
)
from apps.notifications.transports import address_refusal, allow_private_hosts
from trading.amounts import AmountError, plain_decimal

DELIVER_TASK = "workers.notifications.deliver"
RATE_WINDOW = timedelta(minutes=1)
MAX_RATE_LIMIT = 600
TELEGRAM_TOKEN_RE = re.compile(r"^\d+:[A-Za-z0-9_-]+$")


class NotificationInputError(ValueError):
    """Invalid channel or rule input; ``errors`` maps each field to a message."""

    def __init__(self, errors: dict[str, Any]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))


# --- channels ----------------------------------------------------------------------------------
def _check_url(url: Any, errors: dict, key: str = "url", *, shown: str | None = None) -> None:
    """An http(s) URL to a public host (a literal private/loopback/link-local IP or ``localhost``
    is refused unless NOTIFICATIONS_ALLOW_PRIVATE_HOSTS; names are resolved again at send time).
    ``shown`` replaces the URL in messages (for secret URLs)."""
    label = shown if shown is not None else repr(url)
    try:
        parts = urlsplit(url) if isinstance(url, str) else None
        host = parts.hostname if parts is not None else None
        parts is not None and parts.port  # noqa: B018 (raises ValueError on a bad port)
    except ValueError:
        parts = host = None
    if parts is None or parts.scheme not in ("http", "https") or not host or any(c.isspace() for c in url):
        errors[key] = f"{label} is not accepted; give an http(s) URL such as https://example.com/hook"
        return
    if allow_private_hosts():
        return
    if host == "localhost" or host.endswith(".localhost"):
        errors[key] = f"{label} is not accepted: host {host} is local; give a public host"
        return
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return
    reason = address_refusal(host)
    if reason is not None:
        errors[key] = f"{label} is not accepted: {reason} is not public; give a public host"


def discord_url_hint(url: str) -> str:
    """A masked Discord webhook URL for display: scheme, host and the last 4 characters."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}/…{url.rstrip('/')[-4:]}"


def _seal_discord(config: dict, secret: str | None) -> tuple[dict, str | None]:
    """Discord: move ``config["url"]`` into the secret; config keeps a masked ``url_hint``."""
    url = config.get("url") or secret
    if not url:
        return {k: v for k, v in config.items() if k not in ("url", "url_hint")}, secret
    return {"url_hint": discord_url_hint(url)}, url


def _validate_config(kind: str, config: Any, secret: str | None, *, has_secret: bool) -> dict[str, str]:
    errors: dict[str, Any] = {}
    if kind not in ChannelKind.values:
        return {"kind": f"{kind!r} is not a channel kind; accepted: {', '.join(ChannelKind.values)}"}
    if not isinstance(config, dict):
        return {"config": "must be an object"}
    config_errors: dict[str, str] = {}
    accepted = {
        ChannelKind.EMAIL: ("address",),
        ChannelKind.TELEGRAM: ("chat_id",),
        ChannelKind.DISCORD: ("url", "url_hint"),
        ChannelKind.WEBHOOK: ("url",),
    }[ChannelKind(kind)]
    for key in config:
        if key not in accepted:
            config_errors[key] = f"unknown setting for {kind}; accepted: {', '.join(accepted)}"
    if kind == ChannelKind.EMAIL:
        try:
            validate_email(config.get("address"))
        except (DjangoValidationError, TypeError):
            config_errors["address"] = f"{config.get('address')!r} is not an email address"
    elif kind == ChannelKind.TELEGRAM:
        chat_id = config.get("chat_id")
        if not (isinstance(chat_id, int | str) and not isinstance(chat_id, bool) and str(chat_id).strip()):
            config_errors["chat_id"] = f"{chat_id!r} is not accepted; give the Telegram chat id, e.g. -1001234567890"
        if secret and not TELEGRAM_TOKEN_RE.match(secret):
            errors["secret"] = "is not a Telegram bot token; accepted: digits, ':', then letters, digits, '_' or '-'"
    elif kind == ChannelKind.DISCORD:
        # The webhook URL is a credential: given as config.url (or as the secret), stored encrypted.
        if "url" in config:
            _check_url(config.get("url"), config_errors, shown="the Discord webhook URL")
        elif secret:
            _check_url(secret, errors, "secret", shown="the Discord webhook URL")
        elif not has_secret:
            config_errors["url"] = "required for discord: the webhook URL (stored encrypted, shown masked)"
    else:
        _check_url(config.get("url"), config_errors)
    if config_errors:
        errors["config"] = config_errors
    needs_secret = {ChannelKind.TELEGRAM: "the Telegram bot token", ChannelKind.WEBHOOK: "the HMAC signing secret"}
    if kind in needs_secret and not (secret or has_secret):
        errors["secret"] = f"required for {kind}: {needs_secret[ChannelKind(kind)]}"
    if secret and kind == ChannelKind.EMAIL:
        errors["secret"] = f"{kind} channels take no secret"
    if secret and kind == ChannelKind.DISCORD and "url" in config:
        errors["secret"] = "give the Discord webhook URL once, as config.url"
    return errors


def channel_config_errors(*, kind: str, config: Any, has_secret: bool) -> dict[str, Any]:
    """Problems with a channel's kind and public config (``{}`` when valid), e.g. for forms."""
    return _validate_config(kind, config, None, has_secret=has_secret)


def _check_rate(value: Any, errors: dict) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_RATE_LIMIT:
        errors["rate_limit_per_minute"] = f"{value!r} is not accepted; give a whole number from 1 to {MAX_RATE_LIMIT}"


@transaction.atomic
def channel_create(
    *,
    owner,
    kind: str,
    name: str,
    config: dict,
    secret: str = "",
    enabled: bool = True,
    rate_limit_per_minute: int = 20,
) -> NotificationChannel:
    """Add a channel; the secret (Telegram bot token / webhook HMAC secret) is stored encrypted."""
    errors = _validate_config(kind, config, secret, has_secret=False)
    _check_rate(rate_limit_per_minute, errors)
    if not isinstance(name, str) or not name.strip() or len(name) > 64:
        errors["name"] = f"{name!r} is not accepted; give 1 to 64 characters"
    elif NotificationChannel.objects.filter(owner=owner, name=name.strip()).exists():
        errors["name"] = f"{name!r} is already the name of one of your channels"
    if errors:
        raise NotificationInputError(errors)
    if kind == ChannelKind.DISCORD:
        config, secret = _seal_discord(config, secret)
    return NotificationChannel.objects.create(
        owner=owner,
        kind=kind,
        name=name.strip(),
        config=config,
        secret_enc=crypto.encrypt(secret or ""),
        enabled=enabled,
        rate_limit_per_minute=rate_limit_per_minute,
    )


@transaction.atomic
def channel_update(
    *,
    channel: NotificationChannel,
    name: str | None = None,
    config: dict | None = None,
    secret: str | None = None,
    enabled: bool | None = None,
    rate_limit_per_minute: int | None = None,
) -> NotificationChannel:
    """Change a channel; ``secret=None`` keeps the stored secret, a new value replaces it."""
    errors = _validate_config(
        channel.kind, channel.config if config is None else config, secret, has_secret=channel.has_secret
    )
    if rate_limit_per_minute is not None:
        _check_rate(rate_limit_per_minute, errors)
    if name is not None:
        if not isinstance(name, str) or not name.strip() or len(name) > 64:
            errors["name"] = f"{name!r} is not accepted; give 1 to 64 characters"
        elif NotificationChannel.objects.filter(owner=channel.owner, name=name.strip()).exclude(pk=channel.pk).exists():
            errors["name"] = f"{name!r} is already the name of one of your channels"
    if errors:
        raise NotificationInputError(errors)
    if channel.kind == ChannelKind.DISCORD and (config is not None or secret):
        config, secret = _seal_discord(channel.config if config is None else config, secret)
        if "url_hint" not in config and channel.config.get("url_hint"):
            config = {**config, "url_hint": channel.config["url_hint"]}
    if name is not None:
        channel.name = name.strip()
    if config is not None:
        channel.config = config
    if secret:
        channel.secret_enc = crypto.encrypt(secret)
    if enabled is not None:
        channel.enabled = enabled
    if rate_limit_per_minute is not None:
        channel.rate_limit_per_minute = rate_limit_per_minute
    channel.save()
    return channel


def channel_secret(*, channel: NotificationChannel) -> str:
    """The decrypted secret, for the delivery worker only (never log or return it in the API)."""
    return crypto.decrypt(channel.secret_enc)


def channel_delete(*, channel: NotificationChannel) -> None:
    channel.delete()


# --- rules -------------------------------------------------------------------------------------
def _validate_rule(*, owner, event_kind, channels, bot, threshold) -> tuple[dict, Decimal | None]:
    from apps.bots.selectors import bot_list

    errors: dict[str, str] = {}
    if event_kind not in EventKind.values or event_kind == EventKind.TEST:
        kinds = [k for k in EventKind.values if k != EventKind.TEST]
        errors["event_kind"] = f"{event_kind!r} is not an event kind; accepted: {', '.join(kinds)}"
    channels = list(channels)
    if not channels:
        errors["channels"] = "give at least one of your channels"
    elif any(c.owner_id != owner.pk for c in channels):
        errors["channels"] = "every channel must be one of your own channels"
    if bot is not None and not bot_list(user=owner).filter(pk=bot.pk).exists():
        errors["bot"] = f"bot {bot.pk} is not one of the bots you can see"
    elif bot is not None and bot.owner_id != owner.pk:
        # Events are notified to the bot's owner only: a rule on a bot shared with you would never fire.
        errors["bot"] = f"bot {bot.pk} is not yours; rules can only follow bots you own"
    value = None
    if threshold is not None:
        try:
            value = plain_decimal(threshold)
        except AmountError as exc:
            errors["threshold"] = str(exc)
    return errors, value


@transaction.atomic
def rule_create(
    *,
    owner,
    event_kind: str,
    channels: list[NotificationChannel],
    bot=None,
    threshold: Decimal | str | None = None,
    enabled: bool = True,
) -> NotificationRule:
    """Notify ``channels`` of events of ``event_kind`` (only ``bot``'s, and only at or above
    ``threshold`` when given)."""
    errors, value = _validate_rule(owner=owner, event_kind=event_kind, channels=channels, bot=bot, threshold=threshold)
    if errors:
        raise NotificationInputError(errors)
    rule = NotificationRule.objects.create(
        owner=owner, event_kind=event_kind, bot=bot, threshold=value, enabled=enabled
    )
    rule.channels.set(channels)
    return rule


_UNSET: Any = object()


@transaction.atomic
def rule_update(
    *,
    rule: NotificationRule,
    event_kind: str | None = None,
    channels: list[NotificationChannel] | None = None,
    bot: Any = _UNSET,
    threshold: Any = _UNSET,
    enabled: bool | None = None,
) -> NotificationRule:
    """Change a rule; omitted arguments keep their values (``bot=None`` clears the bot)."""
    new_bot = rule.bot if bot is _UNSET else bot
    new_threshold = rule.threshold if threshold is _UNSET else threshold
    new_channels = list(rule.channels.all()) if channels is None else channels
    errors, value = _validate_rule(
        owner=rule.owner,
        event_kind=event_kind or rule.event_kind,
        channels=new_channels,
        bot=new_bot,
        threshold=new_threshold,
    )
    if errors:
        raise NotificationInputError(errors)
    rule.event_kind = event_kind or rule.event_kind
    rule.bot = new_bot
    rule.threshold = value
    if enabled is not None:
        rule.enabled = enabled
    rule.save()
    rule.channels.set(new_channels)
    return rule


def rule_delete(*, rule: NotificationRule) -> None:
    rule.delete()


# --- notify and deliveries ---------------------------------------------------------------------
def _rule_matches(rule: NotificationRule, *, bot_id: int | None, value: Decimal | None) -> bool:
    if rule.bot_id is not None and rule.bot_id != bot_id:
        return False
    return rule.threshold is None or (value is not None and value >= rule.threshold)


def _create_delivery(
    *, channel: NotificationChannel, rule: NotificationRule | None, kind: str, key: str, payload: dict
) -> tuple[Delivery | None, str]:
    """Insert one delivery; ``(None, 'deduplicated')`` when the channel already has ``key``."""
    # Lock the channel so concurrent notifications count each other against the rate limit.
    NotificationChannel.objects.select_for_update().filter(pk=channel.pk).first()
    since = timezone.now() - RATE_WINDOW
    recent = Delivery.objects.filter(
        channel=channel, created__gte=since, status__in=(DeliveryStatus.QUEUED, DeliveryStatus.SENT)
    ).count()
    status = DeliveryStatus.QUEUED if recent < channel.rate_limit_per_minute else DeliveryStatus.RATE_LIMITED
    try:
        with transaction.atomic():
            delivery = Delivery.objects.create(
                channel=channel,
                rule=rule,
                event_kind=kind,
                dedupe_key=key,
                payload=payload,
                status=status,
                last_error="" if status == DeliveryStatus.QUEUED else f"over {channel.rate_limit_per_minute}/min",
            )
    except IntegrityError:
        return None, DeliveryStatus.DEDUPLICATED
    if status == DeliveryStatus.QUEUED:
        transaction.on_commit(lambda: current_app.send_task(DELIVER_TASK, args=[delivery.pk]))
    return delivery, status


def _json_safe(data: Any) -> Any:
    import json

    from django.core.serializers.json import DjangoJSONEncoder

    return json.loads(json.dumps(data, cls=DjangoJSONEncoder))


@transaction.atomic
def notify(
    *,
    user,
    kind: str,
    key: str,
    subject: str,
    body: str,
    data: dict | None = None,
    bot=None,
    value: Decimal | float | int | str | None = None,
) -> dict[str, list]:
    """Deliver an event to every enabled channel of ``user``'s enabled rules for ``kind``.

    ``key`` identifies the event (e.g. ``fill:<account>:<trade id>``): a channel gets at most
    one delivery per key, so notifying the same event twice sends once. ``bot`` restricts to
    rules without a bot or for that bot; ``value`` is compared with rule thresholds (rules with
    a threshold need a value at or above it). Over a channel's rate limit the delivery is
    logged as ``rate_limited`` and not sent. Returns ``{"queued": [...], "rate_limited": [...],
    "deduplicated": [channel ids]}``.
    """
    if kind not in EventKind.values:
        raise ValueError(f"kind: {kind!r} is not an event kind; accepted: {', '.join(EventKind.values)}")
    if not isinstance(key, str) or not key or len(key) > 200:
        raise ValueError(f"key: {key!r} is not accepted; give 1 to 200 characters identifying the event")
    number = None if value is None else Decimal(str(value))
    bot_id = getattr(bot, "pk", bot)
    rules = (
        NotificationRule.objects.filter(owner=user, event_kind=kind, enabled=True)
        .prefetch_related("channels")
        .order_by("id")
    )
    payload = {"subject": subject, "body": body, "data": _json_safe(data or {})}
    result: dict[str, list] = {"queued": [], "rate_limited": [], "deduplicated": []}
    seen: set[int] = set()
    for rule in rules:
        if not _rule_matches(rule, bot_id=bot_id, value=number):
            continue
        for channel in rule.channels.all():
            if not channel.enabled or channel.pk in seen:
                continue
            seen.add(channel.pk)
            delivery, status = _create_delivery(channel=channel, rule=rule, kind=kind, key=key, payload=payload)
            result[status].append(delivery if delivery is not None else channel.pk)
    return result


@transaction.atomic
def channel_send_test(*, channel: NotificationChannel) -> Delivery:
    """Queue a test message to ``channel`` (regardless of rules, enabled flag and rate limit)."""
    delivery = Delivery.objects.create(
        channel=channel,
        event_kind=EventKind.TEST,
        dedupe_key=f"test:{uuid.uuid4().hex}",
        payload={
            "subject": "MarketMakerSuite test message",
            "body": f"This is a test of your {channel.get_kind_display()} channel '{channel.name}'.",
            "data": {},
        },
    )
    transaction.on_commit(lambda: current_app.send_task(DELIVER_TASK, args=[delivery.pk]))
    return delivery


def delivery_record_attempt(*, delivery_id: int, sent: bool, error: str = "", final: bool = False) -> None:
    """For the delivery worker: count an attempt; ``sent`` marks it sent, otherwise the error
    is kept and, with ``final`` (retries exhausted or a permanent error), it is marked failed."""
    updates: dict[str, Any] = {"last_error": error[:2000]}
    if sent:
        updates.update(status=DeliveryStatus.SENT, sent_at=timezone.now(), last_error="")
    elif final:
        updates["status"] = DeliveryStatus.FAILED
    from django.db.models import F

    Delivery.objects.filter(pk=delivery_id).update(attempts=F("attempts") + 1, **updates)


def delivery_requeue(*, delivery: Delivery) -> bool:
    """Send a failed or rate-limited delivery again. False when it is in another state."""
    if not Delivery.objects.filter(
        pk=delivery.pk, status__in=(DeliveryStatus.FAILED, DeliveryStatus.RATE_LIMITED)
    ).update(status=DeliveryStatus.QUEUED, last_error=""):
        return False
    transaction.on_commit(lambda: current_app.send_task(DELIVER_TASK, args=[delivery.pk]))
    return True
