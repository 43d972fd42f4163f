"""An account's type change (spot <-> derivatives) and a start of one of its bots, at the same time
on two database connections (two threads, real PostgreSQL): they are serialized on the account row
(``exchange_account_update`` locks it ``FOR UPDATE``, the start ``FOR KEY SHARE``), so whichever
commits second sees the first: a start held up by a type change is refused when the bot's market no
longer fits the account, and a type change held up by a start is refused because the bot runs.
Without the start's lock both went through: a running spot bot on a derivatives account."""

from __future__ import annotations

import threading

import pytest
from django.core.exceptions import ValidationError
from django.db import connection, transaction

from apps.accounts.errors import FieldErrors
from apps.bots.models import Bot
from apps.bots.services import bot_create, bot_start
from apps.exchanges.models import ExchangeAccount, Market
from apps.exchanges.services import exchange_account_create, exchange_account_update

pytestmark = pytest.mark.django_db(transaction=True)
BLOCKED_S = 1.0  # how long the second transaction is seen waiting on the first


def _spot_bot(trader):
    account = exchange_account_create(owner=trader, label="bn", venue="binance", kind="paper",
                                      paper_balances={"USDT": "1000", "BTC": "1"})  # fmt: skip
    market, _ = Market.objects.get_or_create(venue="binance", symbol="BTC/USDT", defaults={
        "base": "BTC", "quote": "USDT", "tick_size": "0.01", "lot_size": "0.00001", "min_notional": "5"})  # fmt: skip
    market.refresh_from_db()
    bot = bot_create(owner=trader, name="spot bot", exchange_account=account, market=market,
                     strategy="fixed_spread", params={"order_amount": "0.001", "bid_spread": "0.001",
                                                      "ask_spread": "0.001"})  # fmt: skip
    return account, bot


class Side(threading.Thread):
    """One transaction on its own connection: ``work()`` then, when ``hold`` is given, keeps the
    transaction open (its locks held) until ``hold`` is set; the outcome is kept."""

    def __init__(self, work, hold: threading.Event | None = None):
        super().__init__(daemon=True)
        self.work, self.hold = work, hold
        self.did = threading.Event()
        self.result = self.error = None

    def run(self):
        try:
            with transaction.atomic():
                self.result = self.work()
                self.did.set()
                if self.hold is not None:
                    assert self.hold.wait(30)
        except Exception as exc:  # the outcome under test
            self.error = exc
        finally:
            self.did.set()
            connection.close()


def test_a_start_waits_for_a_type_change_and_is_refused_when_the_market_no_longer_fits(trader):
    account, bot = _spot_bot(trader)
    release = threading.Event()
    change = Side(lambda: exchange_account_update(account=account, actor=trader, default_type="swap"), release)
    change.start()
    assert change.did.wait(10) and change.error is None
    start = Side(lambda: bot_start(bot=Bot.objects.get(pk=bot.pk), actor=trader))
    start.start()
    assert not start.did.wait(BLOCKED_S)  # held on the account row while the change is open
    release.set()
    change.join(10)
    start.join(10)
    assert change.error is None
    assert isinstance(start.error, FieldErrors), start.error
    assert start.error.errors == {"market": [
        "BTC/USDT on binance is a spot market and account 'bn' is a derivatives account; accepted: a perpetual "
        "swap (BASE/QUOTE:SETTLE) for this account"]}  # fmt: skip
    assert ExchangeAccount.objects.get(pk=account.pk).default_type == "swap"
    assert Bot.objects.get(pk=bot.pk).desired_state == "stopped"


def test_a_type_change_waits_for_a_start_and_is_refused_because_the_bot_runs(trader):
    account, bot = _spot_bot(trader)
    release = threading.Event()
    start = Side(lambda: bot_start(bot=Bot.objects.get(pk=bot.pk), actor=trader), release)
    start.start()
    assert start.did.wait(10) and start.error is None
    change = Side(lambda: exchange_account_update(account=account, actor=trader, default_type="swap"))
    change.start()
    assert not change.did.wait(BLOCKED_S)  # held on the account row while the start is open
    release.set()
    start.join(10)
    change.join(10)
    assert start.error is None
    assert isinstance(change.error, ValidationError), change.error
    assert "cannot change while its bots run ('spot bot')" in change.error.message_dict["default_type"][0]
    assert ExchangeAccount.objects.get(pk=account.pk).default_type == "spot"
    assert Bot.objects.get(pk=bot.pk).desired_state == "running"


def test_a_start_after_a_committed_type_change_sees_the_new_type(trader):
    account, bot = _spot_bot(trader)
    exchange_account_update(account=account, actor=trader, default_type="swap")
    with pytest.raises(FieldErrors) as err:
        bot_start(bot=bot, actor=trader)
    assert "is a derivatives account" in err.value.errors["market"][0]


def test_a_hedged_bots_hedge_account_is_held_the_same_way(trader):
    """The account of a hedged bot's hedge leg: its type does not change while the bot runs, and a
    start after it changed is refused at ``params.hedge_market``."""
    maker_account, bot = _spot_bot(trader)
    hedge_account = exchange_account_create(owner=trader, label="bn hedge", venue="binance", kind="paper",
                                            paper_balances={"USDT": "1000", "BTC": "1"})  # fmt: skip
    hedged = Bot.objects.create(
        owner=trader, name="hedged", exchange_account=maker_account, market=bot.market, strategy="hedged_maker",
        params={"hedge_account": hedge_account.pk, "hedge_market": bot.market.pk, "order_amount": "0.001"},
    )  # fmt: skip
    Bot.objects.filter(pk=hedged.pk).update(desired_state="running")
    with pytest.raises(ValidationError) as err:
        exchange_account_update(account=hedge_account, actor=trader, default_type="swap")
    assert "cannot change while its bots run ('hedged')" in err.value.message_dict["default_type"][0]
    Bot.objects.filter(pk=hedged.pk).update(desired_state="stopped")
    exchange_account_update(account=hedge_account, actor=trader, default_type="swap")
    with pytest.raises(FieldErrors) as refused:
        bot_start(bot=Bot.objects.get(pk=hedged.pk), actor=trader)
    assert refused.value.errors == {"params": {"hedge_market": [
        "BTC/USDT on binance is a spot market and account 'bn hedge' is a derivatives account; accepted: a "
        "perpetual swap (BASE/QUOTE:SETTLE) for this account"]}}  # fmt: skip
    assert Bot.objects.get(pk=hedged.pk).desired_state == "stopped"
