"""Beat jobs without worker processes: supervisor, risk sweep, reconciliation, housekeeping,
the demo seed and the schedules (real PostgreSQL and Redis)."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from apps.orders.services import fills_record, orders_create
from tests.workers.helpers import make_paper_bots

pytestmark = [pytest.mark.django_db(transaction=True)]


def _snap(bot, minutes_ago: float, equity: str, peak: str | None = None):
    from apps.portfolio.models import PnlSnapshot

    e = Decimal(equity)
    return PnlSnapshot.objects.create(
        ts=timezone.now() - timedelta(minutes=minutes_ago),
        bot=bot,
        position=Decimal(0),
        cash=e,
        mid=Decimal("60000"),
        realized=Decimal(0),
        unrealized=Decimal(0),
        fees=Decimal(0),
        equity=e,
        peak_equity=Decimal(peak or equity),
        drawdown=Decimal(0),
    )


def test_supervisor_wants_running_bots_and_their_feeds_and_tells_owners_of_stopped_bots_to_stop(clean_redis):
    from apps.bots.models import Bot
    from workers import keys, supervisor

    _user, _account, bots = make_paper_bots(2)
    running, stopped = bots
    Bot.objects.filter(pk=stopped.pk).update(desired_state="stopped", actual_state="running")
    clean_redis.set(keys.bot_lease(stopped.pk), "somehost:7", px=5000)
    pubsub = clean_redis.pubsub()
    pubsub.subscribe(keys.bot_control(stopped.pk))
    pubsub.get_message(timeout=1)
    counters = supervisor.tick()
    assert {int(x) for x in clean_redis.smembers(keys.bots_wanted())} == {running.pk}
    assert clean_redis.smembers(keys.feeds_wanted()) == {b"sim:alpha|BTC/USDT"}
    assert counters["stop_sent"] == 1
    message = pubsub.get_message(timeout=2)
    assert message and message["data"] == b"stop"


def test_supervisor_marks_a_running_bot_without_owner_as_waiting_for_take_over(clean_redis):
    from apps.bots.models import Bot, BotEvent
    from workers import supervisor

    _user, _account, (bot,) = make_paper_bots(1)
    Bot.objects.filter(pk=bot.pk).update(actual_state="running")
    supervisor.tick()
    bot.refresh_from_db()
    assert bot.actual_state == "starting"
    assert "take over" in bot.state_reason
    assert BotEvent.objects.filter(bot=bot, code="owner_lost").exists()


def test_dashboard_interest_keeps_a_feed_wanted_without_any_bot(clean_redis):
    from workers import keys, supervisor

    supervisor.register_feed_interest("sim:beta", "BTC/USDT", ttl_s=30)
    supervisor.tick()
    assert b"sim:beta|BTC/USDT" in clean_redis.smembers(keys.feeds_wanted())


def test_risk_sweep_pauses_on_daily_loss_with_a_reason_and_auto_resumes_when_cleared(clean_redis):
    from apps.bots.models import Bot, BotEvent
    from apps.core.models import Incident
    from workers import keys, risk

    _user, _account, (bot,) = make_paper_bots(1)
    Bot.objects.filter(pk=bot.pk).update(risk={"daily_loss_limit": "100"}, auto_resume=True)
    _snap(bot, 1, "10000")
    _snap(bot, 0, "9850")
    pubsub = clean_redis.pubsub()
    pubsub.subscribe(keys.bot_control(bot.pk))
    pubsub.get_message(timeout=1)
    assert risk.sweep()["paused"] == 1
    bot.refresh_from_db()
    assert bot.actual_state == "paused" and "daily loss 150.00 above the limit 100" in bot.state_reason
    # The pause is the bot's state in the database, not a Redis key.
    assert bot.risk_paused_reason == "daily loss 150.00 above the limit 100" and bot.risk_paused_at
    assert not list(clean_redis.scan_iter(match=f"{keys.prefix()}:bot:{bot.pk}:risk*"))
    assert pubsub.get_message(timeout=2)["data"] == b"pause"
    assert BotEvent.objects.filter(bot=bot, code="risk_pause").exists()
    assert Incident.objects.filter(bot=bot, kind="risk").count() == 1
    assert risk.sweep()["paused"] == 0  # already paused: no second incident
    _snap(bot, -0.01, "9950")  # back within the limit
    assert risk.sweep()["resumed"] == 1
    assert pubsub.get_message(timeout=2)["data"] == b"resume"
    assert BotEvent.objects.filter(bot=bot, code="risk_resume").exists()
    bot.refresh_from_db()
    assert (bot.risk_paused_reason, bot.risk_paused_at, bot.actual_state) == ("", None, "running")


def test_risk_sweep_pauses_on_trailing_drawdown_and_without_auto_resume_stays_paused(clean_redis):
    from apps.bots.models import Bot
    from workers import risk

    _user, _account, (bot,) = make_paper_bots(1)
    Bot.objects.filter(pk=bot.pk).update(risk={"max_drawdown": "50"}, auto_resume=False)
    _snap(bot, 2, "10000")
    _snap(bot, 1, "10200", peak="10200")
    _snap(bot, 0, "10120", peak="10200")
    assert risk.sweep()["paused"] == 1
    bot.refresh_from_db()
    assert "drawdown 80.00 from peak equity 10200.00" in bot.state_reason
    _snap(bot, -0.01, "10190", peak="10200")
    assert risk.sweep()["resumed"] == 0
    assert Bot.objects.get(pk=bot.pk).risk_paused_reason.startswith("drawdown 80.00")  # until the trader resumes


def test_owners_of_a_risk_paused_bot_are_told_to_pause_never_to_resume(clean_redis):
    """The supervisor and ``lifecycle.apply`` read the risk pause from the bot's row: a loop that
    reports running is told to pause (the sweep's message was lost), and a re-applied desired
    state running sends pause, not resume."""
    from apps.bots.models import Bot
    from apps.bots.risk_pause import bot_risk_pause
    from workers import keys, lifecycle, supervisor

    _user, _account, (bot,) = make_paper_bots(1)
    assert bot_risk_pause(bot.pk, "daily loss 150.00 above the limit 100", time.time_ns())
    clean_redis.set(keys.bot_lease(bot.pk), "somehost:7", px=5000)
    clean_redis.set(keys.bot_status(bot.pk), json.dumps({"state": "running"}), ex=30)
    pubsub = clean_redis.pubsub()
    pubsub.subscribe(keys.bot_control(bot.pk))
    pubsub.get_message(timeout=1)
    supervisor.tick()
    assert pubsub.get_message(timeout=2)["data"] == b"pause"
    assert lifecycle.apply(bot.pk) == "paused"
    assert pubsub.get_message(timeout=2)["data"] == b"pause"
    clean_redis.set(keys.bot_status(bot.pk), json.dumps({"state": "paused"}), ex=30)
    supervisor.tick()  # paused as it must be: nothing sent, and never a resume
    assert pubsub.get_message(timeout=1) is None
    assert Bot.objects.get(pk=bot.pk).risk_paused_at is not None


def test_reconciliation_cancels_orphans_records_missing_fills_and_closes_vanished_orders(clean_redis):
    from apps.core.models import Incident
    from apps.orders.models import Fill, Order
    from trading.events import PlaceOrder
    from trading.instruments import Side
    from workers import keys, reconcile, records

    _user, account, (bot,) = make_paper_bots(1)
    bot.refresh_from_db()
    inst = records.market_instrument(bot.market)
    prefix = bot.client_id_prefix
    k_orders = keys.paper(account.pk, "BTC/USDT", "orders")
    k_trades = keys.paper(account.pk, "BTC/USDT", "trades")
    # An order on the venue the database does not know (orphan) ...
    clean_redis.hset(k_orders, f"{prefix}-zz", json.dumps({"cid": f"{prefix}-zz", "voi": "x", "side": 1,
                                                           "price": 6_000_000, "qty": 100, "filled": 0, "ts": 1}))  # fmt: skip
    # ... a database order the venue no longer has, which the venue's trades show filled ...
    orders_create([(bot.pk, account.pk, bot.market_id, inst, PlaceOrder(f"{prefix}-1", Side.BUY, 6_000_000, 100))])
    Order.objects.filter(client_order_id=f"{prefix}-1").update(updated=timezone.now() - timedelta(minutes=5))
    ts = time.time_ns() - (reconcile.GRACE_S + 5) * 1_000_000_000  # past the fills' grace period
    clean_redis.rpush(k_trades, json.dumps({"cid": f"{prefix}-1", "voi": "v", "side": 1, "price": 6_000_000,
                                            "qty": 100, "leaves": 0, "fee": 0, "maker": True, "ts": ts, "id": "p-1"}))  # fmt: skip
    result = reconcile.run()
    assert result["orphans"] == 1 and result["fills"] == 1 and result["closed"] == 1
    assert clean_redis.hlen(k_orders) == 0
    assert Fill.objects.get(venue_trade_id="p-1").quantity == Decimal("0.0100")
    assert Order.objects.get(client_order_id=f"{prefix}-1").status == "filled"
    assert set(Incident.objects.filter(bot=bot).values_list("kind", flat=True)) == {
        "orphan_order",
        "missing_fill",
        "missing_order",
    }
    # Balances: the venue's (paper balances + fills) replace the database's.
    from apps.portfolio.models import Balance

    assert Balance.objects.filter(account=account, asset="USDT").exists()
    again = reconcile.run()  # nothing new: idempotent
    assert again["orphans"] == 0 and again["fills"] == 0 and again["closed"] == 0


def test_reconciliation_leaves_fills_still_in_flight_to_the_writer_until_the_grace_period_ends(clean_redis):
    from apps.core.models import Incident
    from apps.orders.models import Fill
    from workers import keys, reconcile

    _user, account, (bot,) = make_paper_bots(1)
    bot.refresh_from_db()
    k_trades = keys.paper(account.pk, "BTC/USDT", "trades")
    now = time.time_ns()
    for trade_id, age_s in (("young-1", 0.02), ("young-2", 0.35), ("young-3", reconcile.GRACE_S - 5)):
        clean_redis.rpush(k_trades, json.dumps({"cid": f"{bot.client_id_prefix}-1", "voi": "v", "side": 1,
                                                "price": 6_000_000, "qty": 10, "leaves": 90, "fee": 0,
                                                "maker": True, "ts": now - int(age_s * 1e9), "id": trade_id}))  # fmt: skip
    result = reconcile.run()
    assert result["bots"] == 1 and result["fills"] == 0
    assert not Fill.objects.filter(account=account).exists()
    assert not Incident.objects.filter(bot=bot, kind="missing_fill").exists()
    # Later (the same trades, stamped GRACE_S + 1 s back instead of waiting): the writer has
    # recorded one of them; the other two are missing for real and are recorded with an incident.
    from workers import records

    inst = records.market_instrument(bot.market)
    old = now - (reconcile.GRACE_S + 1) * 1_000_000_000
    clean_redis.delete(k_trades)
    for trade_id in ("young-1", "young-2", "young-3"):
        clean_redis.rpush(k_trades, json.dumps({"cid": f"{bot.client_id_prefix}-1", "voi": "v", "side": 1,
                                                "price": 6_000_000, "qty": 10, "leaves": 90, "fee": 0,
                                                "maker": True, "ts": old, "id": trade_id}))  # fmt: skip
    fills_record(
        [{"ts": records.ns_to_dt(old), "account_id": account.pk, "bot_id": bot.pk,
          "client_order_id": f"{bot.client_id_prefix}-1", "venue_trade_id": "young-1", "side": "buy",
          "price": inst.price(6_000_000), "quantity": inst.quantity(10), "fee": inst.cash(0),
          "fee_currency": inst.quote, "liquidity": "maker"}],
        count_new=True,
    )  # fmt: skip
    result = reconcile.run()
    assert result["fills"] == 2
    incident = Incident.objects.get(bot=bot, kind="missing_fill")
    assert incident.data["trade_ids"] == ["young-2", "young-3"]


def test_reconciliation_records_missing_fills_of_a_bot_stopped_recently_not_of_one_stopped_long_ago(clean_redis):
    """A bot stopped right after a crash took some of its fills (PostgreSQL, or its host killed
    before its writer caught up) is still reconciled for RECENTLY_STOPPED_S."""
    from apps.bots.models import Bot
    from apps.orders.models import Fill
    from workers import keys, reconcile

    _user, account, (recent, old) = make_paper_bots(2)
    k_trades = keys.paper(account.pk, "BTC/USDT", "trades")
    ts = time.time_ns() - (reconcile.GRACE_S + 5) * 1_000_000_000
    for bot in (recent, old):
        bot.refresh_from_db()
        clean_redis.rpush(k_trades, json.dumps({"cid": f"{bot.client_id_prefix}-1", "voi": "v", "side": 1,
                                                "price": 6_000_000, "qty": 10, "leaves": 90, "fee": 0,
                                                "maker": True, "ts": ts, "id": f"lost-{bot.pk}"}))  # fmt: skip
    Bot.objects.filter(pk__in=[recent.pk, old.pk]).update(desired_state="stopped", actual_state="stopped")
    Bot.objects.filter(pk=old.pk).update(updated=timezone.now() - timedelta(seconds=reconcile.RECENTLY_STOPPED_S + 60))
    result = reconcile.run()
    assert result["bots"] == 1 and result["fills"] == 1
    assert list(Fill.objects.filter(account=account).values_list("venue_trade_id", "bot_id")) == [
        (f"lost-{recent.pk}", recent.pk)
    ]


def test_seed_demo_creates_running_paper_bots_once_and_schedules_install(clean_redis):
    import importlib

    from django.apps import apps as registry
    from django.core.management import call_command
    from django_celery_beat.models import PeriodicTask

    from apps.bots.models import Bot
    from apps.exchanges.models import ExchangeAccount, Market

    for migration in ("0002_seed_markets", "0003_market_contract_fields", "0006_seed_sim_perpetuals"):
        # the seeded markets (flushed by transactional tests)
        importlib.import_module(f"apps.exchanges.migrations.{migration}").seed(registry, None)
    call_command("seed_demo")
    call_command("seed_demo")
    accounts = ExchangeAccount.objects.filter(owner__username="demo")
    assert {(a.venue, a.default_type) for a in accounts} == {
        ("replay:binance-spot", "spot"), ("sim:alpha", "spot"), ("sim:beta", "spot"),
        ("replay:binance-usdm", "swap"), ("sim:gamma", "swap"), ("sim:delta", "swap"),
    }  # fmt: skip
    bots = Bot.objects.filter(owner__username="demo")
    assert bots.count() == 6  # three spot bots, a perpetual, two hedged makers
    assert set(bots.values_list("desired_state", flat=True)) == {"running"}
    assert set(bots.values_list("market__venue", flat=True)) == {
        "replay:binance-spot", "sim:alpha", "sim:beta", "replay:binance-usdm", "sim:gamma",
    }  # fmt: skip
    # the perpetual: Avellaneda-Stoikov on the USD-M replay, 5x isolated
    perp = bots.get(market__venue="replay:binance-usdm")
    assert (perp.strategy, perp.market.symbol, perp.market.is_perpetual) == (
        "avellaneda_stoikov",
        "BTC/USDT:USDT",
        True,
    )
    assert perp.risk["perp"] == {"leverage": 5, "margin_mode": "isolated"}
    assert perp.exchange_account.default_type == "swap"
    # the hedged makers: spot on sim alpha hedged on sim beta, perp on sim gamma hedged on sim delta
    legs = {}
    for hedged in bots.filter(strategy="hedged_maker"):
        hedge_market = Market.objects.get(pk=hedged.params["hedge_market"])
        hedge_account = ExchangeAccount.objects.get(pk=hedged.params["hedge_account"])
        assert hedge_account.venue == hedge_market.venue
        legs[(hedged.market.venue, hedged.market.symbol)] = (hedge_market.venue, hedge_market.symbol)
    assert legs == {
        ("sim:alpha", "BTC/USDT"): ("sim:beta", "BTC/USDT"),
        ("sim:gamma", "BTC/USDT:USDT"): ("sim:delta", "BTC/USDT:USDT"),
    }
    perp_perp = bots.get(market__venue="sim:gamma")
    assert (
        perp_perp.params["maker_perp"] == perp_perp.params["hedge_perp"] == {"leverage": 5, "margin_mode": "isolated"}
    )
    call_command("install_schedules")
    tasks = set(PeriodicTask.objects.values_list("task", flat=True))
    assert {"workers.supervisor.tick", "workers.risk.sweep", "workers.reconcile.run"} <= tasks


def test_housekeeping_trims_trade_logs_and_forgets_dead_hosts(clean_redis):
    from workers import housekeeping, keys

    key = keys.paper(1, "BTC/USDT", "trades")
    clean_redis.rpush(key, *[b"{}"] * (housekeeping.TRADE_LOG_KEEP + 5))
    clean_redis.hset(keys.host_registry(), "dead", json.dumps({"ts": time.time() - 600}))
    clean_redis.hset(keys.host_registry(), "alive", json.dumps({"ts": time.time()}))
    result = housekeeping.run()
    assert clean_redis.llen(key) == housekeeping.TRADE_LOG_KEEP
    assert result["dead_hosts"] == 1
    assert clean_redis.hkeys(keys.host_registry()) == [b"alive"]
