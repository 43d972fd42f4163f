"""The bot's own PnL: from its fills and its position at the mark, never the account's equity;
today and since start; flatten and close-all; shown on the overview, the bot page and its socket."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from decimal import Decimal

import pytest
import websockets
from django.urls import reverse
from django.utils import timezone

from apps.bots.controls import bot_position
from apps.bots.models import Bot
from apps.orders.models import Fill
from apps.portfolio.bot_pnl import FillBook, bot_pnl, fills_with_realized
from apps.portfolio.models import PnlSnapshot
from tests.apps.bots.factories import make_bot, make_user
from tests.apps.dashboard.conftest import client_for

D = Decimal


def add_fill(bot, ts, side, price, qty, fee, n=[0]):  # noqa: B006 - a counter for unique trade ids
    n[0] += 1
    return Fill.objects.create(
        ts=ts,
        account=bot.exchange_account,
        bot=bot,
        venue_trade_id=f"t{n[0]}",
        side=side,
        price=D(price),
        quantity=D(qty),
        fee=D(fee),
        fee_currency="USDT",
    )


# Bought 0.3 at 100 and 0.2 at 110, sold 0.4 at 120 (through the long), bought 0.1 at 90, sold 0.3 at 95
# (flips short by 0.3 - 0.0 ... ): a path with adds, a partial close, a close through zero.
TRADES = [
    ("buy", "100", "0.3", "0.03"),
    ("buy", "110", "0.2", "0.022"),
    ("sell", "120", "0.4", "0.048"),
    ("buy", "90", "0.1", "0.009"),
    ("sell", "95", "0.5", "0.0475"),
    ("buy", "97", "0.1", "0.0097"),
]


def independent(trades, mark):
    """Average-cost PnL computed step by step here, to compare with the selector's."""
    position, cost, realized_each, fees, cash = D(0), D(0), [], D(0), D(0)
    for side, price, qty, fee in trades:
        price, qty, fee = D(price), D(qty), D(fee)
        s = 1 if side == "buy" else -1
        cash -= s * price * qty
        fees += fee
        if position == 0 or (position > 0) == (s > 0):
            cost += s * price * qty
            position += s * qty
            realized_each.append(D(0))
            continue
        closed = min(qty, abs(position))
        avg = cost / position
        realized_each.append(closed * (price - avg) * (1 if position > 0 else -1))
        cost -= avg * closed * (1 if position > 0 else -1)
        position += s * closed
        if qty > closed:
            position = s * (qty - closed)
            cost = s * (qty - closed) * price
    unrealized = position * mark - cost
    return {
        "position": position,
        "realized_each": realized_each,
        "fees": fees,
        "cash": cash,
        "total": sum(realized_each) + unrealized - fees,
    }


def test_fill_book_matches_an_independent_average_cost_and_the_cash_identity():
    mark = D("101.5")
    book = FillBook()
    realized = [book.apply(*(t[0], D(t[1]), D(t[2]), D(t[3]))) for t in TRADES]
    ref = independent(TRADES, mark)
    assert book.position == ref["position"] == D("-0.2")
    assert realized == ref["realized_each"]
    total = book.realized + book.unrealized(mark) - book.fees
    assert total == ref["total"]
    # total = what the fills paid and received + the position at the mark - fees
    assert total == ref["cash"] + book.position * mark - ref["fees"]
    assert FillBook.from_cache(book.to_cache()) == book


