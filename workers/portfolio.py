"""Portfolio inventory tasks (beat): the net limit sweep and the optional portfolio hedge.

``workers.portfolio.sweep`` (every 10 s), per user with inventory targets: the net per asset
over all their accounts and bots (``apps.portfolio.inventory``). A net beyond its ``max_net``
raises, once per breach, an incident and a ``risk_breach`` notification, and blocks the side that
grows the breach in the pre-trade risk of every one of the user's bots on that base asset
(``keys.portfolio_block`` + the control message ``portfolio``; a bot starting later reads the
key). Back within the limit, the blocks go. Every pass pushes the user's inventory to the
channel-layer group ``portfolio.<user id>`` (the overview's live table).

``workers.portfolio.hedge`` (every 15 s; nothing happens for a user until they switch it on
per asset), when the net of an asset is outside ``band`` of its target: one limit order
through the chosen bot's loop (``apps.bots.manual.bot_manual_order``, the service manual
orders use, so the bot's pre-trade risk decides) for the lots that bring the net back to the
target, priced ``HEDGE_CROSS`` through the mid so it takes liquidity; then none for that asset
for ``HEDGE_COOLDOWN_S`` (its fills must land first), nor while that order is still working. What it did or why it did not is a bot
event (``portfolio``/``portfolio_hedge``, ``portfolio_hedge_skipped``); the order itself is in
the audit log as a manual order.
"""

from __future__ import annotations

import json
import logging
import time
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_HALF_UP, Decimal

from celery import shared_task

from apps.bots.services import bot_events_record
from workers import keys, lifecycle

logger = logging.getLogger(__name__)

HEDGE_CROSS = Decimal("0.002")  # the hedge's limit price this fraction through the mid
HEDGE_COOLDOWN_S = 30


def _message(inventory: dict) -> dict:
    from django.core.serializers.json import DjangoJSONEncoder

    return json.loads(json.dumps(inventory, cls=DjangoJSONEncoder))


def push(owner_id: int, inventory: dict) -> None:
    """Send the user's inventory to their overview pages (best effort; the pages also poll)."""
    try:
        from asgiref.sync import async_to_sync
        from channels.layers import get_channel_layer

        layer = get_channel_layer()
        if layer is not None:
            group = keys.group_name("portfolio", str(owner_id))
            async_to_sync(layer.group_send)(group, {"type": "portfolio.update", "data": _message(inventory)})
    except Exception as exc:
        logger.warning("portfolio: push for user %s failed: %s", owner_id, exc)


def _set_blocks(redis, bots: list, side: str | None, message: str, seen: set[int] | None = None) -> None:
    value = None if side is None else json.dumps({"side": side, "message": message})
    for bot in bots:
        if seen is not None and value is not None:
            seen.add(bot.pk)
        key = keys.portfolio_block(bot.pk)
        old = redis.get(key)
        if value is None and old is None:
            continue
        if value is not None and old is not None and old.decode() == value:
            continue
        if value is None:
            redis.delete(key)
        else:
            redis.set(key, value)
        lifecycle.control(redis, bot.pk, "portfolio")


def _breach(redis, owner, row: dict, bots: list, seen: set[int]) -> int:
    """Raise the incident and notification of a new breach; (re)apply the blocks. Returns 1 if new."""
    from apps.core.models import Incident
    from apps.notifications.services import notify

    asset, net, limit = row["asset"], row["net"], row["max_net"]
    side = "buy" if net > 0 else "sell"
    message = (
        f"net {asset} {net.normalize():f} over all your accounts and bots is beyond the limit of "
        f"{limit.normalize():f} (|net| <= {limit.normalize():f}); {side} orders on {asset} would grow it"
    )
    _set_blocks(redis, bots, side, message, seen)
    flag = keys.portfolio_breach(owner.pk, asset)
    if not redis.set(flag, str(time.time_ns()), nx=True):
        return 0
    Incident.objects.create(
        owner=owner,
        kind="risk",
        message=f"portfolio: {message}",
        data={"asset": asset, "net": str(net), "max_net": str(limit), "blocked_side": side},
    )
    notify(
        user=owner,
        kind="risk_breach",
        key=f"portfolio:{owner.pk}:{asset}:{redis.get(flag).decode()}",
        subject=f"Portfolio net {asset} beyond its limit",
        body=message,
        data={"asset": asset, "net": net, "max_net": limit, "usage": row["usage"]},
        value=abs(net),
    )
    return 1


