"""Backtest runs: creation validates every input (400 naming fields) and enqueues the job by
name after commit; cancel/progress/result state changes; owners and operators only."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from apps.backtests import selectors, services
from apps.backtests.models import BacktestFill, RunStatus
from apps.backtests.validation import BacktestInputError
from apps.exchanges.models import Market

pytestmark = pytest.mark.django_db

GOOD = {
    "name": "AS on the recording",
    "strategy": "fixed_spread",
    "params": {"order_amount": "0.01", "bid_spread": "0.001"},
    "risk": {"max_position_base": "1"},
    "data_source": "recording",
    "data_params": {"recording": "binance-spot-btcusdt", "max_events": 10000},
}


@pytest.fixture
def sent(monkeypatch):
    calls = []
    monkeypatch.setattr(services.current_app, "send_task", lambda name, args: calls.append((name, args)))
    return calls


def create(owner, **overrides):
    return services.backtest_create(owner=owner, **{**GOOD, **overrides})


def test_create_queues_the_run_and_enqueues_the_task_after_commit(trader, sent, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        run = create(trader)
        assert sent == []  # nothing leaves before the commit
    assert run.status == RunStatus.QUEUED and run.progress == 0
    assert sent == [("workers.backtests.run", [run.pk])]


def test_create_with_bad_inputs_names_every_bad_field(trader, sent):
    with pytest.raises(BacktestInputError) as err:
        create(
            trader,
            params={"order_amount": "-1", "bogus": 1},
            risk={"max_open_orders": 0},
            data_params={"recording": "nope"},
        )
    errors = err.value.errors
    assert set(errors) == {"params", "risk", "data_params"}
    assert {"order_amount", "bogus"} <= set(errors["params"])
    assert "max_open_orders" in errors["risk"]
    assert "binance-spot-btcusdt" in errors["data_params"]["recording"]


@pytest.mark.parametrize(
    ("source", "data_params", "bad"),
    [
        ("stored", {"market": 999999, "start": "2026-11-20T09:00:00Z", "end": "2026-11-20T10:00:00Z"}, {"market"}),
        (
            "stored",
            {"market": None, "start": "2026-11-20T10:00:00Z", "end": "2026-11-20T09:00:00Z"},
            {"market", "start"},
        ),
        ("stored", {"start": "2026-11-20T09:00:00", "end": "x"}, {"market", "start", "end"}),
        ("synthetic_as", {"sigma": -2, "dt": 2.0, "monte_carlo_paths": 10**9}, {"sigma", "dt", "monte_carlo_paths"}),
        ("synthetic_multivenue", {"venues": 1, "correlation": 2, "extra": 1}, {"venues", "correlation", "extra"}),
    ],
)
def test_data_source_parameters_are_checked_per_kind(trader, sent, source, data_params, bad):
    with pytest.raises(BacktestInputError) as err:
        create(trader, data_source=source, data_params=data_params)
    assert set(err.value.errors) == {"data_params"}
    assert set(err.value.errors["data_params"]) == bad


def test_valid_stored_and_synthetic_sources_are_accepted(trader, sent):
    market = Market.objects.first()
    create(
        trader,
        data_source="stored",
        data_params={"market": market.pk, "start": "2026-11-20T09:00:00Z", "end": "2026-11-20T10:00:00Z"},
    )
    create(
        trader,
        data_source="synthetic_as",
        data_params={"sigma": 2.0, "gamma": 0.1, "monte_carlo_paths": 100, "seed": 7},
    )
    create(trader, data_source="synthetic_multivenue", data_params={"venues": 3, "seed": 1})


def test_viewer_cannot_create_a_backtest(viewer, sent):
    with pytest.raises(BacktestInputError) as err:
        create(viewer)
    assert "owner" in err.value.errors


def test_cancel_queued_is_immediate_running_goes_through_cancelling(trader, sent):
    queued = services.backtest_cancel(run=create(trader))
    assert queued.status == RunStatus.CANCELLED and queued.finished is not None
    assert services.backtest_start(run_id=queued.pk) is False  # the worker must not run it

    run = create(trader)
    assert services.backtest_start(run_id=run.pk) is True
    assert services.backtest_start(run_id=run.pk) is False  # claimed once
    assert services.backtest_progress_update(run_id=run.pk, progress=40, eta_seconds=12.4) is False
    run = services.backtest_cancel(run=run)
    assert run.status == RunStatus.CANCELLING and run.cancel_requested
    assert services.backtest_progress_update(run_id=run.pk, progress=50) is True  # worker told to stop
    stored = services.backtest_store_result(run_id=run.pk, metrics={"fills": 0}, equity_curve=[], pnl_decomposition={})
    assert stored.status == RunStatus.CANCELLED and stored.progress == 50


def test_cancelling_a_finished_run_is_refused(trader, sent):
    run = create(trader)
    services.backtest_start(run_id=run.pk)
    services.backtest_store_result(run_id=run.pk, metrics={}, equity_curve=[], pnl_decomposition={})
    with pytest.raises(services.BacktestStateError, match=r"status: .* is succeeded"):
        services.backtest_cancel(run=run)


def test_progress_never_goes_backwards_and_is_clamped(trader, sent):
    run = create(trader)
    services.backtest_start(run_id=run.pk)
    services.backtest_progress_update(run_id=run.pk, progress=60, eta_seconds=5)
    services.backtest_progress_update(run_id=run.pk, progress=30, eta_seconds=9)
    run.refresh_from_db()
    assert (run.progress, run.eta_seconds) == (60, 5)
    services.backtest_progress_update(run_id=run.pk, progress=250)
    run.refresh_from_db()
    assert run.progress == 100


def test_store_result_downsamples_the_curve_and_saves_fills(trader, sent):
    run = create(trader)
    services.backtest_start(run_id=run.pk)
    curve = [[i, i * 2] for i in range(5000)]
    fills = [
        {
            "ts": datetime(2024, 8, 8, 0, 0, i, tzinfo=UTC),
            "side": "buy",
            "price": "61737.63",
            "qty": "0.01",
            "fee": "-0.01",
            "liquidity": "maker",
        }
        for i in range(3)
    ]
    run = services.backtest_store_result(
        run_id=run.pk,
        metrics={"sharpe": 1.5, "fills": 3},
        equity_curve=curve,
        pnl_decomposition={"spread_capture": "1.2", "fees": "-0.03"},
        fills=fills,
    )
    assert run.status == RunStatus.SUCCEEDED and run.progress == 100
    assert len(run.equity_curve) == 1000
    assert run.equity_curve[0] == [0, 0] and run.equity_curve[-1] == [4999, 9998]
    assert [f.price for f in BacktestFill.objects.filter(run=run)] == [Decimal("61737.63")] * 3
    with pytest.raises(services.BacktestStateError):
        services.backtest_store_result(run_id=run.pk, metrics={}, equity_curve=[], pnl_decomposition={})


def test_fail_records_the_error(trader, sent):
    run = create(trader)
    services.backtest_start(run_id=run.pk)
    services.backtest_fail(run_id=run.pk, error="recording: file missing")
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED and run.error == "recording: file missing"


# --- selectors and API -------------------------------------------------------------------------
def test_isolation_other_trader_and_viewer_cannot_see_operator_can(trader, trader2, viewer, operator, api_for, sent):
    run = create(trader)
    assert list(selectors.backtest_list(user=trader)) == [run]
    assert list(selectors.backtest_list(user=trader2)) == []
    assert list(selectors.backtest_list(user=operator)) == [run]
    for outsider in (trader2, viewer):
        api = api_for(outsider)
        assert api.get("/api/v1/backtests/").json()["results"] == []
        for url in (
            f"/api/v1/backtests/{run.pk}/",
            f"/api/v1/backtests/{run.pk}/fills/",
            f"/api/v1/backtests/{run.pk}/metrics.csv",
        ):
            assert api.get(url).status_code == 404, url
        assert api.post(f"/api/v1/backtests/{run.pk}/cancel/").status_code == 404
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED
    ops = api_for(operator)
    assert [r["id"] for r in ops.get("/api/v1/backtests/").json()["results"]] == [run.pk]
    assert ops.get(f"/api/v1/backtests/{run.pk}/").status_code == 200


def test_api_create_retrieve_cancel(trader, api_for, sent, django_capture_on_commit_callbacks):
    api = api_for(trader)
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post("/api/v1/backtests/", GOOD, format="json")
    assert response.status_code == 201, response.json()
    run_id = response.json()["id"]
    assert sent == [("workers.backtests.run", [run_id])]
    detail = api.get(f"/api/v1/backtests/{run_id}/").json()
    assert (detail["status"], detail["progress"], detail["owner"]) == ("queued", 0, "alice")
    assert detail["equity_curve"] == []
    (listed,) = api.get("/api/v1/backtests/").json()["results"]
    assert listed["id"] == run_id and "equity_curve" not in listed  # lists stay light
    cancelled = api.post(f"/api/v1/backtests/{run_id}/cancel/").json()
    assert cancelled["status"] == "cancelled"
    assert api.post(f"/api/v1/backtests/{run_id}/cancel/").status_code == 200  # idempotent


def test_api_bad_input_is_400_naming_each_field(trader, api_for, sent):
    api = api_for(trader)
    bad = {**GOOD, "params": {"order_amount": "zero"}, "data_source": "stored", "data_params": {"market": 0}}
    response = api.post("/api/v1/backtests/", bad, format="json")
    assert response.status_code == 400
    body = response.json()
    assert "order_amount" in body["params"]
    assert {"market", "start", "end"} <= set(body["data_params"])
    assert api.post("/api/v1/backtests/", {**GOOD, "data_source": "moon"}, format="json").json().keys() == {
        "data_source"
    }
    assert api.post("/api/v1/backtests/", {**GOOD, "strategy": "nope"}, format="json").json().keys() == {"strategy"}
    assert sent == []


def test_api_viewer_is_forbidden_to_create(viewer, api_for, sent):
    assert api_for(viewer).post("/api/v1/backtests/", GOOD, format="json").status_code == 403


def test_api_fills_and_metrics_csv(trader, api_for, sent):
    run = create(trader)
    api = api_for(trader)
    assert api.get(f"/api/v1/backtests/{run.pk}/metrics.csv").status_code == 409
    services.backtest_start(run_id=run.pk)
    services.backtest_store_result(
        run_id=run.pk,
        metrics={"sharpe": 1.25, "quoting": {"uptime": 0.9}},
        equity_curve=[[0, 0], [1, 5]],
        pnl_decomposition={"fees": "-0.5"},
        fills=[{"ts": "2024-08-08T00:00:01+00:00", "side": "sell", "price": "100.5", "qty": "2", "liquidity": "taker"}],
    )
    fills = api.get(f"/api/v1/backtests/{run.pk}/fills/").json()
    assert fills["count"] == 1 and Decimal(fills["results"][0]["price"]) == Decimal("100.5")
    response = api.get(f"/api/v1/backtests/{run.pk}/metrics.csv")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = dict(csv.reader(io.StringIO(response.content.decode())))
    assert rows["sharpe"] == "1.25" and rows["quoting.uptime"] == "0.9" and rows["pnl.fees"] == "-0.5"
