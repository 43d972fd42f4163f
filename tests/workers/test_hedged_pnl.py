"""PnL snapshots of hosted hedged bots (both legs) and the risk sweep acting on them: a real
in-process host on the real Redis and PostgreSQL, two paper accounts on two sim venues."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from tests.workers.helpers import wait_until
from tests.workers.test_hedged_host import make_hedged_bot

pytestmark = [pytest.mark.django_db(transaction=True)]


def _leg_figures(fills) -> tuple[Decimal, Decimal, Decimal, Decimal]:
    """(net base, cash flow, fees, realized) of one leg's fills, average-cost basis."""
    position = cash = fees = realized = cost = Decimal(0)
    for f in fills:
        s = 1 if f.side == "buy" else -1
        q, notional = f.quantity, f.price * f.quantity
        cash -= s * notional + f.fee
        fees += f.fee
        if position == 0 or (position > 0) == (s > 0):
            cost += s * notional
            position += s * q
            continue
        closed = min(q, abs(position))
        portion = cost * closed / abs(position)
        realized += -s * f.price * closed - portion
        cost -= portion
        position += s * closed
        if q > closed:
            cost = s * f.price * (q - closed)
            position = s * (q - closed)
    return position, cash, fees, realized


def _start(maker_venue: str, hedge_venue: str, **risk):
    from apps.bots.models import Bot
    from apps.bots.services import bot_start
    from apps.exchanges.models import Market

    user, bot, _maker_market, hedge_market = make_hedged_bot(maker_venue, hedge_venue, start=False)
    # fees on both legs so the snapshots' fees are not trivially zero (the hedge pays taker)
    Market.objects.filter(pk=hedge_market.pk).update(maker_fee="0.0001", taker_fee="0.0001")
    params = {**bot.params, "min_profitability": "0.0001"}  # at least the fees, as validated
    Bot.objects.filter(pk=bot.pk).update(risk={**bot.risk, **risk}, params=params)
    bot.refresh_from_db()
    bot_start(bot=bot, actor=user)
    return user, bot


def test_hedged_bot_snapshots_sum_both_legs_fills(host):
    from apps.bots.models import Bot
    from apps.orders.models import Fill
    from apps.portfolio.models import PnlSnapshot
    from workers import lifecycle, supervisor

    _user, bot = _start("sim:hp-maker", "sim:hp-hedge")
    supervisor.tick()
    assert wait_until(lambda: Bot.objects.get(pk=bot.pk).actual_state == "running", 20)
    prefix = bot.client_id_prefix
    hedge_fills = Fill.objects.filter(bot=bot, client_order_id__startswith=prefix + "h-")
    assert wait_until(lambda: hedge_fills.count() >= 2, 120), "no hedge fills in 120 s"
    assert wait_until(lambda: PnlSnapshot.objects.filter(bot=bot).count() >= 3, 10), "no PnL snapshots"
    row = Bot.objects.get(pk=bot.pk)
    row.desired_state = "stopped"
    row.save(update_fields=["desired_state"])
    lifecycle.apply(bot.pk)
    assert wait_until(lambda: Bot.objects.get(pk=bot.pk).actual_state == "stopped", 30)
    host.drain_writers(10)
    fills = list(Fill.objects.filter(bot=bot).order_by("ts", "id"))
    maker = [f for f in fills if f.client_order_id.startswith(prefix + "m-")]
    hedge = [f for f in fills if f.client_order_id.startswith(prefix + "h-")]
    assert maker and hedge and len(maker) + len(hedge) == len(fills)
    assert any(f.fee != 0 for f in hedge)
    m_pos, m_cash, m_fees, m_real = _leg_figures(maker)
    h_pos, h_cash, h_fees, h_real = _leg_figures(hedge)
    # none before both legs have a mid (an equity without the BTC's value would read as a loss)
    assert not PnlSnapshot.objects.filter(bot=bot, mid__isnull=True).exists()
    last = PnlSnapshot.objects.filter(bot=bot).order_by("-ts").first()  # written after the last fill
    assert last.position == m_pos + h_pos
    assert last.cash == Decimal("2000000") + m_cash + h_cash  # each account's 1,000,000 USDT once
    assert last.fees == m_fees + h_fees
    # the portfolio floors each closed portion of the cost basis to a cash unit (1e-14 USDT here)
    assert abs(last.realized - (m_real + h_real)) < Decimal("1e-9"), (last.realized, m_real + h_real)
    assert last.mid is not None and last.peak_equity >= last.equity
    assert last.drawdown == last.peak_equity - last.equity
    # equity: both accounts' 10 BTC plus the net position valued near the maker mid (the hedge
    # leg is marked at its own venue's mid), plus the cash
    base_value = last.equity - last.cash
    assert abs(base_value - (Decimal(20) + last.position) * last.mid) < Decimal("0.01") * last.mid * 20


def test_risk_sweep_pauses_a_hedged_bot_on_its_daily_loss(host, redis_client):
    from apps.bots.models import Bot, BotEvent
    from apps.orders.models import Fill
    from apps.portfolio.models import PnlSnapshot
    from workers import keys, risk, supervisor

    _user, bot = _start("sim:hr-maker", "sim:hr-hedge", daily_loss_limit="0")
    supervisor.tick()
    assert wait_until(lambda: Bot.objects.get(pk=bot.pk).actual_state == "running", 20)
    prefix = bot.client_id_prefix
    hedge_fills = Fill.objects.filter(bot=bot, client_order_id__startswith=prefix + "h-")
    assert wait_until(lambda: hedge_fills.count() >= 1, 120), "no hedge fills in 120 s"
    snaps = PnlSnapshot.objects.filter(bot=bot)
    assert wait_until(lambda: snaps.count() >= 2, 20)
    # Equity holds both accounts' 10 BTC at the sim's mid, which may as well rise as fall in the
    # test's minute: the day's opening snapshot is set 1,000 USDT above the bot's first one (the
    # bot was up earlier in the day), so its equity now is a loss against the day's start.
    first = snaps.order_by("ts").first()
    day_start = first.ts.replace(hour=0, minute=0, second=0, microsecond=0)
    opening = PnlSnapshot.objects.create(
        ts=max(day_start, first.ts - timedelta(seconds=1)), bot=bot, position=first.position, cash=first.cash,
        mid=first.mid, realized=first.realized, unrealized=first.unrealized, fees=first.fees,
        equity=first.equity + 1000, peak_equity=first.equity + 1000, drawdown=0,
    )  # fmt: skip
    assert snaps.order_by("-ts").first().equity < opening.equity
    result = risk.sweep()
    assert result["paused"] >= 1
    assert Bot.objects.get(pk=bot.pk).risk_paused_reason.startswith("daily loss")
    assert BotEvent.objects.filter(bot=bot, code="risk_pause").exists()
    assert wait_until(lambda: Bot.objects.get(pk=bot.pk).actual_state == "paused", 15)
    k_maker_orders = keys.paper(bot.exchange_account_id, "BTC/USDT", "orders")
    assert wait_until(lambda: redis_client.hlen(k_maker_orders) == 0, 10), "maker quotes left resting"
    assert "daily loss" in Bot.objects.get(pk=bot.pk).state_reason
