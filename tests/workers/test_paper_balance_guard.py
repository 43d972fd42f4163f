"""A paper bot's orders are checked against its account's balances before they leave (issue 21
item 2: a 1,000,000 BTC order was placed on an account holding about 1 BTC): pre-trade risk
refuses them with the figures, and the venue never sees them. Real host, Redis and PostgreSQL."""

from __future__ import annotations

import time

import pytest

from tests.workers.helpers import ensure_market, wait_until

pytestmark = [pytest.mark.django_db(transaction=True)]


def test_a_paper_bot_cannot_place_what_its_balance_cannot_pay_for(host, redis_client):
    from apps.accounts.models import User
    from apps.bots.models import Bot, BotEvent
    from apps.bots.services import bot_create, bot_start
    from apps.exchanges.services import exchange_account_create
    from workers import keys, supervisor

    user = User.objects.create_user(username="fatfinger", password="pw-12345678")
    account = exchange_account_create(owner=user, label=f"small {time.time_ns()}", venue="sim:alpha",
                                      paper_balances={"BTC": "1", "USDT": "10000"})  # fmt: skip
    # The configuration guards refuse such an order when the bot is created (apps/bots/guards.py);
    # a configuration that got past them (written before they existed, or straight into the
    # database) is what pre-trade risk in the bot loop stops. No size limits: the balance decides.
    bot = bot_create(owner=user, name="huge", exchange_account=account, market=ensure_market("sim:alpha"),
                     strategy="fixed_spread", params={"order_amount": "0.001", "bid_spread": "0.001",
                                                      "ask_spread": "0.001"},
                     risk={"max_order_size": None, "max_position_base": None})  # fmt: skip
    Bot.objects.filter(pk=bot.pk).update(params={**bot.params, "order_amount": "1000000"})
    bot.refresh_from_db()
    bot_start(bot=bot, actor=user)
    supervisor.tick()
    assert wait_until(lambda: Bot.objects.get(pk=bot.pk).actual_state == "running", 20)

    def refused():
        return BotEvent.objects.filter(bot=bot, code="insufficient_balance").order_by("ts").first()

    assert wait_until(lambda: refused() is not None, 20), list(BotEvent.objects.filter(bot=bot).values("code"))
    message = refused().message
    assert "1000000.0 BTC" in message
    assert "free USDT balance is 10000.00 USDT" in message or "free BTC balance is 1.0 BTC" in message
    assert redis_client.hlen(keys.paper(account.pk, "BTC/USDT", "orders")) == 0  # nothing reached the venue
