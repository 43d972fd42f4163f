"""A hosted paper bot on a perpetual market (issue 18): ``replay:binance-usdm`` ``BTC/USDT:USDT``.

The bot's loop (``workers.botloop.BotRunner``) is started by a real in-process host against the
real Redis and PostgreSQL and stepped as in ``test_runtime_parity``: the replay feed's events of
the shipped USD-M recording (top-20 snapshots and trades, through ``workers.codec``), one cycle
per event, the timer and snapshot steps every second of the events' clock. The bot only bids
(its asks, 5 % away, are refused by the spot price band), so it builds a long position until its
margin runs out; a funding time is stored inside the window. Checked: it quotes and fills in contracts, the order its margin
cannot carry is refused with the figures (a bot event), funding is booked on the position at the
stored time with the documented sign and amount (a bot event, and in the PnL snapshots'
``funding`` column), and the bot page and API show the perpetual figures.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

pytestmark = [pytest.mark.django_db(transaction=True)]

MINUTES = 4
TIMER_NS = 1_000_000_000
VENUE, SYMBOL = "replay:binance-usdm", "BTC/USDT:USDT"
FUNDING_RATE = Decimal("0.0005")


def usdm_feed_events(instrument, minutes: int) -> list:
    """What the replay feed publishes for the first ``minutes`` of the USD-M recording."""
    from connectors.binance_recording import RECORDINGS, iter_recording
    from trading.book import OrderBook, SequenceGap
    from trading.events import TradeTick
    from workers import codec
    from workers.books import apply_to_book
    from workers.feeds import TOP_N

    recording = RECORDINGS["binance-usdm-btcusdt"]
    # The market's tick and lot are the recording's: the feed publishes the events unconverted.
    assert (recording.instrument.tick_size, recording.instrument.lot_size) == (
        instrument.tick_size,
        instrument.lot_size,
    )
    book = OrderBook()
    out: list = []
    end = None
    for ev in iter_recording(recording.paths, recording.instrument):
        if end is None:
            end = ev.ts + minutes * 60 * 1_000_000_000
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


async def hosted_run(host, bot_id: int, events: list) -> dict:
    """Start the bot's loop on ``host`` and step it through ``events``; returns its last status."""
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
    try:
        await bot._start()
        book = host.book(bot.setup.venue, bot.setup.symbol)
        runner = bot.runner
        next_due = bot.venue.matching.next_due
        next_timer = events[0].ts + TIMER_NS
        for ev in events:
            while ev.ts >= next_timer:
                now[0] = next_timer
                runner.timer(next_timer)
                await bot._flush()
                bot._flush_notes()
                bot._snapshot(next_timer)
                next_timer += TIMER_NS
            due = next_due()
            while due is not None and due < ev.ts:
                now[0] = max(now[0], due)
                await bot._answers_due(now[0])
                due = next_due()
            now[0] = ev.ts
            if type(ev) is BookSnapshot:
                book.apply_snapshot(ev)
            bot.push_market((ev, 0))
            await bot._cycle()
        await bot._answers_due(events[-1].ts)
        bot._flush_notes()
        bot._snapshot(events[-1].ts)
        return {"perp": bot.engine.perp, "lot": bot.setup.instrument.lot_size}
    finally:
        host.bots.pop(bot_id, None)
        for subs in host.subscribers.values():
            subs.discard(bot)
        await lease.release()


async def taken_over(host, bot_id: int, now: int, new_funding=None) -> tuple[dict, int | None]:
    """A new owner's take-over of the bot (its start only): its perpetual figures; with
    ``new_funding`` (a FundingRate's fields) stored afterwards, the series re-read by the loop's
    refresh and the next funding time the bot then sees."""
    from workers import keys
    from workers.botloop import BotRunner
    from workers.leases import Lease

    lease = Lease(host.redis, keys.bot_lease(bot_id), keys.bot_fence(bot_id), host.host_id, host.ttl_ms)
    assert await lease.acquire()
    bot = BotRunner(host, bot_id, lease)
    bot.clock = lambda: now
    try:
        await bot._start()
        figures = bot.engine.perp.snapshot()
        if new_funding is None:
            return figures, None
        from apps.derivatives.models import FundingRate
        from workers import perp_hosting

        await host.db_setup.call(lambda: FundingRate.objects.create(**new_funding))
        await perp_hosting.hosting(bot)._refresh()
        engine = bot.engine
        engine.perp.evaluate(now + 1, engine.status, None, engine.ctx)
        return figures, engine.ctx.next_funding_ts
    finally:
        for subs in host.subscribers.values():
            subs.discard(bot)
        await bot.venue.close()
        await lease.release()


