"""Backtest execution: every data source, progress, cancel, failure, stored results, and the
``run_backtest`` command."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command

from apps.backtests import runner
from apps.backtests.models import BacktestFill, BacktestRun, RunStatus
from apps.backtests.services import backtest_cancel, backtest_create

pytestmark = pytest.mark.django_db
PARAMS = {"order_amount": "0.01", "bid_spread": "0.005", "ask_spread": "0.005", "refresh_time": "0.5"}


def _create(user, source, data, params=PARAMS):
    return backtest_create(
        owner=user, name=f"t {source}", strategy="fixed_spread", params=params, data_source=source, data_params=data
    )


def test_avellaneda_stoikov_run_stores_metrics_curve_fills_and_monte_carlo(trader):
    run = _create(trader, "synthetic_as", {"seed": 2, "monte_carlo_paths": 50})
    done = runner.backtest_execute(run_id=run.pk)
    assert done.status == RunStatus.SUCCEEDED and done.progress == 100 and done.finished
    m = done.metrics
    assert m["fills"] > 0 and BacktestFill.objects.filter(run=run).count() == m["fills"]
    assert m["monte_carlo"]["n_paths"] == 50 and m["monte_carlo"]["strategy"] == "inventory"
    assert len(done.equity_curve) >= 10
    pnl = {k: Decimal(v) for k, v in done.pnl_decomposition.items()}
    assert pnl["spread_capture"] + pnl["inventory_pnl"] - pnl["fees"] == pnl["total"]
    assert Decimal(m["total_pnl"]) == pnl["total"]
    assert 0 < m["quality"]["quote_uptime"] <= 1 and set(m["quality"]["markouts"]) == {"1s", "10s", "60s"}


def test_shipped_recording_run_with_fees_from_the_replay_market(trader):
    run = _create(
        trader, "recording", {"recording": "binance-spot-btcusdt", "max_events": 4000}, {"order_amount": "0.001"}
    )
    done = runner.backtest_execute(run_id=run.pk)
    assert done.status == RunStatus.SUCCEEDED, done.error
    assert done.metrics["events"] == 4000
    fills = list(BacktestFill.objects.filter(run=run))
    # the seeded replay:binance-spot market charges 0.1 % maker: every fill pays it
    for f in fills:
        assert f.fee == (f.price * f.qty * Decimal("0.001")).quantize(f.fee) or f.liquidity == "taker"


def test_multivenue_run_trades_the_first_venue(trader):
    run = _create(trader, "synthetic_multivenue", {"venues": 3, "duration_s": 30, "seed": 4})
    done = runner.backtest_execute(run_id=run.pk)
    assert done.status == RunStatus.SUCCEEDED, done.error
    assert done.metrics["venues"] == ["v0", "v1", "v2"] and done.metrics["events"] > 100


def test_a_sim_market_backtest_is_reproducible_by_seed(trader):
    def run(seed: int) -> tuple:
        done = runner.backtest_execute(
            run_id=_create(
                trader,
                "synthetic_multivenue",
                {"venues": 2, "duration_s": 60, "seed": seed, "volatility": 2.0},
                {"order_amount": "0.01", "bid_spread": "0.0001", "ask_spread": "0.0001", "refresh_time": "0.5"},
            ).pk
        )
        assert done.status == RunStatus.SUCCEEDED, done.error
        fills = list(
            BacktestFill.objects.filter(run=done).order_by("ts", "id").values_list("ts", "side", "price", "qty")
        )
        return done.metrics["events"], done.metrics["total_pnl"], fills

    first, again, other = run(9), run(9), run(10)
    assert first == again and first[2], "the same seed gives the same events, fills and PnL"
    assert other != first


def test_stored_market_data_becomes_events_and_is_replayed(trader):
    from apps.exchanges.models import Market
    from apps.marketdata.services import batch_from_events, marketdata_ingest_batch
    from connectors.sim import hosted_feed

    market = Market.objects.get(venue="sim:alpha", symbol="BTC/USDT")
    inst = runner.market_instrument(market)
    feed = hosted_feed("sim:alpha", inst)
    start = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    t0 = int(start.timestamp()) * 10**9
    events = [feed.book_at(t0 + i * 500_000_000) for i in range(240)]
    batch = batch_from_events(market_id=market.pk, instrument=inst, events=events)
    marketdata_ingest_batch(tops=batch.tops, depths=batch.depths, trades=batch.trades)
    _inst, replayed = runner.stored_events(market, start, start + timedelta(minutes=5))
    assert len(replayed) == 240 and replayed[0].bids[0] == events[0].bids[0]
    run = _create(
        trader,
        "stored",
        {"market": market.pk, "start": start.isoformat(), "end": (start + timedelta(minutes=5)).isoformat()},
        {"order_amount": "0.01", "bid_spread": "0.0001", "ask_spread": "0.0001"},
    )
    done = runner.backtest_execute(run_id=run.pk)
    assert done.status == RunStatus.SUCCEEDED, done.error
    assert done.metrics["events"] == 240 and done.metrics["market"] == "sim:alpha BTC/USDT"


def test_progress_is_saved_with_an_eta_and_cancel_stops_with_a_partial_result(trader, monkeypatch):
    seen = []
    real = runner.backtest_progress_update

    def progress_then_cancel(*, run_id, progress, eta_seconds=None):
        seen.append((progress, eta_seconds))
        stop = real(run_id=run_id, progress=progress, eta_seconds=eta_seconds)
        row = BacktestRun.objects.get(pk=run_id)
        assert row.progress == int(progress)
        if len(seen) == 2:
            backtest_cancel(run=row)
            return real(run_id=run_id, progress=progress, eta_seconds=eta_seconds)
        return stop

    monkeypatch.setattr(runner, "backtest_progress_update", progress_then_cancel)
    monkeypatch.setattr(runner, "SAVE_EVERY_S", 0.0)
    monkeypatch.setattr(runner, "PROGRESS_EVERY", 500)
    run = _create(
        trader, "recording", {"recording": "binance-spot-btcusdt", "max_events": 20000}, {"order_amount": "0.001"}
    )
    done = runner.backtest_execute(run_id=run.pk)
    assert done.status == RunStatus.CANCELLED
    assert len(seen) == 2 and seen[1][0] > seen[0][0] and seen[1][1] is not None
    assert 0 < done.metrics["events"] < 20000
    assert done.progress < 100


def test_a_run_that_is_not_queued_is_not_executed(trader):
    run = _create(trader, "synthetic_as", {})
    backtest_cancel(run=run)
    assert runner.backtest_execute(run_id=run.pk) is None
    assert BacktestRun.objects.get(pk=run.pk).status == RunStatus.CANCELLED


def test_an_error_marks_the_run_failed_with_the_reason(trader, monkeypatch):
    def broken(data):
        raise RuntimeError("data source exploded")

    monkeypatch.setitem(runner.SOURCES, "synthetic_as", broken)
    run = _create(trader, "synthetic_as", {})
    done = runner.backtest_execute(run_id=run.pk)
    assert done.status == RunStatus.FAILED and "data source exploded" in done.error


def test_run_backtest_command_prints_the_metrics_table():
    out, err = io.StringIO(), io.StringIO()
    call_command(
        "run_backtest",
        "--source",
        "synthetic_as",
        "--data",
        '{"seed": 1, "monte_carlo_paths": 20}',
        "--params",
        '{"order_amount": "0.01", "bid_spread": "0.005", "ask_spread": "0.005"}',
        stdout=out,
        stderr=err,
    )
    text = out.getvalue()
    for label in ("total PnL", "spread capture", "Sharpe", "quote uptime", "markout 1s", "Monte Carlo"):
        assert label in text
    assert "100.0 %" in err.getvalue()


def test_run_backtest_command_stores_the_run_for_an_owner(trader):
    out = io.StringIO()
    call_command(
        "run_backtest", "--source", "synthetic_as", "--data", '{"seed": 5}', "--owner", trader.username, stdout=out
    )
    run = BacktestRun.objects.get(owner=trader)
    assert run.status == RunStatus.SUCCEEDED and f"stored as run {run.pk}" in out.getvalue()


def test_run_backtest_command_rejects_bad_input_naming_the_field():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="max_events"):
        call_command("run_backtest", "--data", '{"recording": "binance-spot-btcusdt", "max_events": -1}')
