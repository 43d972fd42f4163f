"""Simulator profiles fitted from a bot's own orders (real rows in PostgreSQL, written through the
order services), used by backtests and shadow backtests."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest

from apps.exchanges.models import Market
from tests.apps.portfolio.test_analytics_api import api

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
N_ORDERS = 240


@pytest.fixture
def bot(users):
    from apps.bots.services import bot_create
    from apps.exchanges.services import exchange_account_create

    account = exchange_account_create(owner=users["alice"], label="paper", venue="sim:alpha")
    return bot_create(
        owner=users["alice"],
        name="mm",
        exchange_account=account,
        market=Market.objects.get(venue="sim:alpha", symbol="BTC/USDT"),
        strategy="fixed_spread",
        params={"order_amount": "0.01", "bid_spread": "0.00005", "ask_spread": "0.00005", "refresh_time": "30"},
    )


@pytest.fixture
def history(users, bot):
    """N_ORDERS orders over the first minute: place->ack ~ 3 ms + lognormal, every other order
    cancelled with cancel->ack ~ 5 ms + lognormal, every fifth filled (whole microseconds, as
    the database stores them). Returns the measured (place_ms, cancel_ms) lists."""
    from apps.orders.services import order_cancel_request
    from tests.apps.bots.factories import order_event, place_order

    rng = random.Random(42)
    place_us, cancel_us = [], []
    for i in range(N_ORDERS):
        sent = T0 + timedelta(milliseconds=250 * i)
        p = 3000 + round(rng.lognormvariate(8.5, 0.7))
        cid = f"{bot.client_id_prefix}-{i}"
        acked = sent + timedelta(microseconds=p)
        side = "buy" if i % 2 else "sell"
        order = place_order(
            bot, cid, side=side, price="60000", quantity="0.01", venue_order_id=f"V{i}", sent=sent, acked=acked,
            created=sent,
        )  # fmt: skip
        place_us.append(p)
        if i % 5 == 0:
            order_event(bot, cid, "filled", filled="0.01", closed=acked + timedelta(seconds=1))
        elif i % 2 == 0:
            c = 5000 + round(rng.lognormvariate(9.0, 0.5))
            asked = acked + timedelta(milliseconds=100)
            order_cancel_request(order=order, actor=users["alice"], at=asked)
            order_event(bot, cid, "cancelled", closed=asked + timedelta(microseconds=c))
            cancel_us.append(c)
    return place_us, cancel_us


PERIOD = {"start": T0.isoformat(), "end": (T0 + timedelta(minutes=2)).isoformat()}


def _fit(user, bot, **extra):
    return api(user).post(
        "/api/v1/simulator-profiles/", {"name": "mm live", "bot": bot.pk, **PERIOD, **extra}, format="json"
    )


def test_fitted_tables_are_the_quantiles_of_the_bots_own_orders_and_draws_reproduce_them(users, bot, history):
    from apps.research.models import SimulatorProfile
    from apps.research.profiles import profile_models

    place_us, cancel_us = history
    response = _fit(users["alice"], bot)
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["place_samples"], body["cancel_samples"]) == (N_ORDERS, len(cancel_us))
    assert body["cancel_source"] == "measured" and body["queue_model"] == "risk_averse"
    for table, data in ((body["place_ack_ns"], place_us), (body["cancel_ack_ns"], cancel_us)):
        expected = np.percentile(np.array(data) * 1000, np.arange(101))
        assert np.allclose(table, expected, atol=1)  # the exact percentiles, to the nanosecond
    assert body["summary"]["place_ack_ms"]["p50"] == pytest.approx(np.median(place_us) / 1000, abs=1e-6)
    assert body["live"]["orders"] == N_ORDERS and body["live"]["filled_orders"] == N_ORDERS // 5

    latency, _ = profile_models(SimulatorProfile.objects.get(pk=body["id"]), seed=9)
    places = np.array([latency.entry_ns(0) + latency.response_ns(0) for _ in range(20_000)])
    cancels = np.array([latency.cancel_ns(0) + latency.response_ns(0) for _ in range(20_000)])
    for q in (10, 50, 90):
        assert np.percentile(places, q) == pytest.approx(np.percentile(place_us, q) * 1000, rel=0.05)
        assert np.percentile(cancels, q) == pytest.approx(np.percentile(cancel_us, q) * 1000, rel=0.05)
    assert _draws(body["id"], 9, 50) == _draws(body["id"], 9, 50) != _draws(body["id"], 10, 50)


def _draws(profile_id, seed, n):
    from apps.research.models import SimulatorProfile
    from apps.research.profiles import profile_models

    latency, _ = profile_models(SimulatorProfile.objects.get(pk=profile_id), seed=seed)
    return [latency.entry_ns(0) for _ in range(n)]


def test_profiles_are_the_owners_and_bad_input_names_the_field(users, bot, history):
    assert _fit(users["alice"], bot).status_code == 201
    alice, bob = api(users["alice"]), api(users["bob"])
    (listed,) = alice.get("/api/v1/simulator-profiles/").json()["results"]
    assert listed["name"] == "mm live" and listed["bot"] == bot.pk
    assert bob.get("/api/v1/simulator-profiles/").json()["results"] == []
    assert bob.get(f"/api/v1/simulator-profiles/{listed['id']}/").status_code == 404
    theirs = _fit(users["bob"], bot, name="theirs")  # not bob's bot: refused naming the field, like any bad id
    assert theirs.status_code == 400 and "not one of your bots" in str(theirs.json()["bot"])
    taken = _fit(users["alice"], bot)
    assert taken.status_code == 400 and "taken" in str(taken.json()["name"])
    fifo = _fit(users["alice"], bot, name="q", queue_model="fifo")
    assert fifo.status_code == 400 and "queue_model" in fifo.json()
    power = _fit(users["alice"], bot, name="p", queue_model="probabilistic", queue_power=-1)
    assert power.status_code == 400 and "queue_power" in power.json()
    empty = api(users["alice"]).post(
        "/api/v1/simulator-profiles/",
        {"name": "none", "bot": bot.pk, "start": "2026-01-01T00:00:00Z", "end": "2026-01-02T00:00:00Z"},
        format="json",
    )
    assert empty.status_code == 400 and "at least 20" in str(empty.json()["start"])
    prob = _fit(users["alice"], bot, name="prob", queue_model="probabilistic", queue_power=2)
    assert prob.status_code == 201 and prob.json()["queue_power"] == 2.0


BACKTEST = {
    "name": "with a profile",
    "strategy": "fixed_spread",
    "params": {"order_amount": "0.001", "bid_spread": "0.0001", "ask_spread": "0.0001"},
    "data_source": "recording",
    "data_params": {"recording": "binance-spot-btcusdt", "max_events": 4000},
}


def test_backtests_take_a_profile_validated_and_reproducible_by_seed(users, bot, history, monkeypatch):
    from apps.backtests import runner
    from apps.backtests.services import backtest_create, current_app
    from apps.backtests.validation import BacktestInputError

    monkeypatch.setattr(current_app, "send_task", lambda *a, **k: None)
    profile_id = _fit(users["alice"], bot).json()["id"]
    alice = api(users["alice"])
    for bad, needle in ((999_999, "not one of your simulator profiles"), ("x", "not one of your")):
        body = {**BACKTEST, "data_params": {**BACKTEST["data_params"], "profile": bad}}
        response = alice.post("/api/v1/backtests/", body, format="json")
        assert response.status_code == 400 and needle in str(response.json()["data_params"]["profile"])
    with pytest.raises(BacktestInputError) as theirs:
        backtest_create(
            owner=users["bob"], **{**BACKTEST, "data_params": {**BACKTEST["data_params"], "profile": profile_id}}
        )
    assert "profile" in theirs.value.errors["data_params"]
    with pytest.raises(BacktestInputError) as synthetic:
        backtest_create(
            owner=users["alice"], **{**BACKTEST, "data_source": "synthetic_as", "data_params": {"profile": profile_id}}
        )
    assert "data sources only" in synthetic.value.errors["data_params"]["profile"]

    runs = []
    for seed in (1, 1, 2):
        params = {**BACKTEST["data_params"], "profile": profile_id, "profile_seed": seed}
        created = alice.post("/api/v1/backtests/", {**BACKTEST, "data_params": params}, format="json")
        assert created.status_code == 201, created.content
        done = runner.backtest_execute(run_id=created.json()["id"])
        assert done.status == "succeeded", done.error
        runs.append(done.metrics)
    used = runs[0]["simulator_profile"]
    assert (used["id"], used["name"], used["seed"], used["queue_model"]) == (profile_id, "mm live", 1, "risk_averse")
    assert runs[0]["orders_placed"] > 0
    same = ("total_pnl", "fills", "orders_placed", "cancels_sent", "rejects")
    assert [runs[0][k] for k in same] == [runs[1][k] for k in same]


def test_shadow_backtest_with_a_profile_reports_live_vs_simulated(users, bot, history, monkeypatch):
    from apps.backtests import runner
    from apps.backtests.services import current_app
    from apps.marketdata.models import TopOfBookSnapshot
    from apps.orders.services import fills_record
    from tests.apps.bots.factories import fill_values

    monkeypatch.setattr(current_app, "send_task", lambda *a, **k: None)
    profile_id = _fit(users["alice"], bot).json()["id"]
    _stored_market(bot)
    for s in range(0, 180):
        TopOfBookSnapshot.objects.create(
            ts=T0 + timedelta(seconds=s),
            market=bot.market,
            bid=Decimal(60000),
            bid_qty=1,
            ask=Decimal(60002),
            ask_qty=1,
        )
    fills_record(
        [
            fill_values(bot, f"t{i}", T0 + timedelta(seconds=10 + 20 * i), side=side, price=Decimal(price),
                        quantity=Decimal("0.01"), client_order_id=f"{bot.client_id_prefix}-{5 * i}")
            for i, (side, price) in enumerate((("buy", "60000"), ("sell", "60002")))
        ]
    )  # fmt: skip
    alice = api(users["alice"])
    created = alice.post(
        f"/api/v1/bots/{bot.pk}/shadow-backtests/", {**PERIOD, "profile": profile_id, "profile_seed": 3}, format="json"
    )
    assert created.status_code == 201, created.content
    run_id = created.json()["run"]
    done = runner.backtest_execute(run_id=run_id)
    assert done.status == "succeeded", done.error
    body = alice.get(f"/api/v1/bots/{bot.pk}/shadow-backtests/{run_id}/").json()
    calibration = body["calibration"]
    assert calibration["profile"]["name"] == "mm live" and calibration["profile"]["seed"] == 3
    live, simulated = calibration["live"], calibration["simulated"]
    assert live["fill_rate"] == pytest.approx(2 / N_ORDERS)
    assert live["fills_per_hour"] == pytest.approx(2 / (2 / 60))
    assert Decimal(live["pnl_per_hour"]) == (Decimal(body["live"]["pnl"]["total"]) * 30).quantize(Decimal("1e-8"))
    assert simulated["fills_per_hour"] == pytest.approx(done.metrics["fills"] * 30)
    assert set(live["markouts_avg_ticks"]) == set(simulated["markouts_avg_ticks"]) == {"1s", "10s", "60s"}
    bad = alice.post(f"/api/v1/bots/{bot.pk}/shadow-backtests/", {**PERIOD, "profile": 424242}, format="json")
    assert bad.status_code == 400 and "profile" in bad.json()["data_params"]


def _stored_market(bot):
    """Two minutes of a steady book stored for the bot's market: the touch 0.5 bp either side of
    60000 (where the bot quotes), sizes redrawn every second (seeded), and trades at the touch
    five times a second; the queue at the bot's price is all that decides its fills."""
    from apps.backtests import runner
    from apps.marketdata.services import batch_from_events, marketdata_ingest_batch
    from trading.events import BookSnapshot, TradeTick
    from trading.instruments import Side

    inst = runner.market_instrument(bot.market)
    centre = inst.ticks(Decimal(60000), side=Side.BUY)
    half = round(centre * 0.00005)
    t0 = int(T0.timestamp()) * 10**9
    rng = random.Random(5)
    events = []
    for i in range(120):
        sizes = [rng.randint(20, 200) for _ in range(10)]
        bids = tuple((centre - half - k, sizes[k]) for k in range(5))
        asks = tuple((centre + half + k, sizes[5 + k]) for k in range(5))
        events.append(BookSnapshot(ts=t0 + i * 10**9, bids=bids, asks=asks))
        for j in range(1, 5):
            sell = rng.random() < 0.5
            price, qty = (bids if sell else asks)[0]
            events.append(
                TradeTick(
                    ts=t0 + i * 10**9 + j * 200_000_000,
                    price=price,
                    qty=rng.randint(1, qty // 3),
                    aggressor=Side.SELL if sell else Side.BUY,
                    trade_id=f"{i}-{j}",
                )
            )
    batch = batch_from_events(market_id=bot.market_id, instrument=inst, events=events)
    marketdata_ingest_batch(depths=batch.depths, trades=batch.trades)


def test_queue_model_fit_replays_each_candidate_and_keeps_the_nearest_live_fill_rate(users, bot, history):
    from apps.research.profiles import QUEUE_CANDIDATES

    no_data = _fit(users["alice"], bot, name="nodata", queue_model="fit")
    assert no_data.status_code == 400 and "no stored market data" in str(no_data.json()["queue_model"])
    _stored_market(bot)
    response = _fit(users["alice"], bot, queue_model="fit")
    assert response.status_code == 201, response.content
    body = response.json()
    live_rate = body["live"]["fill_rate"]
    assert live_rate == pytest.approx(1 / 5)
    tried = body["live"]["queue_fit"]
    assert [(t["queue_model"], t["queue_power"]) for t in tried] == list(QUEUE_CANDIDATES)
    assert all(t["orders"] > 0 for t in tried)
    assert len({t["fill_rate"] for t in tried}) > 1  # the data tells the candidates apart
    best = min(tried, key=lambda t: abs(t["fill_rate"] - live_rate))
    assert (body["queue_model"], body["queue_power"]) == (best["queue_model"], best["queue_power"])