def sweep() -> dict[str, int]:
    """One pass over the users with targets (see the module); returns counters."""
    from apps.accounts.models import User
    from apps.bots.models import Bot
    from apps.portfolio.inventory import owner_inventory

    redis = lifecycle.redis_client()
    counts = {"users": 0, "breaches": 0, "cleared": 0}
    blocked: set[int] = set()  # bots blocked by this pass
    flags: set[str] = set()  # breach flags still true
    failed: set[str] = set()  # users whose inventory failed: their blocks and flags stay as they are
    for owner in User.objects.filter(inventory_targets__isnull=False).distinct().order_by("id"):
        counts["users"] += 1
        bots = list(Bot.objects.filter(owner=owner, desired_state__in=lifecycle.RUN_STATES).select_related("market"))
        try:
            inventory = owner_inventory(owner=owner)
        except Exception:  # one user's data never stops the sweep for the others
            logger.exception("portfolio sweep: inventory of user %s failed", owner.pk)
            blocked.update(b.pk for b in bots)
            failed.add(str(owner.pk))
            continue
        for row in inventory["assets"]:
            mine = [b for b in bots if b.market.base.upper() == row["asset"]]
            if row["max_net"] is not None and row["breached"]:
                counts["breaches"] += _breach(redis, owner, row, mine, blocked)
                flags.add(keys.portfolio_breach(owner.pk, row["asset"]))
            else:
                _set_blocks(redis, mine, None, "")
                if redis.delete(keys.portfolio_breach(owner.pk, row["asset"])):
                    counts["cleared"] += 1
        push(owner.pk, inventory)
    # Blocks and breaches nobody holds any more (a target deleted, a bot stopped).
    for key in redis.scan_iter(match=keys.portfolio_block("*"), count=1000):
        bot_id = int(key.decode().split(":bot:")[1].split(":")[0])
        if bot_id not in blocked and redis.delete(key):
            lifecycle.control(redis, bot_id, "portfolio")
    for key in redis.scan_iter(match=keys.portfolio_breach("*", "*"), count=1000):
        owner_id = key.decode().split(":portfolio:")[1].split(":")[0]
        if key.decode() not in flags and owner_id not in failed and redis.delete(key):
            counts["cleared"] += 1
    return counts


def _hedge_order(row: dict, bot) -> tuple[str, Decimal, Decimal] | str:
    """(side, price, quantity) bringing the net back to the target, or why there is none."""
    from apps.dashboard import live

    market = bot.market
    deviation = row["deviation"]
    side = "sell" if deviation > 0 else "buy"
    lot = market.lot_size
    lots = (abs(deviation) / lot).to_integral_value(rounding=ROUND_HALF_UP)
    if abs(abs(deviation) - lots * lot) > row["band"]:  # rounding left it outside: one lot more
        lots = (abs(deviation) / lot).to_integral_value(rounding=ROUND_CEILING)
    qty = (lots * lot).normalize()
    if qty <= 0:
        return f"the deviation {deviation:f} is below one lot ({lot.normalize():f}) of {market.symbol}"
    mid = live.book_mid(venue=market.venue, symbol=market.symbol)
    if mid is None:
        return f"no live book for {market.venue} {market.symbol}"
    tick = market.tick_size
    if side == "buy":
        price = (mid * (1 + HEDGE_CROSS) / tick).to_integral_value(rounding=ROUND_CEILING) * tick
    else:
        price = (mid * (1 - HEDGE_CROSS) / tick).to_integral_value(rounding=ROUND_DOWN) * tick
    return side, price.normalize(), qty


