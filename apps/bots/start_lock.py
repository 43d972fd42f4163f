"""A bot's start (or resume) and a type change of its account (spot / derivatives) serialized on
the account row: :func:`account_locked_for_start`, called in the start's transaction by
:mod:`apps.bots.services`; the type change is :func:`apps.exchanges.services.exchange_account_update`."""

from __future__ import annotations

from collections.abc import Mapping

from apps.accounts.errors import FieldErrors
from apps.bots import hedged
from apps.bots.models import Bot
from apps.exchanges.models import ExchangeAccount, Market


def account_locked_for_start(bot: Bot) -> ExchangeAccount:
    """The bot's account row, locked ``FOR KEY SHARE`` until the start commits, and read as
    committed after any change of its type that held the row (``exchange_account_update`` locks
    it ``FOR UPDATE``, which this waits for and which waits for this): a start and a type change
    of the account are serialized, so a type change never slips in between a start's checks and
    its commit, and a start after a type change sees the new type. ``FOR KEY SHARE`` does not
    wait for the bots' database writers (they hold the same mode). Refuses a market the account
    no longer trades (its type changed since the bot was made); a hedged bot's hedge account is
    locked and checked with its hedge market too."""
    from apps.exchanges.market_types import account_market_error

    def locked(account_id) -> ExchangeAccount | None:
        rows = ExchangeAccount.objects.raw(
            f"SELECT * FROM {ExchangeAccount._meta.db_table} WHERE id = %s FOR KEY SHARE", [account_id]
        )
        return next(iter(rows), None)

    account = locked(bot.exchange_account_id)
    wrong_type = account_market_error(account, bot.market)
    if wrong_type:
        raise FieldErrors({"market": [wrong_type]})
    if bot.strategy == hedged.STRATEGY:  # the hedge leg's account the same way
        params = bot.params if isinstance(bot.params, Mapping) else {}
        hedge_account = locked(params.get("hedge_account")) if isinstance(params.get("hedge_account"), int) else None
        hedge_market = Market.objects.filter(pk=params.get("hedge_market")).first()
        wrong_type = hedge_account and hedge_market and account_market_error(hedge_account, hedge_market)
        if wrong_type:
            raise FieldErrors({"params": {"hedge_market": [wrong_type]}})
    return account
