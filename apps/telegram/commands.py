"""The commands a linked Telegram chat may send, answered as text.

Reads (/status, /bots, /pnl) show what the linked user may see; actions go through the bot
lifecycle services as that user (viewers only read). /stop, /flatten and /kill are destructive:
they are held until /confirm (within TELEGRAM_CONTROL_CONFIRM_TTL_S). Every command, accepted
or refused, is written to the audit log; an unlinked chat gets only the way to link it.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db.models import OuterRef, Subquery
from django.utils import timezone

from apps.accounts.errors import FieldErrors
from apps.accounts.models import AuditAction
from apps.accounts.services import audit_record
from apps.bots import controls as bot_controls
from apps.bots import services as bot_services
from apps.bots.selectors import bot_can_change, bot_list
from apps.exchanges.selectors import exchange_account_list
from apps.telegram import services

READ = ("/status", "/bots", "/pnl")
ACT = ("/pause", "/resume")
DESTRUCTIVE = ("/stop", "/flatten", "/kill")
HELP = (
    "Commands: /status, /bots, /pnl, /pause <bot id>, /resume <bot id>, /stop <bot id>, "
    "/flatten <bot id>, /kill <account id>; /stop, /flatten and /kill ask for /confirm (or /cancel)."
)
NOT_LINKED = (
    "This chat is not linked to a MarketMakerSuite user, so no command is obeyed here. "
    "In MarketMakerSuite open Settings → Telegram, press 'Link a chat' and send /link <code> here."
)


def handle(chat_id: int, text: str, *, private: bool = True) -> str:
    """The reply to ``text`` sent from ``chat_id`` (``private``: a one-to-one chat with the bot;
    in a group anyone present could send commands, so groups are never obeyed)."""
    words = (text or "").strip().split()
    command = words[0].split("@", 1)[0].lower() if words else ""
    args = words[1:]
    if not private:
        audit_record(action=AuditAction.TELEGRAM_COMMAND, actor_name=f"telegram:{chat_id}",
                     message=f"refused (not a private chat): {command or '(no command)'}")  # fmt: skip
        return "Commands are taken only in a private chat with the bot, not in a group."
    found = services.linked_user(chat_id)
    if command == "/link":
        return _link(chat_id, args)
    if found is None:
        audit_record(action=AuditAction.TELEGRAM_COMMAND, actor_name=f"telegram:{chat_id}",
                     message=f"refused (chat not linked): {command or '(no command)'}")  # fmt: skip
        return NOT_LINKED
    user, link = found
    reply, outcome = _dispatch(user, link, command, args)
    audit_record(
        action=AuditAction.TELEGRAM_COMMAND,
        actor=user,
        owner=user,
        object_type="telegram.chat",
        object_id=chat_id,
        message=f"{' '.join([command, *args])[:200]}: {outcome}",
    )
    return reply


def _link(chat_id: int, args: list[str]) -> str:
    user = services.link_chat(chat_id=chat_id, code=args[0]) if len(args) == 1 else None
    if user is None:
        audit_record(action=AuditAction.TELEGRAM_COMMAND, actor_name=f"telegram:{chat_id}",
                     message="refused: /link with an unknown or expired code")  # fmt: skip
        return "That code is unknown or expired. Make a new one in Settings → Telegram and send /link <code>."
    return f"Linked to {user.username}. {HELP}"


def _dispatch(user, link, command: str, args: list[str]) -> tuple[str, str]:
    if command in ("/start", "/help"):
        return HELP, "help"
    if command == "/confirm":
        return _confirm(user, link)
    if command == "/cancel":
        link.pending = ""
        link.save(update_fields=["pending"])
        return "Nothing pending any more.", "cancelled"
    if command == "/status":
        return _status(user), "read"
    if command == "/bots":
        return _bots(user), "read"
    if command == "/pnl":
        return _pnl(user), "read"
    if command in ACT or command in DESTRUCTIVE:
        if not user.can_trade:
            return f"Viewers can only read (/status, /bots, /pnl); {command} needs a trader or operator.", "refused"
        target, error = _target(user, command, args)
        if error:
            return error, "refused"
        if command in ACT:
            return _act(user, command, target)
        link.pending = f"{command} {target.pk}"
        link.pending_expires = timezone.now() + timedelta(seconds=settings.TELEGRAM_CONTROL_CONFIRM_TTL_S)
        link.save(update_fields=["pending", "pending_expires"])
        what = f"account {target.pk} ({target.label}): kill every bot on it" if command == "/kill" else (
            f"bot {target.pk} ({target.name}): " + ("stop it" if command == "/stop" else "kill it and flatten its position")
        )  # fmt: skip
        return (
            f"{command} {what}. Send /confirm within {settings.TELEGRAM_CONTROL_CONFIRM_TTL_S} s to do it, /cancel not to.",
            "awaiting confirmation",
        )
    return f"Unknown command {command or '(empty)'}. {HELP}", "refused"


def _target(user, command: str, args: list[str]):
    """The bot (or account, for /kill) named by ``args``, or an error naming what is accepted."""
    kind = "account" if command == "/kill" else "bot"
    if kind == "account":
        choices = exchange_account_list(user=user)
        if not user.is_operator:
            choices = choices.filter(owner=user)
    else:
        choices = [b for b in bot_list(user=user) if bot_can_change(user=user, bot=b)]
    ids = ", ".join(str(x.pk) for x in choices) or "none"
    if len(args) != 1 or not args[0].isdigit():
        got = " ".join(args) or "nothing"
        return (
            None,
            f"{command} needs one {kind} id (a whole number), e.g. {command} 12; got {got!r}. Your {kind}s: {ids}.",
        )
    wanted = int(args[0])
    target = (
        next((x for x in choices if x.pk == wanted), None)
        if isinstance(choices, list)
        else choices.filter(pk=wanted).first()
    )
    if target is None:
        return None, f"Unknown {kind} id {wanted} (or not yours to change). Your {kind}s: {ids}."
    return target, ""


def _act(user, command: str, bot) -> tuple[str, str]:
    action = {"/pause": bot_services.bot_pause, "/resume": bot_services.bot_resume}[command]
    try:
        bot = action(bot=bot, actor=user)
    except FieldErrors as exc:
        return f"{command} {bot.pk} refused: {exc}", "refused"
    return f"Bot {bot.pk} ({bot.name}): desired state is now {bot.desired_state}.", "done"


def _confirm(user, link) -> tuple[str, str]:
    pending, expires = link.pending, link.pending_expires
    link.pending = ""
    link.save(update_fields=["pending"])
    if not pending or expires is None or expires < timezone.now():
        return "Nothing to confirm (or it expired): send the command again.", "refused"
    command, _, target_id = pending.partition(" ")
    target, error = _target(user, command, [target_id])
    if error:
        return error, "refused"
    try:
        if command == "/kill":
            killed = bot_controls.account_kill_switch(account=target, actor=user, reason="telegram /kill")
            return f"Kill switch of account {target.pk} ({target.label}) is on: {killed} bots killed.", "done"
        if command == "/stop":
            bot_services.bot_stop(bot=target, actor=user)
            return f"Bot {target.pk} ({target.name}) is stopping.", "done"
        bot_services.bot_kill(bot=target, actor=user, reason="telegram /flatten", flatten=True)
        return f"Bot {target.pk} ({target.name}) is being killed and flattened.", "done"
    except FieldErrors as exc:
        return f"{command} {target.pk} refused: {exc}", "refused"


def _status(user) -> str:
    bots = list(bot_list(user=user))
    counts: dict[str, int] = {}
    for bot in bots:
        counts[bot.actual_state] = counts.get(bot.actual_state, 0) + 1
    states = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no bots"
    killed = [a.label for a in exchange_account_list(user=user) if a.kill_switch]
    return f"{len(bots)} bots: {states}." + (f" Kill switch on: {', '.join(killed)}." if killed else "")


def _bots(user) -> str:
    lines = [
        f"{b.pk} {b.name}: {b.actual_state} (wants {b.desired_state}), {b.market.venue} {b.market.symbol}, {b.strategy}"
        for b in bot_list(user=user)[:50]
    ]
    return "\n".join(lines) or "No bots."


def _pnl(user) -> str:
    from apps.portfolio.models import PnlSnapshot

    latest = PnlSnapshot.objects.filter(bot=OuterRef("pk")).order_by("-ts")
    rows = bot_list(user=user).annotate(
        realized=Subquery(latest.values("realized")[:1]),
        unrealized=Subquery(latest.values("unrealized")[:1]),
        position=Subquery(latest.values("position")[:1]),
    )[:50]
    lines = [
        f"{b.pk} {b.name}: PnL {b.realized + b.unrealized} {b.market.quote} (realized {b.realized}), position {b.position} {b.market.base}"
        if b.realized is not None else f"{b.pk} {b.name}: no PnL yet"
        for b in rows
    ]  # fmt: skip
    return "\n".join(lines) or "No bots."