@pytest.mark.django_db
def test_bot_pnl_today_and_since_start_from_fills_not_the_account(trader):
    bot = make_bot(trader, name="pnl-bot")
    now = timezone.now().replace(hour=12, minute=0, second=0, microsecond=0)
    midnight = now.replace(hour=0)
    yesterday = midnight - timedelta(hours=3)
    for i, t in enumerate(TRADES[:3]):
        add_fill(bot, yesterday + timedelta(minutes=i), *t)
    for i, t in enumerate(TRADES[3:]):
        add_fill(bot, midnight + timedelta(hours=1, minutes=i), *t)
    # The account's equity (a paper account that started with 10,000 USDT) is not the bot's PnL.
    for ts, mid in ((midnight - timedelta(minutes=1), "115"), (now - timedelta(minutes=1), "99")):
        PnlSnapshot.objects.create(
            bot=bot, ts=ts, position=0, cash=D("10000"), mid=D(mid), realized=0, unrealized=0, fees=0,
            equity=D("10000"), peak_equity=D("10000"), drawdown=0,
        )  # fmt: skip
    mark = D("101.5")
    pnl = bot_pnl(user=trader, bot_id=bot.pk, mark=mark, now=now)
    ref = independent(TRADES, mark)
    assert pnl["position"] == ref["position"] == bot_position(bot.pk)
    assert pnl["since_start"]["total"] == ref["total"]
    assert pnl["since_start"]["fees"] == ref["fees"]
    assert pnl["since_start"]["fills"] == len(TRADES)
    # Today: the change since midnight, the position then (0.1 long) valued at the mid then (115).
    before = independent(TRADES[:3], D("115"))
    assert pnl["today"]["total"] == ref["total"] - before["total"]
    assert pnl["today"]["fills"] == 3
    assert pnl["today"]["realized"] == sum(ref["realized_each"][3:])
    assert pnl["today"]["realized"] + pnl["today"]["unrealized"] - pnl["today"]["fees"] == pnl["today"]["total"]
    # Without a live mark: the last snapshot's mid.
    assert bot_pnl(user=trader, bot_id=bot.pk, now=now)["mark"] == D("99")
    # The state at midnight is cached, and a fill recorded late for yesterday is not missed.
    add_fill(bot, yesterday + timedelta(hours=1), "buy", "100", "0.1", "0")
    again = bot_pnl(user=trader, bot_id=bot.pk, mark=mark, now=now)
    assert again["since_start"]["fills"] == len(TRADES) + 1
    assert again["position"] == ref["position"] + D("0.1")
    # Per fill: the realized column sums to the bot's realized PnL.
    rows = fills_with_realized(user=trader, bot_id=bot.pk, limit=50, now=now)
    today_rows = [r for r in rows if r["realized"] is not None]
    assert sum(r["realized"] for r in today_rows) == again["today"]["realized"]


@pytest.mark.django_db
def test_another_users_bot_pnl_is_not_found(trader, other_trader):
    bot = make_bot(trader, name="mine")
    with pytest.raises(Bot.DoesNotExist):
        bot_pnl(user=other_trader, bot_id=bot.pk)


@pytest.mark.django_db
def test_overview_and_bot_page_show_the_bots_pnl_and_the_account_equity_apart(trader):
    bot = make_bot(trader, name="shown-bot")
    now = timezone.now()
    add_fill(bot, now - timedelta(seconds=30), "buy", "100", "0.5", "0.05")
    add_fill(bot, now - timedelta(seconds=20), "sell", "104", "0.2", "0.02")
    PnlSnapshot.objects.create(
        bot=bot, ts=now - timedelta(seconds=10), position=D("0.3"), cash=D("9000"), mid=D("103"), realized=0,
        unrealized=0, fees=0, equity=D("9030.9"), peak_equity=D("9030.9"), drawdown=0,
    )  # fmt: skip
    # realized 0.2 * 4 = 0.8; unrealized 0.3 * (103 - 100) = 0.9; fees 0.07 -> 1.63
    client = client_for(trader)
    body = client.get(reverse("overview")).content.decode()
    assert "Bot PnL today" in body and "Account equity" in body
    assert "+1.63" in body
    assert f'data-flatten="{bot.pk}"' in body  # a position: the flatten button
    page = client.get(reverse("bot-detail", args=[bot.pk])).content.decode()
    assert 'id="kpi-total"' in page and "+1.63" in page
    assert "last snapshot mid" in page
    assert 'data-action="flatten"' in page


