"""The hosted paper venue's perpetual position (issue 18, ``workers/paper_perp.py``): liquidation at
the bankruptcy price with an incident, a notification and quoting stopped; position, margin,
funding and the liquidation surviving a take-over (Redis); a COIN-M (inverse) paper bot whose
PnL is in BTC.

Real in-process hosts, Redis and PostgreSQL; the loop is stepped through the replay feed's events
of the shipped recordings as in ``test_perp_hosted.py``, handling lifecycle commands between
cycles as ``BotRunner.run`` does. The mark is the book's mid: a crash is a book snapshot pushed
below the liquidation price.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

import pytest

pytestmark = [pytest.mark.django_db(transaction=True)]

TIMER_NS = 1_000_000_000
USDM = ("replay:binance-usdm", "BTC/USDT:USDT", "binance-usdm-btcusdt")
COINM = ("replay:binance-coinm", "BTC/USD:BTC", "binance-coinm-btcusd")
MARKETS = {
    USDM: {"base": "BTC", "quote": "USDT", "tick_size": "0.1", "lot_size": "0.001", "min_notional": "100",
           "maker_fee": "0.0002", "taker_fee": "0.0005", "kind": "linear", "contract_size": "1", "settle": "USDT",
           "max_leverage": 125},
    COINM: {"base": "BTC", "quote": "USD", "tick_size": "0.1", "lot_size": "1", "min_notional": "0",
            "maker_fee": "0.0002", "taker_fee": "0.0005", "kind": "inverse", "contract_size": "100", "settle": "BTC",
            "max_leverage": 125},
}  # fmt: skip


def feed_events(recording_name: str, minutes: float) -> list:
    """What the replay feed publishes for the first ``minutes`` of a shipped recording."""
    from connectors.binance_recording import RECORDINGS, iter_recording
    from trading.book import OrderBook, SequenceGap
    from trading.events import TradeTick
    from workers import codec
    from workers.books import apply_to_book
    from workers.feeds import TOP_N

    recording = RECORDINGS[recording_name]
    book, out, end = OrderBook(), [], None
    for ev in iter_recording(recording.paths, recording.instrument):
        end = end or ev.ts + int(minutes * 60 * 1_000_000_000)
        if ev.ts > end:
            break
        if type(ev) is TradeTick:
            out.append(codec.decode(codec.encode_trade(ev)))
            continue
        try:
            changed = apply_to_book(book, ev)
        except SequenceGap:
            continue
        bids, asks = book.top(TOP_N) if changed else ((), ())
        if bids and asks:
            out.append(codec.decode(codec.encode_snapshot(ev.ts, bids, asks)))
    return out


def make_bot(market_key, balances: dict, perp: dict, params: dict, name: str = "paper perp"):
    from apps.accounts.models import User
    from apps.bots.models import Bot
    from apps.bots.services import bot_create
    from apps.exchanges.models import Market
    from apps.exchanges.services import exchange_account_create

    venue, symbol, _ = market_key
    user = User.objects.create_user(username=f"pp-{abs(hash(name)) % 10**6}", password="pw-12345678")
    account = exchange_account_create(owner=user, label="paper perp", venue=venue, paper_balances=balances)
    market, _ = Market.objects.get_or_create(venue=venue, symbol=symbol, defaults=MARKETS[market_key])
    market.refresh_from_db()
    bot = bot_create(
        owner=user, name=name, exchange_account=account, market=market, strategy="fixed_spread",
        params={"bid_spread": "0.00002", "ask_spread": "0.05", "order_levels": 1, "refresh_time": "1"} | params,
        risk={"max_position_base": "100000", "perp": perp},
    )  # fmt: skip
    Bot.objects.filter(pk=bot.pk).update(desired_state="running")
    return user, account, bot


async def drive(host, bot_id: int, events: list):
    """Start the bot's loop on ``host`` and step it through ``events`` (commands handled before
    each event, as the loop does; the timer and snapshot steps every second of event time).
    Returns the runner, still owning."""
    from trading.events import BookSnapshot
    from workers import keys
    from workers.botloop import BotRunner
    from workers.leases import Lease

    lease = Lease(host.redis, keys.bot_lease(bot_id), keys.bot_fence(bot_id), host.host_id, host.ttl_ms)
    assert await lease.acquire()
    bot = BotRunner(host, bot_id, lease)
    host.bots[bot_id] = bot
    now = [events[0].ts]
    bot.clock = lambda: now[0]
    await bot._start()
    book = host.book(bot.setup.venue, bot.setup.symbol)
    next_timer = events[0].ts + TIMER_NS
    for ev in events:
        while ev.ts >= next_timer:
            now[0] = next_timer
            bot.runner.timer(next_timer)
            await bot._flush()
            bot._flush_notes()
            bot._snapshot(next_timer)
            next_timer += TIMER_NS
        while bot.controls:
            await bot._control(bot.controls.popleft())
        now[0] = ev.ts
        if type(ev) is BookSnapshot:
            book.apply_snapshot(ev)
        bot.push_market((ev, 0))
        await bot._cycle()
    bot._flush_notes()
    bot._snapshot(events[-1].ts)
    while bot.controls:
        await bot._control(bot.controls.popleft())
    await asyncio.sleep(0.2)  # the fenced state write (a task)
    return bot


async def leave(host, bot) -> None:
    host.bots.pop(bot.bot_id, None)
    for subs in host.subscribers.values():
        subs.discard(bot)
    await bot.venue.close()
    await bot.lease.release()


def run(host, coro, timeout: float = 600):
    return asyncio.run_coroutine_threadsafe(coro, host.loop).result(timeout)


def stored_state(bot) -> dict:
    from workers import lifecycle, paper_perp

    raw = lifecycle.redis_client().hget(
        paper_perp.state_key(bot.exchange_account_id, bot.market.symbol, bot.pk), "state"
    )
    return json.loads(raw)


def test_paper_liquidation_closes_at_bankruptcy_with_incident_notification_and_quoting_stopped(host):
    """20x isolated on 300 USDT: the bot bids and fills for a minute, then the book drops 10 %.
    At the next snapshot step the paper venue closes the long at the bankruptcy price (the
    backtester's formula: the position's isolated margin is used up, the rest of the 300 USDT
    stays), books the loss, writes an incident and
    a risk-breach notification, and the bot pauses with the reason and cancels its quotes; a
    new owner keeps it paused and flat."""
    from django.test import Client
    from django.urls import reverse

    from apps.bots.models import Bot, BotEvent
    from apps.core.models import Incident
    from apps.notifications.models import Delivery
    from apps.notifications.services import channel_create, rule_create
    from apps.orders.models import Fill, Order
    from apps.portfolio.bot_pnl import bot_pnl, fills_with_realized
    from trading.contracts import to_decimal
    from trading.margin import bankruptcy_price

    user, _account, bot = make_bot(
        USDM, {"USDT": "300"}, {"leverage": 20, "margin_mode": "isolated"}, {"order_amount": "0.01"}
    )
    channel = channel_create(owner=user, kind="email", name="mail", config={"address": "trader@example.com"})
    rule_create(owner=user, event_kind="risk_breach", channels=[channel])
    events = feed_events(USDM[2], 1.5)
    runner = run(host, drive(host, bot.pk, events[: len(events) // 2]))
    try:
        perp = runner.engine.perp
        pos = perp.position
        lots, entry, liq = pos.net_lots, pos.entry_price(), perp.liquidation
        assert lots > 0 and liq is not None and liq < entry, (lots, liq)
        wallet_balance = perp.isolated.wallet  # the position's own margin (isolated)
        assert 0 < wallet_balance < 300
        contracts = pos.contracts(lots)
        realized_before = pos.realized
        crash = to_decimal(liq * Fraction(9, 10), 1)
        run(host, drive_more(host, runner, events[len(events) // 2 :], crash))
        host.drain_writers(30)
        # Closed at the bankruptcy price: the isolated margin at that price is 0, and only it is lost.
        price = bankruptcy_price(perp.spec, wallet_balance, contracts, entry)
        assert pos.net_lots == 0 and runner.paper_perp.liquidated is not None
        assert pos.realized - realized_before == perp.spec.pnl(contracts, entry, price) == -wallet_balance
        assert perp.wallet + pos.realized + pos.funding - pos.fees > 0
        liquidated = stored_state(bot)["liquidated"]
        assert Decimal(liquidated["bankruptcy_price"]) == to_decimal(price, 8)
        assert Decimal(liquidated["liquidation_price"]) > crash
        assert liquidated["ts"] == events[-1].ts + 1  # on the crashing book event's cycle
        # Incident, notification and the event log.
        incident = Incident.objects.get(bot=bot, kind="liquidation")
        assert incident.owner == user and "bankruptcy price" in incident.message
        delivery = Delivery.objects.get(channel=channel, event_kind="risk_breach")
        assert delivery.dedupe_key.startswith(f"liquidation:{bot.pk}:") and "liquidated" in delivery.payload["subject"]
        event = BotEvent.objects.get(bot=bot, kind="perp", code="liquidated")
        assert event.message.startswith("liquidated: mark") and event.data["settle"] == "USDT"
        print(event.message)
        # Quoting stopped: paused with the reason, nothing working at the venue or in the engine.
        paused = BotEvent.objects.filter(bot=bot, kind="lifecycle", code="paused").values_list("message", flat=True)
        assert [m for m in paused if m.startswith("liquidated: mark")], list(paused)
        assert runner.state == "paused" and not runner.engine.orders.orders
        assert runner.engine.portfolio.position == 0  # what the strategy's inventory reads
        state = Bot.objects.get(pk=bot.pk)
        assert state.actual_state == "paused" and "liquidated" in state.state_reason
        assert not run(host, runner.venue.fetch_open_orders())
        assert state.risk_paused_by == "liquidation" and state.risk_paused_reason.startswith("liquidated")
        placed = Order.objects.filter(bot=bot).count()
        # The close is a Fill row, flagged, at the bankruptcy price, with the loss booked.
        loss = pos.realized - realized_before
        liq_fill = Fill.objects.get(bot=bot, liquidity="liq")
        assert liq_fill.venue_trade_id == f"liquidation-{liquidated['ts']}" and liq_fill.client_order_id == ""
        assert liq_fill.side == "sell" and liq_fill.quantity == runner.setup.instrument.quantity(lots)
        assert liq_fill.price == Decimal(liquidated["bankruptcy_price"]) and liq_fill.fee == 0
        assert liq_fill.realized_pnl == to_decimal(loss, 18) < 0 and liq_fill.fee_currency == "USDT"
    finally:
        run(host, leave(host, runner))
    # In the bot's trade log and its PnL from fills like any fill: the position is flat after it.
    at = liq_fill.ts + timedelta(seconds=1)  # the recording's day
    log = fills_with_realized(user=user, bot_id=bot.pk, now=at)
    assert log[0]["id"] == liq_fill.id and log[0]["liquidity"] == "liq" and log[0]["realized"] < 0
    pnl = bot_pnl(user=user, bot_id=bot.pk, now=at)
    assert pnl["position"] == 0 and pnl["since_start"]["fills"] == Fill.objects.filter(bot=bot).count()
    client = Client()
    client.force_login(user)
    page = client.get(reverse("bot-detail", args=[bot.pk])).content.decode()
    assert f'<tr data-fill="{liq_fill.id}">' in page and 'class="badge liquidation"' in page
    # A new owner starts it paused (the risk pause), flat, with the liquidation kept.
    from workers.host import Host

    other = Host(ttl_ms=3000)
    other.start_thread()
    assert other.started.wait(5)
    try:
        again = run(other, drive(other, bot.pk, events[-20:]))
        try:
            assert again.state == "paused" and again.engine.perp.position.net_lots == 0
            assert again.paper_perp.liquidated == liquidated
            assert again.engine.perp.position.realized == pos.realized
            assert again.engine.portfolio.position == 0  # the fills plus the liquidation close
        finally:
            run(other, leave(other, again))
        other.drain_writers(30)
    finally:
        other.stop()
    assert Order.objects.filter(bot=bot).count() == placed  # the paused owner placed nothing
    assert Fill.objects.filter(bot=bot, liquidity="liq").count() == 1  # the take-over did not write it again
    # An owner that died before its writer committed the row: the next owner writes it, once.
    Fill.objects.filter(pk=liq_fill.pk).delete()
    for _ in range(2):
        third = Host(ttl_ms=3000)
        third.start_thread()
        assert third.started.wait(5)
        try:
            again = run(third, drive(third, bot.pk, events[-5:]))
            try:
                assert again.engine.portfolio.position == 0 and again.engine.perp.position.net_lots == 0
                assert again.engine.perp.position.realized == pos.realized
            finally:
                run(third, leave(third, again))
            third.drain_writers(30)
        finally:
            third.stop()
        rewritten = Fill.objects.get(bot=bot, liquidity="liq")
        assert (rewritten.ts, rewritten.price, rewritten.realized_pnl) == (
            liq_fill.ts, liq_fill.price, liq_fill.realized_pnl
        )  # fmt: skip


async def drive_more(host, bot, events: list, crash_to: Decimal) -> None:
    """Continue an owning runner (``drive``'s) through more events, then the crash."""
    from trading.events import BookSnapshot

    inst = bot.setup.instrument
    tick = inst.ticks(crash_to)
    last = events[-1].ts
    crash = BookSnapshot(last + 1, ((tick - 1, 10**6),), ((tick + 1, 10**6),))
    events = [*events, crash, BookSnapshot(last + 2 * TIMER_NS + 1, crash.bids, crash.asks)]
    book = host.book(bot.setup.venue, bot.setup.symbol)
    now = [events[0].ts]
    bot.clock = lambda: now[0]
    next_timer = (events[0].ts // TIMER_NS + 1) * TIMER_NS
    for ev in events:
        while ev.ts >= next_timer:
            now[0] = next_timer
            bot.runner.timer(next_timer)
            await bot._flush()
            bot._flush_notes()
            bot._snapshot(next_timer)
            next_timer += TIMER_NS
        while bot.controls:
            await bot._control(bot.controls.popleft())
        now[0] = ev.ts
        if type(ev) is BookSnapshot:
            book.apply_snapshot(ev)
        bot.push_market((ev, 0))
        await bot._cycle()
    while bot.controls:
        await bot._control(bot.controls.popleft())
    await asyncio.sleep(0.2)


def test_paper_position_margin_and_funding_survive_a_take_over(host):
    """A long is built, funding is booked at a stored time inside the window, and the owner dies
    right after (no PnL snapshot after the funding). The new owner restores the position, entry,
    realized, fees and the funding from the venue's Redis state and applies only the fills after
    it: the same position, margin used, liquidation price and funding."""
    from apps.derivatives.models import FundingRate
    from apps.portfolio.models import PnlSnapshot

    _user, _account, bot = make_bot(
        USDM, {"USDT": "5000"}, {"leverage": 5, "margin_mode": "isolated"}, {"order_amount": "0.01"}, name="takeover"
    )
    events = feed_events(USDM[2], 2)
    funding_at = datetime.fromtimestamp((events[len(events) * 3 // 4].ts // TIMER_NS), tz=UTC)
    FundingRate.objects.create(venue=USDM[0], symbol=USDM[1], ts=funding_at, rate=Decimal("0.001"), source="csv")
    funding_ns = int(funding_at.timestamp()) * TIMER_NS
    # Stop right after the funding time, before the snapshot step records it.
    cut = next(i for i, e in enumerate(events) if e.ts > funding_ns) + 1
    runner = run(host, drive(host, bot.pk, events[:cut]))
    try:
        perp = runner.engine.perp
        figures = perp.snapshot()
        funding = perp.position.funding
        assert perp.position.net_lots > 0 and funding < 0, (perp.position.net_lots, funding)
        state = stored_state(bot)
        assert Fraction(state["funding"]) == funding and state["legs"]["both"][0] == perp.position.net_lots
        # the isolated wallet (initial margin plus the funding, which was paid from it) is stored too
        isolated = perp.isolated.wallet
        assert Fraction(state["isolated"]) == isolated and 0 < isolated < 5000
        used = perp.position.margin_used(perp.mark)
    finally:
        run(host, leave(host, runner))
    host.drain_writers(30)
    # The PnL snapshots (where funding was recovered from before) are lost with the process: the
    # venue's state alone carries the funding.
    PnlSnapshot.objects.filter(bot=bot).delete()
    from workers.host import Host

    other = Host(ttl_ms=3000)
    other.start_thread()
    assert other.started.wait(5)
    try:
        again = run(other, drive(other, bot.pk, events[cut : cut + 1]))
        try:
            p2 = again.engine.perp
            assert p2.position.net_lots == perp.position.net_lots
            assert p2.position.entry_price() == perp.position.entry_price()
            assert (p2.position.realized, p2.position.fees, p2.position.funding) == (
                perp.position.realized, perp.position.fees, funding
            )  # fmt: skip
            assert p2.isolated.wallet == isolated and p2.liquidation == perp.liquidation
            assert p2.position.margin_used(perp.mark) == used
            assert again.engine.perp.snapshot()["liquidation_price"] == figures["liquidation_price"]
        finally:
            run(other, leave(other, again))
        other.drain_writers(30)
    finally:
        other.stop()


def test_coinm_paper_bot_on_the_coinm_recording_has_inverse_pnl_in_btc(host):
    """``replay:binance-coinm`` ``BTC/USD:BTC`` (the COIN-M recording converted from the USD-M one):
    the bot quotes and fills in whole 100 USD contracts and its PnL, margin and funding are in BTC,
    by the inverse formula: realized + unrealized = contracts x 100 x (1/entry - 1/mark)."""
    from apps.orders.models import Fill
    from apps.portfolio.models import PnlSnapshot

    _user, _account, bot = make_bot(
        COINM, {"BTC": "0.05"}, {"leverage": 5, "margin_mode": "isolated"}, {"order_amount": "1"}, name="coinm"
    )
    events = feed_events(COINM[2], 1.5)
    runner = run(host, drive(host, bot.pk, events))
    try:
        perp = runner.engine.perp
        pos = perp.position
        assert perp.spec.inverse and perp.spec.settle == "BTC" and perp.spec.contract_size == 100
        fills = list(Fill.objects.filter(bot=bot).order_by("ts", "id"))
        assert fills and all(f.quantity == f.quantity.to_integral_value() for f in fills)
        net = sum((f.quantity if f.side == "buy" else -f.quantity) for f in fills)
        assert pos.net_lots == int(net) > 0
        # Inverse PnL in BTC against the exact fills (no sells: all of it unrealized).
        mark = perp.mark
        basis = sum(Fraction(int(f.quantity)) / Fraction(f.price) for f in fills if f.side == "buy")
        expected = Fraction(100) * (basis - Fraction(int(net)) / mark)
        assert pos.unrealized(mark) == expected
        assert perp.spec.pnl(int(net), pos.entry_price(), mark) == expected
        # Margin in BTC: notional / leverage = contracts x 100 / mark / 5.
        assert pos.margin_used(mark) == Fraction(int(net)) * 100 / mark / 5
        figures = perp.snapshot()
        assert figures["settle"] == "BTC"
    finally:
        run(host, leave(host, runner))
    host.drain_writers(30)
    snap = PnlSnapshot.objects.filter(bot=bot).order_by("-ts").first()
    assert snap.position == net
    assert abs(snap.unrealized - Decimal(expected.numerator) / Decimal(expected.denominator)) < Decimal("1e-8")
    assert snap.equity < Decimal("0.06")  # BTC, not USD


def test_fills_after_the_stored_position_are_told_apart_to_the_microsecond():
    """The stored position names the microsecond of its newest fills and their trade ids (the
    database keeps microseconds): a new owner applies a fill later than that, or in that
    microsecond with another id, and never one the position already holds."""
    from workers.paper_perp import after, last_fill

    recent = [(1_000_000_123, "a"), (1_000_000_999, "b"), (1_000_001_000, "c"), (1_000_001_500, "d")]
    marker = last_fill(recent)
    assert marker == [1_000_001, ["c", "d"]]
    db_rows = [(1_000_000_000, "a"), (1_000_000_000, "b"), (1_000_001_000, "c"), (1_000_001_000, "d"),
               (1_000_001_000, "e"), (1_000_002_000, "f")]  # fmt: skip
    assert [f[-1] for f in after(db_rows, marker)] == ["e", "f"]
    assert after(db_rows, None) == db_rows