def _previous_hedge_working(bot) -> str | None:
    """The client id of the bot's last portfolio hedge order if it is still working (its
    ``manual_order`` event after the last ``portfolio_hedge`` event names it)."""
    from apps.bots.models import BotEvent
    from apps.orders.models import Order

    last = BotEvent.objects.filter(bot=bot, code="portfolio_hedge").order_by("-ts").first()
    if last is None:
        return None
    placed = BotEvent.objects.filter(bot=bot, code="manual_order", ts__gte=last.ts).values_list("message", flat=True)
    cids = [m.split()[2] for m in placed if len(m.split()) > 2]
    working = Order.objects.filter(
        bot=bot, client_order_id__in=cids, status__in=["pending_new", "open", "partially_filled"]
    )
    return working.values_list("client_order_id", flat=True).first()


def hedge() -> dict[str, int]:
    """One pass over the targets with the hedge on (see the module); returns counters."""
    from apps.accounts.errors import FieldErrors
    from apps.bots.manual import bot_manual_order
    from apps.portfolio.inventory import owner_inventory
    from apps.portfolio.models import InventoryTarget

    redis = lifecycle.redis_client()
    counts = {"checked": 0, "sent": 0, "skipped": 0}
    targets = InventoryTarget.objects.filter(hedge_enabled=True, hedge_bot__isnull=False, band__isnull=False)
    inventories: dict[int, dict] = {}
    for target in targets.select_related("owner", "hedge_bot__market", "hedge_bot__owner").order_by("id"):
        counts["checked"] += 1
        owner, bot = target.owner, target.hedge_bot
        if owner.pk not in inventories:
            inventories[owner.pk] = owner_inventory(owner=owner)
        row = next((r for r in inventories[owner.pk]["assets"] if r["asset"] == target.asset), None)
        if row is None or row["in_band"] is not False:
            continue
        if redis.exists(keys.portfolio_hedge(owner.pk, target.asset)):
            continue  # the last hedge's fills may not have landed yet
        now = time.time_ns()
        working = _previous_hedge_working(bot)
        order = f"the last hedge order {working} is still working" if working else _hedge_order(row, bot)
        why = f"net {target.asset} {row['net']:f} is {row['deviation']:f} from the target {row['target']:f}, band {row['band']:f}"
        if isinstance(order, str):
            redis.set(keys.portfolio_hedge(owner.pk, target.asset), "skipped", ex=HEDGE_COOLDOWN_S)
            bot_events_record([(bot.pk, now, "portfolio", "portfolio_hedge_skipped", f"{why}: {order}", None)])
            counts["skipped"] += 1
            continue
        side, price, qty = order
        try:
            sent = bot_manual_order(bot=bot, actor=owner, side=side, price=str(price), quantity=str(qty))
        except FieldErrors as exc:
            redis.set(keys.portfolio_hedge(owner.pk, target.asset), "skipped", ex=HEDGE_COOLDOWN_S)
            bot_events_record(
                [(bot.pk, now, "portfolio", "portfolio_hedge_skipped", f"{why}: hedge not sent: {exc}", None)]
            )
            counts["skipped"] += 1
            continue
        redis.set(keys.portfolio_hedge(owner.pk, target.asset), json.dumps(sent), ex=HEDGE_COOLDOWN_S)
        text = f"{why}: portfolio hedge {side} {qty:f} {bot.market.base} at {price:f} on {bot.market.symbol}"
        bot_events_record([(bot.pk, now, "portfolio", "portfolio_hedge", text, {"order": sent})])
        counts["sent"] += 1
    return counts


@shared_task(name="workers.portfolio.sweep")
def portfolio_sweep() -> dict[str, int]:
    """Beat entry point (every 10 s)."""
    return sweep()


@shared_task(name="workers.portfolio.hedge")
def portfolio_hedge() -> dict[str, int]:
    """Beat entry point (every 15 s)."""
    return hedge()
