"""Perpetual bots on one paper account share its settle balance (``apps/derivatives/paper_wallets.py``,
``workers/perp_hosting.py``): the account's only perpetual bot has the whole balance; with two,
each needs an allocation (``risk.perp.wallet``), the allocations within the balance, and each
bot's margin check is against its own share: the second bot refuses what the first already uses.

The first bot runs on a real in-process host through the shipped USD-M recording
(``test_paper_perp.py``'s helpers); the second bot's engine risk is built as its loop builds it
at start (``records.bot_setup``, ``perp_hosting.load``, ``perp_hosting.perp_risk``).
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest

from tests.workers.test_paper_perp import USDM, drive, feed_events, leave, make_bot, run

pytestmark = [pytest.mark.django_db(transaction=True)]


def _second_bot(account, market, perp: dict, name: str = "second"):
    """A second bot saved as it was before creation checked allocations (the services now refuse
    it: ``tests/apps/bots/test_perp_wallet_allocations.py``), so that the start's own check is seen."""
    from apps.bots.models import Bot

    bot = Bot.objects.create(
        owner=account.owner, name=name, exchange_account=account, market=market, strategy="fixed_spread",
        params={"order_amount": "0.01", "bid_spread": "0.001", "ask_spread": "0.001", "order_levels": 1},
        risk={"max_position_base": "100000", "perp": perp},
    )  # fmt: skip
    Bot.objects.filter(pk=bot.pk).update(client_id_prefix=f"mm{bot.pk}x")
    bot.refresh_from_db()
    return bot


def _risk_at_start(bot):
    """The PerpRisk the bot's loop builds at start (ConfigError when refused)."""
    from workers import perp_hosting, records

    setup = records.bot_setup(bot.pk)
    perp_hosting.load(setup)
    return perp_hosting.perp_risk(setup)


def _buy(risk, price: Decimal, qty: Decimal):
    from trading.events import PlaceOrder
    from trading.instruments import Side
    from trading.risk_types import RiskState

    inst = risk.instrument
    state = RiskState()
    return risk.check(PlaceOrder("x-1", Side.BUY, inst.ticks(price), inst.lots(qty)), state)


def test_two_bots_on_one_paper_account_never_count_the_same_collateral(host):
    from apps.bots.models import Bot
    from trading.config import ConfigError

    # 1x isolated: 0.01 BTC at ~61,800 holds ~618 USDT of margin.
    _user, account, first = make_bot(
        USDM, {"USDT": "1000"}, {"leverage": 1, "margin_mode": "isolated"}, {"order_amount": "0.01"}, name="first"
    )
    # Alone on the account, the first bot's wallet is the whole balance (as before).
    assert _risk_at_start(first).wallet == 1000

    # A second perpetual bot on the account: neither may go without an allocation.
    second = _second_bot(account, first.market, {"leverage": 1, "margin_mode": "isolated"})
    with pytest.raises(ConfigError) as err:
        _risk_at_start(second)
    message = err.value.errors["perp.wallet"]
    assert message.startswith("absent: 2 perpetual bots settle in USDT on this paper account and this bot has")
    assert "together at most the USDT balance 1000" in message
    Bot.objects.filter(pk=second.pk).update(
        risk={"max_position_base": "100000", "perp": {"leverage": 1, "wallet": "300"}}
    )
    with pytest.raises(ConfigError) as err:  # the first still has none: it would take all 1000
        _risk_at_start(Bot.objects.get(pk=second.pk))
    assert err.value.errors["perp.wallet"].startswith(
        "300: 2 perpetual bots settle in USDT on this paper account and bot 'first' has no allocation"
    )

    # Allocations 700 + 300: each bot's wallet is its own.
    Bot.objects.filter(pk=first.pk).update(
        risk={"max_position_base": "100000", "perp": {"leverage": 1, "margin_mode": "isolated", "wallet": "700"}}
    )
    events = feed_events(USDM[2], 1)
    runner = run(host, drive(host, first.pk, events))
    try:
        perp = runner.engine.perp
        assert perp.wallet == 700
        pos = perp.position
        assert pos.net_lots == 10, pos.net_lots  # the first bot's bid filled: 0.01 BTC long
        mark = perp.mark
        used = pos.margin_used(mark)
        assert Fraction(600) < used < Fraction(700)  # ~618 of the account's 1000 USDT in use

        # The second bot's margin check: what the first uses is not its to use. With the whole
        # balance as its wallet (1000) this 0.005 BTC buy (~309 USDT) would pass.
        risk = _risk_at_start(Bot.objects.get(pk=second.pk))
        assert risk.wallet == 300
        price = Decimal(str(float(mark))).quantize(Decimal("0.1"))
        refused = _buy(risk, price, Decimal("0.005"))
        assert not refused.allowed and refused.code == "insufficient_margin", refused
        assert "free margin is 300" in refused.message, refused.message
        assert _buy(risk, price, Decimal("0.004")).allowed  # within its own 300 USDT

        # Allocations beyond the balance are refused by name with what would fit.
        Bot.objects.filter(pk=second.pk).update(risk={"max_position_base": "100000", "perp": {"wallet": "301"}})
        with pytest.raises(ConfigError) as err:
            _risk_at_start(Bot.objects.get(pk=second.pk))
        assert err.value.errors["perp.wallet"] == (
            "301 USDT is more than this paper account has for it (the balance 1000 less first 700); accepted: at most 300"
        )
    finally:
        run(host, leave(host, runner))
