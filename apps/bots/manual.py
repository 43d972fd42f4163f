"""Manual orders: a trader nudges a bot's inventory with a limit or post-only order (optionally
reduce-only) on the bot's market. The order is placed by the bot's own loop
(``workers.manual_orders``), so the bot's pre-trade risk decides; the answer — sent or refused
with the reason — is in the bot's event log. One worth more than the whole account is refused
here, at once, with its value (:func:`apps.bots.guards.check_manual_order`)."""

from __future__ import annotations

import json

from django.db import transaction

from apps.accounts.errors import FieldErrors
from apps.accounts.models import AuditAction, User
from apps.accounts.services import audit_record
from apps.bots import guards
from apps.bots.models import ActualState, Bot
from apps.bots.selectors import bot_can_change
from apps.bots.services import _enqueue
from trading.amounts import AmountError, plain_decimal
from trading.instruments import InstrumentError

MANUAL_TASK = "workers.bots.manual_order"
TYPES = ("limit", "post_only")


@transaction.atomic
def bot_manual_order(
    *,
    bot: Bot,
    actor: User,
    side: object,
    price: object,
    quantity: object,
    order_type: object = "limit",
    reduce_only: object = False,
) -> dict:
    """Validate and send a manual order to the bot's loop; ``FieldErrors`` names each bad field."""
    from apps.exchanges.markets import market_to_instrument

    if not bot_can_change(user=actor, bot=bot):
        raise FieldErrors({"bot": ["you may view this bot but not trade on it"]})
    errors: dict[str, list[str]] = {}
    if bot.actual_state not in (ActualState.RUNNING, ActualState.PAUSED):
        errors["bot"] = [f"the bot is {bot.actual_state}; manual orders go through a running or paused bot's loop"]
    if side not in ("buy", "sell"):
        errors["side"] = [f"{side!r} is not accepted; accepted: buy, sell"]
    if order_type not in TYPES:
        errors["type"] = [f"{order_type!r} is not accepted; accepted: {', '.join(TYPES)}"]
    if not isinstance(reduce_only, bool):
        errors["reduce_only"] = [f"{reduce_only!r} is not accepted; accepted: true or false"]
    inst = market_to_instrument(bot.market)
    values = {}
    for field, value, convert in (("price", price, inst.ticks), ("quantity", quantity, inst.lots)):
        try:
            d = plain_decimal(value)
            if d <= 0:
                raise AmountError(f"{value!r} must be above 0")
            convert(d, field=field)
            values[field] = d
        except (AmountError, InstrumentError) as exc:
            errors[field] = [str(exc)]
    if errors:
        raise FieldErrors(errors)
    view = guards.account_view(bot.exchange_account, bot.market, price=values["price"])
    guards.check_manual_order(quantity=values["quantity"], price=values["price"], view=view)
    payload = {
        "side": side,
        "price": str(values["price"]),
        "quantity": str(values["quantity"]),
        "type": order_type,
        "reduce_only": reduce_only,
        "by": actor.username,
    }
    audit_record(action=AuditAction.ORDER_MANUAL, actor=actor, owner=bot.owner, obj=bot, after=payload)
    _enqueue(MANUAL_TASK, args=[bot.pk, json.dumps(payload)])
    return payload