def make_perp_bot(wallet: str = "1500", perp: dict | None = None):
    from apps.accounts.models import User
    from apps.bots.models import Bot
    from apps.bots.services import bot_create
    from apps.exchanges.models import Market
    from apps.exchanges.services import exchange_account_create

    user = User.objects.create_user(username="perp-trader", password="pw-12345678")
    account = exchange_account_create(owner=user, label="paper usdm", venue=VENUE, paper_balances={"USDT": wallet})
    market, _ = Market.objects.get_or_create(
        venue=VENUE,
        symbol=SYMBOL,
        defaults={"base": "BTC", "quote": "USDT", "tick_size": "0.1", "lot_size": "0.001", "min_notional": "100",
                  "maker_fee": "0.0002", "taker_fee": "0.0005", "kind": "linear", "contract_size": "1", "settle": "USDT",
                  "max_leverage": 125},
    )  # fmt: skip
    market.refresh_from_db()  # decimals, not the strings given (transactional tests flush the seeded row)
    bot = bot_create(
        owner=user,
        name="perp bidder",
        exchange_account=account,
        market=market,
        strategy="fixed_spread",
        params={"order_amount": "0.01", "bid_spread": "0.00002", "ask_spread": "0.05", "order_levels": 1,
                "refresh_time": "1"},
        risk={"max_order_size": "0.02", "max_position_base": "5",
              "perp": perp or {"leverage": 2, "margin_mode": "isolated", "limits": {"max_position_contracts": "2"}}},
    )  # fmt: skip
    Bot.objects.filter(pk=bot.pk).update(desired_state="running")
    return user, account, bot