@pytest.mark.django_db
def test_flatten_a_stopped_bot_and_close_all_per_account(trader, viewer):
    from apps.bots.services import bot_share

    bot = make_bot(trader, name="flat-me")
    flat = make_bot(trader, name="already-flat", account=bot.exchange_account)
    client = client_for(trader)
    response = client.post(reverse("bot-action", args=[flat.pk, "flatten"]), follow=True)
    assert "holds no BTC: nothing to flatten" in response.content.decode()
    add_fill(bot, timezone.now(), "buy", "100", "0.25", "0")
    response = client.post(reverse("bot-action", args=[bot.pk, "flatten"]), follow=True)
    assert "closing 0.25" in response.content.decode()
    bot.refresh_from_db()
    assert bot.desired_state == "stopped" and "flatten requested by" in bot.state_reason
    response = client.post(reverse("account-close-all", args=[bot.exchange_account.pk]), follow=True)
    body = response.content.decode()
    assert "closing every position (flat-me 0.25 BTC)." in body
    # A viewer of a shared bot may not flatten it.
    bot_share(bot=bot, actor=trader, users=[viewer])
    assert client_for(viewer).post(reverse("bot-action", args=[bot.pk, "flatten"])).status_code == 403
    # With the account's kill switch on, the closing order could not be placed: refused, named.
    from apps.bots.controls import account_kill_switch

    account_kill_switch(account=bot.exchange_account, actor=trader, on=True)
    response = client.post(reverse("bot-action", args=[bot.pk, "flatten"]), follow=True)
    assert "kill switch of account" in response.content.decode()


@pytest.mark.django_db
def test_account_kill_switch_buttons_ask_the_right_question(trader):
    from apps.bots.controls import account_kill_switch

    bot = make_bot(trader, name="k-bot")
    body = client_for(trader).get(reverse("overview")).content.decode()
    assert "Kill every bot on acct" in body
    account_kill_switch(account=bot.exchange_account, actor=trader, on=True)
    body = client_for(trader).get(reverse("overview")).content.decode()
    assert "Kill every bot on" not in body
    assert "Clear the kill switch of acct" in body


@pytest.mark.django_db
def test_operators_lift_the_global_kill_with_a_reason_traders_see(trader, operator):
    bot = make_bot(trader, name="g-bot")
    Bot.objects.filter(pk=bot.pk).update(desired_state="running")
    ops = client_for(operator)
    ops.post(reverse("global-kill"), {"confirm": "KILL", "reason": "venue outage"})
    bot.exchange_account.refresh_from_db()
    assert bot.exchange_account.kill_switch
    body = client_for(trader).get(reverse("overview")).content.decode()
    assert "Global kill switch <strong>ON</strong>" in body and "venue outage" in body and operator.username in body
    assert 'id="global-lift"' in ops.get(reverse("operators")).content.decode()
    # A lift needs a reason.
    response = ops.post(reverse("global-kill-lift"), {"reason": " "}, follow=True)
    assert "reason: required" in response.content.decode()
    bot.exchange_account.refresh_from_db()
    assert bot.exchange_account.kill_switch
    # A trader's own account kill, set apart from the global kill, stays on after the lift.
    from apps.bots.controls import account_kill_switch

    own = make_bot(trader, name="own-kill").exchange_account
    account_kill_switch(account=own, actor=trader, on=True, reason="mine")
    ops.post(reverse("global-kill-lift"), {"reason": "venue back, checked by ops"})
    bot.exchange_account.refresh_from_db()
    own.refresh_from_db()
    assert not bot.exchange_account.kill_switch and own.kill_switch
    body = client_for(trader).get(reverse("overview")).content.decode()
    assert "Global kill switch lifted" in body and "venue back, checked by ops" in body
    # Traders cannot lift it.
    assert client_for(trader).post(reverse("global-kill-lift"), {"reason": "x"}).status_code == 403


def test_bot_socket_pushes_the_bots_pnl(asgi_server, transactional_db):
    from tests.apps.dashboard.test_consumers import cookie_for, receive_until, ws

    alice = make_user("alice-pnl")
    bot = make_bot(alice, name="ws-pnl")
    add_fill(bot, timezone.now(), "buy", "100", "0.5", "0.05")

    headers = cookie_for(alice)

    async def run():
        url = ws(asgi_server, f"/ws/bot/{bot.pk}/")
        async with websockets.connect(url, additional_headers=headers, open_timeout=10) as socket:
            return await receive_until(socket, lambda m: m.get("type") == "pnl", timeout=10)

    message = asyncio.run(run())
    assert message["position"] == "0.5"
    # No mark but the fill's price: unrealized 0, total = -fees.
    assert message["mark_source"] == "last fill price"
    assert message["since_start"]["total"] == "-0.0500"
    assert json.dumps(message)
