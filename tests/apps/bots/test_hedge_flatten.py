"""Flatten in hedge position mode from the trader's side (``apps.bots.controls``,
``apps.bots.hedge_position``): a paper perpetual bot whose long and short legs net to zero is not
flat. Its legs are read from the paper venue's stored position; the bot page and the overview
show them with a Flatten button whose confirmation names both legs; the flatten and the account's
"Close all positions" are accepted (one reduce-only order per leg is the loop's,
``tests/workers/test_paper_perp_hedge.py``); a bot with both legs at zero is refused."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse

from tests.apps.bots.factories import sent_tasks  # noqa: F401 - fixture
from tests.apps.dashboard.conftest import client_for
from tests.workers.test_paper_perp import USDM, make_bot, stored_state
from tests.workers.test_paper_perp_hedge import _seed_legs

pytestmark = pytest.mark.django_db


def _stopped_hedge_bot(name: str):
    from apps.bots.models import Bot

    user, account, bot = make_bot(
        USDM, {"USDT": "5000"}, {"leverage": 5, "position_mode": "hedge"}, {"order_amount": "0.01"}, name=name
    )
    Bot.objects.filter(pk=bot.pk).update(desired_state="stopped")
    return user, account, Bot.objects.select_related("market", "exchange_account").get(pk=bot.pk)


def test_equal_legs_are_shown_and_flattened_both(
    clean_redis,
    sent_tasks,  # noqa: F811
    django_capture_on_commit_callbacks,
):
    from apps.accounts.models import AuditLog
    from apps.bots.controls import account_close_all, bot_flatten, bot_position
    from apps.bots.hedge_position import bot_legs

    user, account, bot = _stopped_hedge_bot("equal legs")
    _seed_legs(bot, 10, Decimal("60000"))
    assert stored_state(bot)["legs"]["long"][0] == 10
    assert bot_position(bot.pk) == 0  # no fill: the net is flat
    legs = bot_legs(bot)
    assert (legs.long, legs.short, legs.source) == (Decimal("0.01"), Decimal("-0.01"), "paper venue")

    client = client_for(user)
    page = client.get(reverse("bot-detail", args=[bot.pk])).content.decode()
    assert 'id="kpi-legs"' in page and "long 0.01 / short -0.01" in page
    assert 'id="flatten-form"' in page and "Both legs (long 0.01 / short \\u002D0.01) are closed" in page
    overview = client.get(reverse("overview")).content.decode()
    assert f'data-flatten="{bot.pk}"' in overview and "legs: long 0.01 / short -0.01" in overview

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("bot-action", args=[bot.pk, "flatten"]), follow=True)
    text = response.content.decode()
    assert "closing the long leg 0.01 and short leg -0.01 contracts, one reduce-only order per leg" in text, text
    assert [t[0] for t in sent_tasks] == ["workers.bots.flatten"]
    audit = AuditLog.objects.filter(object_id=str(bot.pk)).order_by("-id").first()
    assert audit.after["legs"] == {"long": "0.01", "short": "-0.01"}

    # The account's close-all flattens it as well.
    done = account_close_all(account=account, actor=user)
    assert [b.pk for b, _ in done] == [bot.pk]

    # Both legs at zero: nothing to flatten, no button.
    _seed_legs(bot, 0, Decimal("60000"))
    from apps.accounts.errors import FieldErrors

    with pytest.raises(FieldErrors, match="nothing on its long or short leg"):
        bot_flatten(bot=bot, actor=user)
    assert account_close_all(account=account, actor=user) == []
    page = client.get(reverse("bot-detail", args=[bot.pk])).content.decode()
    assert 'id="flatten-form"' not in page and "long 0 / short 0" in page