def test_hosted_paper_perp_bot_quotes_in_contracts_refuses_past_margin_and_books_funding(host, client):
    from apps.bots.models import BotEvent
    from apps.derivatives.models import FundingRate
    from apps.orders.models import Fill, Order
    from apps.portfolio.models import PnlSnapshot
    from workers import records

    user, _account, bot = make_perp_bot()
    setup = records.bot_setup(bot.pk)
    events = usdm_feed_events(setup.instrument, MINUTES)
    assert events[-1].ts - events[0].ts > (MINUTES - 1) * 60 * 1_000_000_000
    # A funding time inside the window, stored for the bot's market (the loop reads the series).
    funding_ns = events[0].ts + (MINUTES - 1) * 60 * 1_000_000_000
    funding_at = datetime.fromtimestamp(funding_ns // 1_000_000_000, tz=UTC)
    funding_ns = int(funding_at.timestamp()) * 1_000_000_000
    FundingRate.objects.create(venue=VENUE, symbol=SYMBOL, ts=funding_at, rate=FUNDING_RATE, source="csv")
    after = funding_at + timedelta(hours=8)  # the next one, after the window: the page shows it
    FundingRate.objects.create(venue=VENUE, symbol=SYMBOL, ts=after, rate=FUNDING_RATE, source="csv")

    out = asyncio.run_coroutine_threadsafe(hosted_run(host, bot.pk, events), host.loop).result(600)
    host.drain_writers(60)
    perp, lot = out["perp"], out["lot"]

    # It quoted and filled; its position is in contracts (lots of 0.001 BTC contracts).
    assert Order.objects.filter(bot=bot).count() >= 3
    fills = list(Fill.objects.filter(bot=bot).order_by("ts", "id"))
    assert fills, "the bot never filled"
    net = sum((f.quantity if f.side == "buy" else -f.quantity) for f in fills)
    assert net > 0
    assert Decimal(perp.position.net_lots) * lot == net
    assert perp.funding_source == "stored series"

    # An order beyond the margin was refused with the figures.
    refused = BotEvent.objects.filter(bot=bot, kind="risk_reject", code="insufficient_margin").first()
    assert refused is not None, list(BotEvent.objects.filter(bot=bot).values_list("code", "message")[:20])
    assert "initial margin at 2x; free margin is" in refused.message and "USDT" in refused.message

    # Funding booked at the stored time: a long pays at a positive rate, notional at the mark x rate.
    (event,) = BotEvent.objects.filter(bot=bot, kind="funding")
    assert event.code == "funding_paid" and event.data["funding_ts"] == funding_ns
    held = sum((f.quantity if f.side == "buy" else -f.quantity) for f in fills if f.ts <= funding_at)
    assert held > 0 and Decimal(event.data["position_contracts"]) == held
    amount = Decimal(event.data["amount"])
    assert amount == -(held * Decimal(event.data["mark"]) * FUNDING_RATE)
    assert Decimal(event.data["rate"]) == FUNDING_RATE
    # ... and in the PnL snapshots, separately from realized/unrealized/fees.
    before = PnlSnapshot.objects.filter(bot=bot, ts__lt=funding_at).order_by("-ts").first()
    last = PnlSnapshot.objects.filter(bot=bot).order_by("-ts").first()
    assert before.funding == 0 and last.funding == amount
    assert last.position == net
    assert last.equity == Decimal("1500") + last.realized + last.unrealized + last.funding - last.fees

    # The bot page and the API show the figures (from the owner's live status).
    from apps.dashboard import live
    from apps.dashboard.templatetags.dashboard import num
    from tests.workers.helpers import wait_until

    def shown_funding() -> Decimal:
        return Decimal(((live.bot_status(bot_id=bot.pk) or {}).get("perp") or {}).get("funding") or "0")

    assert wait_until(lambda: shown_funding() == amount, 10), shown_funding()
    client.force_login(user)
    figures = client.get(f"/api/v1/bots/{bot.pk}/perp/").json()
    assert Decimal(figures["position_contracts"]) == net
    assert figures["leverage"] == 2 and figures["margin_mode"] == "isolated" and figures["settle"] == "USDT"
    assert Decimal(figures["funding"]) == amount
    assert Decimal(figures["margin_used"]) > 0 and Decimal(figures["margin_free"]) < Decimal("1500")
    liq = Decimal(figures["liquidation_price"])
    mark = Decimal(figures["mark_price"])
    assert 0 < liq < Decimal(figures["entry_price"]) and figures["liquidation_distance"] == pytest.approx(
        float((mark - liq) / mark)
    )
    page = client.get(f"/bots/{bot.pk}/").content.decode()
    assert 'id="perp-position"' in page
    for field, text in (
        ("perp-contracts", f"{net.normalize():f}"),
        ("perp-leverage", "2x"),
        ("perp-liquidation", num(figures["liquidation_price"], 2)),
    ):
        assert f'id="{field}">{text}' in page, field
    assert "Funding paid" in page
    assert figures["next_funding"] == after.isoformat(timespec="seconds")
    assert f'id="perp-next-funding">{figures["next_funding"]}' in page

    # A new owner rebuilds the perpetual position from the recorded fills and the funding booked
    # so far from the last PnL snapshot: its margin and liquidation figures continue.
    from workers.host import Host

    other = Host(ttl_ms=3000)  # another host (this one's writers are drained and ended)
    other.start_thread()
    assert other.started.wait(5)
    try:
        inserted = funding_at + timedelta(hours=4)
        new_funding = {"venue": VENUE, "symbol": SYMBOL, "ts": inserted, "rate": FUNDING_RATE, "source": "csv"}
        again, next_ts = asyncio.run_coroutine_threadsafe(
            taken_over(other, bot.pk, events[-1].ts, new_funding), other.loop
        ).result(60)
    finally:
        other.stop()
    assert Decimal(again["position_contracts"]) == net and Decimal(again["funding"]) == amount
    assert again["entry_price"] == figures["entry_price"] and again["liquidation_price"] == figures["liquidation_price"]
    # A funding time stored while the bot runs is picked up by the periodic re-read.
    assert next_ts == int(inserted.timestamp()) * 1_000_000_000
    print(
        f"perp hosted: {len(events)} events, {Order.objects.filter(bot=bot).count()} orders, {len(fills)} fills, "
        f"position {net} contracts; refused: {refused.message}; funding: {event.message}; "
        f"liquidation {figures['liquidation_price']} ({figures['liquidation_distance']:.2%} from mark {mark})"
    )


def test_perp_settings_are_validated_by_name_and_a_wallet_is_required(host):
    """Bad perpetual settings are refused at creation naming the field, the value and what is
    accepted; perpetual settings on a spot market are refused; a paper account without the
    settle currency leaves the bot in ``error`` with the reason instead of quoting."""
    from apps.accounts.errors import FieldErrors
    from apps.bots.models import Bot
    from apps.bots.services import bot_update_config
    from tests.workers.helpers import ensure_market, wait_until

    user, account, bot = make_perp_bot()
    for perp, field, fragment in (
        ({"leverage": 200}, "perp.leverage", "125"),
        ({"margin_mode": "portfolio"}, "perp.margin_mode", "accepted: isolated, cross"),
        ({"wallet": "0"}, "perp.wallet", "above 0"),
        ({"funding_rate": "0.5"}, "perp.funding_rate", "up to 0.03"),
        ({"limits": {"min_liquidation_distance": "2"}}, "perp.limits.min_liquidation_distance", "0.9"),
    ):
        with pytest.raises(FieldErrors) as err:
            bot_update_config(bot=bot, actor=user, risk={"max_order_size": "0.02", "perp": perp})
        message = str(err.value.errors["risk"][field])
        assert fragment in message, (field, message)
    spot = ensure_market("sim:alpha")
    from apps.bots.services import bot_config_validate

    with pytest.raises(FieldErrors) as err:
        bot_config_validate(strategy="fixed_spread", params=bot.params, risk={"perp": {"leverage": 2}}, market=spot)
    assert "not a perpetual market" in str(err.value.errors["risk"]["perp"])

    # No USDT on the paper account: the loop refuses to start the bot, naming the balance.
    account.paper_balances = {"BTC": "1"}
    account.save(update_fields=["paper_balances"])
    from workers import supervisor

    supervisor.tick()
    assert wait_until(lambda: Bot.objects.get(pk=bot.pk).actual_state == "error", 20)
    reason = Bot.objects.get(pk=bot.pk).state_reason
    assert "paper_balances.USDT" in reason and "settles in USDT" in reason, reason


def test_hosted_perp_bot_pauses_near_liquidation_as_in_a_backtest(host):
    """At 50x isolated the liquidation price is about 1.6 % under the entry: with
    ``min_liquidation_distance`` 5 % the first fill pauses quoting (a ``liquidation_distance``
    breach in the event log naming mark, distance and liquidation price), and the bot buys no
    more while the breach holds."""
    from apps.bots.models import BotEvent
    from apps.orders.models import Fill
    from workers import records

    _user, _account, bot = make_perp_bot(
        perp={
            "leverage": 50,
            "margin_mode": "isolated",
            "funding_rate": "0",
            "limits": {"min_liquidation_distance": "0.05"},
        }
    )
    setup = records.bot_setup(bot.pk)
    events = usdm_feed_events(setup.instrument, 2)
    out = asyncio.run_coroutine_threadsafe(hosted_run(host, bot.pk, events), host.loop).result(600)
    host.drain_writers(60)
    perp = out["perp"]
    fills = list(Fill.objects.filter(bot=bot).order_by("ts"))
    assert fills, "the bot never filled"
    breach = BotEvent.objects.filter(bot=bot, kind="risk", code="liquidation_distance").order_by("ts").first()
    assert breach is not None, list(BotEvent.objects.filter(bot=bot).values_list("code", "message")[:20])
    assert "from the liquidation price" in breach.message and "limit 5.00%" in breach.message
    assert perp.too_close and perp.liquidation is not None
    # Nothing placed after the pause filled beyond the orders already working then.
    assert sum(f.quantity for f in fills if f.ts > breach.ts) <= Decimal("0.01")
    assert perp.funding_source == "constant rate (bot configuration)"


def test_supervisor_starts_a_perp_bot_on_the_replay_feed_and_its_status_carries_the_perp_figures(host, redis_client):
    """Fully hosted (the supervisor claims the bot, the host runs the replay feed at real speed and
    the loop on the wall clock): it quotes in contracts and its live status and PnL snapshots
    carry the perpetual figures, funding at the configured constant rate."""
    from apps.bots.models import Bot
    from apps.dashboard.perp import bot_perp
    from apps.portfolio.models import PnlSnapshot
    from tests.workers.helpers import wait_until
    from workers import keys, lifecycle, supervisor

    _user, account, bot = make_perp_bot(perp={"leverage": 3, "funding_rate": "0.0001"})
    params = {
        "order_amount": "0.01",
        "bid_spread": "0.001",
        "ask_spread": "0.001",
        "order_levels": 1,
        "refresh_time": "1",
    }
    Bot.objects.filter(pk=bot.pk).update(params=params)  # both sides, inside the price band
    supervisor.tick()
    assert wait_until(lambda: Bot.objects.get(pk=bot.pk).actual_state == "running", 30), Bot.objects.get(
        pk=bot.pk
    ).state_reason
    k_orders = keys.paper(account.pk, SYMBOL, "orders")
    from apps.bots.models import BotEvent

    assert wait_until(lambda: redis_client.hlen(k_orders) >= 2, 30), list(
        BotEvent.objects.filter(bot=bot).values_list("code", "message")[:10]
    )
    figures = wait_until(lambda: (bot_perp(bot_id=bot.pk) or {}).get("mark_price") and bot_perp(bot_id=bot.pk), 15)
    assert figures and figures["leverage"] == 3 and figures["funding_source"] == "constant rate (bot configuration)"
    assert Decimal(figures["funding_rate"]) == Decimal("0.0001")
    next_ts = int(datetime.fromisoformat(figures["next_funding"]).timestamp())
    assert next_ts % (8 * 3600) == 0 and 0 < next_ts - datetime.now(UTC).timestamp() <= 8 * 3600
    assert 50_000 < Decimal(figures["mark_price"]) < 70_000  # a BTC price from the replay, not an amount
    assert wait_until(lambda: PnlSnapshot.objects.filter(bot=bot, funding__isnull=False).exists(), 10)
    Bot.objects.filter(pk=bot.pk).update(desired_state="stopped")
    lifecycle.apply(bot.pk)
    assert wait_until(lambda: Bot.objects.get(pk=bot.pk).actual_state == "stopped", 20)
    assert redis_client.hlen(k_orders) == 0
