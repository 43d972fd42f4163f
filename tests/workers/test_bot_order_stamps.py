"""A hosted paper bot stamps its own order traffic — when it sent each place and cancel request
and when the venue's answer came back — and the simulator profile fitted from its orders takes
its place->ack and cancel->ack distributions from those stamps (real Redis and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.workers.helpers import make_paper_bots, wait_until

pytestmark = [pytest.mark.django_db(transaction=True)]
CANCELS = 25


def _ns(delta: timedelta) -> int:
    return delta.days * 86_400_000_000_000 + delta.seconds * 1_000_000_000 + delta.microseconds * 1000


def test_a_paper_bots_cancels_are_stamped_and_the_profile_fits_them(host):
    from apps.bots.models import Bot
    from apps.orders.models import Order
    from apps.research.profiles import profile_fit_from_bot
    from trading.latency import quantile_table
    from workers import lifecycle, supervisor

    start = timezone.now() - timedelta(seconds=1)
    user, _account, (bot,) = make_paper_bots(1, username="stamper")
    supervisor.tick()
    assert wait_until(lambda: Bot.objects.get(pk=bot.pk).actual_state == "running", 20)
    stamped = Order.objects.filter(bot=bot, status="cancelled", cancel_requested_at__isnull=False)
    # fixed spread requotes every second: its own cancels, each stamped when sent and answered
    assert wait_until(lambda: stamped.count() >= CANCELS, 90), (
        f"{stamped.count()} stamped cancels; {Order.objects.filter(bot=bot).count()} orders"
    )
    Bot.objects.filter(pk=bot.pk).update(desired_state="stopped")
    lifecycle.apply(bot.pk)
    assert wait_until(lambda: Bot.objects.get(pk=bot.pk).actual_state == "stopped", 20)
    end = timezone.now() + timedelta(seconds=1)

    rows = list(stamped.values_list("cancel_requested_at", "closed_at", "sent_at"))
    cancel_ns = sorted(_ns(closed - asked) for asked, closed, _ in rows)
    # a measured round trip: the answer after the request, well under the 1 s requote period
    assert all(0 < d < 1_000_000_000 for d in cancel_ns), cancel_ns[:5]
    # the bot's own send times: each cancel went out after its place did
    assert all(sent is not None and asked > sent for asked, _, sent in rows)
    acked = Order.objects.filter(bot=bot, acked_at__isnull=False)
    assert acked.filter(sent_at__isnull=True).count() == 0  # every acknowledged place has its send stamp
    place_ns = sorted(_ns(a - s) for s, a in acked.values_list("sent_at", "acked_at"))
    assert all(0 < d < 1_000_000_000 for d in place_ns), place_ns[:5]

    profile = profile_fit_from_bot(user=user, bot_id=bot.pk, name="from stamps", start=start, end=end)
    assert profile.cancel_source == "measured" and profile.cancel_samples == len(cancel_ns)
    assert profile.cancel_ack_ns == pytest.approx(list(quantile_table(cancel_ns)), abs=1)
    assert profile.place_samples == len(place_ns) == profile.live["place_stamped"]
    assert profile.place_ack_ns == pytest.approx(list(quantile_table(place_ns)), abs=1)
