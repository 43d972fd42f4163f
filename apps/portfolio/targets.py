"""Writes of a user's inventory targets: target net per asset, the limit on the net, the hedge
band and the portfolio hedge's switch and venue. Every bad field is refused by name with the
value and what is accepted; each change is in the audit log."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from django.db import transaction

from apps.accounts.errors import FieldErrors
from apps.accounts.models import AuditAction, User
from apps.accounts.services import audit_record
from apps.portfolio.models import InventoryTarget
from trading.amounts import AmountError, plain_decimal

ASSET_RE = re.compile(r"[A-Z0-9][A-Z0-9._-]{0,31}")
# Far inside NUMERIC(38, 18) and any real holding; a typo of many digits is refused, not stored.
BOUND = Decimal(10) ** 15
_UNSET = object()


def _number(errors: dict, field: str, value: Any, *, positive: bool, nullable: bool) -> Decimal | None:
    if value is None or value == "":
        if nullable:
            return None
        errors[field] = [f"{value!r} is not accepted; accepted: a decimal number between -{BOUND} and {BOUND}"]
        return None
    accepted = (
        f"a decimal number above 0 and at most {BOUND}" if positive else f"a decimal between -{BOUND} and {BOUND}"
    )
    if nullable:
        accepted += ", or null for none"
    try:
        d = plain_decimal(value)
    except AmountError as exc:
        errors[field] = [f"{exc}; accepted here: {accepted}"]
        return None
    if (positive and d <= 0) or abs(d) > BOUND:
        errors[field] = [f"{value!r} is not accepted; accepted: {accepted}"]
        return None
    return d


def _hedge_bot(errors: dict, owner: User, asset: str, value: Any):
    from apps.bots.models import Bot

    if value is None or value == "":
        return None
    bot_id = getattr(value, "pk", value)
    if isinstance(bot_id, bool) or not isinstance(bot_id, int | str) or not str(bot_id).isdigit():
        errors["hedge_bot"] = [f"{value!r} is not accepted; accepted: the id of one of your bots trading {asset}"]
        return None
    bot = Bot.objects.select_related("market").filter(pk=int(bot_id), owner=owner).first()
    if bot is None:
        errors["hedge_bot"] = [
            f"{bot_id} is not one of your bots; accepted: the id of one of your bots trading {asset}"
        ]
        return None
    if bot.market.base.upper() != asset:
        errors["hedge_bot"] = [
            f"bot {bot.pk} trades {bot.market.symbol}, not {asset}; accepted: one of your bots whose market's base "
            f"is {asset}"
        ]
        return None
    return bot


@transaction.atomic
def inventory_target_set(
    *,
    owner: User,
    actor: User,
    asset: Any,
    target: Any = _UNSET,
    max_net: Any = _UNSET,
    band: Any = _UNSET,
    hedge_enabled: Any = _UNSET,
    hedge_bot: Any = _UNSET,
) -> InventoryTarget:
    """Create or update ``owner``'s target for ``asset``; fields not given keep their value
    (on a new target: target 0, no limit, no band, hedge off). ``FieldErrors`` names each bad field."""
    errors: dict[str, list[str]] = {}
    name = asset.strip().upper() if isinstance(asset, str) else asset
    if not isinstance(name, str) or not ASSET_RE.fullmatch(name):
        raise FieldErrors(
            {"asset": [f"{asset!r} is not accepted; accepted: an asset code such as BTC (letters and digits, <= 32)"]}
        )
    current = InventoryTarget.objects.select_for_update().filter(owner=owner, asset=name).first()
    before = _snapshot(current) if current else None
    obj = current or InventoryTarget(owner=owner, asset=name, target=Decimal(0))
    if target is not _UNSET:
        obj.target = _number(errors, "target", target, positive=False, nullable=False)
    if max_net is not _UNSET:
        obj.max_net = _number(errors, "max_net", max_net, positive=True, nullable=True)
    if band is not _UNSET:
        obj.band = _number(errors, "band", band, positive=True, nullable=True)
    if hedge_enabled is not _UNSET:
        if not isinstance(hedge_enabled, bool):
            errors["hedge_enabled"] = [f"{hedge_enabled!r} is not accepted; accepted: true or false"]
        else:
            obj.hedge_enabled = hedge_enabled
    if hedge_bot is not _UNSET:
        obj.hedge_bot = _hedge_bot(errors, owner, name, hedge_bot)
    if not errors and obj.hedge_enabled:
        if obj.band is None:
            errors["band"] = ["None is not accepted while hedge_enabled is true; accepted: a decimal number above 0"]
        if obj.hedge_bot_id is None:
            errors["hedge_bot"] = [
                f"None is not accepted while hedge_enabled is true; accepted: the id of one of your bots trading {name}"
            ]
    if errors:
        raise FieldErrors(errors)
    obj.save()
    audit_record(
        action=AuditAction.CONFIG_CHANGED,
        actor=actor,
        owner=owner,
        object_type="inventory_target",
        object_id=obj.pk,
        before=before,
        after=_snapshot(obj),
    )
    return obj


def inventory_target_delete(*, target: InventoryTarget, actor: User) -> None:
    audit_record(
        action=AuditAction.CONFIG_CHANGED,
        actor=actor,
        owner=target.owner,
        object_type="inventory_target",
        object_id=target.pk,
        before=_snapshot(target),
        after=None,
    )
    target.delete()


def _snapshot(t: InventoryTarget) -> dict[str, Any]:
    def text(d: Decimal | None) -> str | None:
        return None if d is None else f"{d.normalize():f}"

    return {
        "asset": t.asset,
        "target": text(t.target),
        "max_net": text(t.max_net),
        "band": text(t.band),
        "hedge_enabled": t.hedge_enabled,
        "hedge_bot": t.hedge_bot_id,
    }
