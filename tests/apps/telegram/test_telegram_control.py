"""A linked Telegram chat driven through every command against a local Bot API server, with
the refusals: an unlinked chat, a viewer trying /kill, an unknown bot id, a bad argument."""

from __future__ import annotations

import re

import pytest

from tests.apps.telegram.botapi import TOKEN, BotApiServer

TRADER_CHAT, VIEWER_CHAT, STRANGER_CHAT = 5001, 5002, 5003


@pytest.fixture
def botapi(settings):
    server = BotApiServer()
    settings.TELEGRAM_API_BASE = server.base
    settings.TELEGRAM_CONTROL_BOT_TOKEN = TOKEN
    yield server
    server.close()


@pytest.fixture
def chat(botapi):
    from apps.telegram.poller import Poller

    poller = Poller(timeout_s=1)

    def send(chat_id: int, text: str) -> str:
        before = len(botapi.sent)
        botapi.say(chat_id, text)
        assert poller.poll_once() == 1
        assert len(botapi.sent) == before + 1, "no reply"
        reply = botapi.sent[-1]
        assert reply["chat_id"] == chat_id
        return reply["text"]

    return send


def code_from_settings(client, user) -> str:
    client.force_login(user)
    page = client.post("/settings/telegram/code/", follow=True).content.decode()
    return re.search(r"/link ([A-Z0-9]{10})", page).group(1)


def commands_logged(**filters) -> int:
    from apps.accounts.models import AuditLog

    return AuditLog.objects.filter(action="telegram_command", **filters).count()


@pytest.mark.django_db
def test_a_linked_chat_runs_every_command_and_the_refusals_are_clear(chat, client, trader, viewer, make_bot, botapi):
    from apps.bots.models import Bot
    from apps.bots.services import bot_share, bot_start

    bot = make_bot(trader, "tg-bot")
    bot_start(bot=bot, actor=trader)
    account = bot.exchange_account

    # Nothing works from a chat nobody linked, not even with a valid-looking command.
    reply = chat(STRANGER_CHAT, f"/stop {bot.pk}")
    assert "not linked" in reply and "/link" in reply
    assert Bot.objects.get(pk=bot.pk).desired_state == "running"
    assert "unknown or expired" in chat(STRANGER_CHAT, "/link WRONGCODE1")

    # The trader links a chat with a one-time code made in Settings.
    code = code_from_settings(client, trader)
    assert f"Linked to {trader.username}" in chat(TRADER_CHAT, f"/link {code}")
    assert "unknown or expired" in chat(STRANGER_CHAT, f"/link {code}")  # used up
    assert "Telegram chat is linked" in client.get("/settings/").content.decode()

    assert "1 bots" in chat(TRADER_CHAT, "/status")
    assert f"{bot.pk} tg-bot" in chat(TRADER_CHAT, "/bots")
    assert f"{bot.pk} tg-bot: no PnL yet" in chat(TRADER_CHAT, "/pnl")

    assert "desired state is now paused" in chat(TRADER_CHAT, f"/pause {bot.pk}")
    assert Bot.objects.get(pk=bot.pk).desired_state == "paused"
    assert "desired state is now running" in chat(TRADER_CHAT, f"/resume {bot.pk}")

    # Bad argument and unknown id: the reply says what would be accepted.
    reply = chat(TRADER_CHAT, "/pause abc")
    assert "needs one bot id (a whole number)" in reply and "'abc'" in reply and f"Your bots: {bot.pk}" in reply
    reply = chat(TRADER_CHAT, "/pause 987654")
    assert "Unknown bot id 987654" in reply and f"Your bots: {bot.pk}" in reply
    assert "Unknown command /dance" in chat(TRADER_CHAT, "/dance")

    # Destructive commands wait for /confirm.
    assert "/confirm" in chat(TRADER_CHAT, f"/stop {bot.pk}")
    assert Bot.objects.get(pk=bot.pk).desired_state == "running"
    assert "is stopping" in chat(TRADER_CHAT, "/confirm")
    assert Bot.objects.get(pk=bot.pk).desired_state == "stopped"
    assert "Nothing to confirm" in chat(TRADER_CHAT, "/confirm")

    assert "flatten" in chat(TRADER_CHAT, f"/flatten {bot.pk}")
    assert "killed and flattened" in chat(TRADER_CHAT, "/confirm")

    assert "/confirm" in chat(TRADER_CHAT, f"/kill {account.pk}")
    assert "Nothing pending" in chat(TRADER_CHAT, "/cancel")
    assert "Nothing to confirm" in chat(TRADER_CHAT, "/confirm")
    account.refresh_from_db()
    assert not account.kill_switch
    reply = chat(TRADER_CHAT, "/kill")
    assert "needs one account id" in reply and f"Your accounts: {account.pk}" in reply
    assert "/confirm" in chat(TRADER_CHAT, f"/kill {account.pk}")
    assert "Kill switch of account" in chat(TRADER_CHAT, "/confirm")
    account.refresh_from_db()
    assert account.kill_switch

    # A viewer with the bot shared reads it but cannot act.
    bot_share(bot=bot, actor=trader, users=[viewer])
    code = code_from_settings(client, viewer)
    assert f"Linked to {viewer.username}" in chat(VIEWER_CHAT, f"/link {code}")
    assert f"{bot.pk} tg-bot" in chat(VIEWER_CHAT, "/bots")
    reply = chat(VIEWER_CHAT, f"/kill {account.pk}")
    assert "Viewers can only read" in reply and "/kill" in reply
    assert "Viewers can only read" in chat(VIEWER_CHAT, f"/pause {bot.pk}")

    # Every command is in the audit log, refusals included; the poller confirmed each update.
    assert commands_logged(actor=trader) == 19
    assert commands_logged(actor=viewer) == 3
    assert commands_logged(actor=None) == 3
    assert botapi.offsets == sorted(botapi.offsets)


@pytest.mark.django_db
def test_unlinking_from_settings_stops_the_chat(chat, client, trader, make_bot):
    code = code_from_settings(client, trader)
    chat(TRADER_CHAT, f"/link {code}")
    client.post("/settings/telegram/unlink/")
    assert "not linked" in chat(TRADER_CHAT, "/status")


@pytest.mark.django_db
def test_a_group_chat_is_never_obeyed(botapi, client, trader):
    from apps.telegram.poller import Poller

    code = code_from_settings(client, trader)
    botapi.say(-100777, f"/link {code}", chat_type="group")
    assert Poller(timeout_s=1).poll_once() == 1
    assert "only in a private chat" in botapi.sent[-1]["text"]
    assert commands_logged(message__contains="not a private chat") == 1


@pytest.mark.django_db
def test_the_poller_command_needs_a_token(settings):
    from django.core.management import CommandError, call_command

    settings.TELEGRAM_CONTROL_BOT_TOKEN = ""
    with pytest.raises(CommandError, match="TELEGRAM_CONTROL_BOT_TOKEN is not set"):
        call_command("telegram_poll", "--once")


@pytest.mark.django_db(transaction=True)  # the command closes stale connections between rounds
def test_the_poller_command_answers_a_round(botapi):
    from django.core.management import call_command

    botapi.say(STRANGER_CHAT, "/status")
    call_command("telegram_poll", "--once", "--timeout", "1")
    assert botapi.sent and "not linked" in botapi.sent[-1]["text"]
