"""Backtest jobs on a real Celery worker: queued from the API, progress saved while running,
cancelled from the API mid-run, results stored."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from apps.backtests.models import BacktestFill, BacktestRun
from tests.workers.h10_worker import celery_worker_fixture, wait_for  # noqa: F401 (fixture)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def api():
    from apps.accounts.services import user_create

    user = user_create(username="bt-user", password="x", role="trader", check_password=False)
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_a_backtest_queued_from_the_api_runs_on_the_backtests_queue(api, celery_worker):
    worker = celery_worker(queues="backtests")
    response = api.post(
        "/api/v1/backtests/",
        {
            "name": "as",
            "strategy": "fixed_spread",
            "params": {"order_amount": "0.01", "bid_spread": "0.005", "ask_spread": "0.005"},
            "data_source": "synthetic_as",
            "data_params": {"seed": 3, "monte_carlo_paths": 20},
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    run_id = response.json()["id"]
    done = wait_for(lambda: BacktestRun.objects.filter(pk=run_id, status="succeeded").first(), timeout=60)
    assert done is not None, (BacktestRun.objects.get(pk=run_id).status, worker.poll())
    assert done.progress == 100 and done.metrics["monte_carlo"]["n_paths"] == 20
    assert BacktestFill.objects.filter(run=done).count() == done.metrics["fills"] > 0


def test_a_running_backtest_reports_progress_and_is_cancelled_from_the_api(api, celery_worker):
    celery_worker(queues="backtests")
    response = api.post(
        "/api/v1/backtests/",
        {
            "name": "long",
            "strategy": "fixed_spread",
            "params": {"order_amount": "0.001"},
            "data_source": "recording",
            "data_params": {"recording": "binance-spot-btcusdt"},
        },
        format="json",
    )
    run_id = response.json()["id"]
    running = wait_for(
        lambda: BacktestRun.objects.filter(pk=run_id, status="running", progress__gt=0).first(), timeout=90
    )
    assert running is not None, BacktestRun.objects.get(pk=run_id).status
    detail = api.get(f"/api/v1/backtests/{run_id}/").json()
    assert detail["progress"] > 0 and detail["eta_seconds"] is not None
    assert api.post(f"/api/v1/backtests/{run_id}/cancel/").status_code == 200
    final = wait_for(lambda: BacktestRun.objects.filter(pk=run_id, status="cancelled").first(), timeout=30)
    assert final is not None, BacktestRun.objects.get(pk=run_id).status
    assert final.progress < 100 and final.metrics["events"] > 0
