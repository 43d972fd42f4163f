"""Parameter optimisation with walk-forward validation: Optuna studies in PostgreSQL, trials run
by real Celery workers on the backtests queue, results through the API; bad input refused."""

from __future__ import annotations

import time

import optuna
import pytest
from rest_framework.test import APIClient

from apps.research.models import Optimisation
from apps.research.optimise import dispose_storage, segments, storage
from apps.research.validation import validate_optimisation
from tests.workers.h10_worker import celery_worker_fixture, wait_for  # noqa: F401 (fixture)

BASE = {"order_amount": "0.001", "refresh_time": "0.2"}
SPACE = {
    "bid_spread": {"low": "0.00002", "high": "0.0005", "log": True},
    "ask_spread": {"low": "0.00002", "high": "0.0005"},
}


def _request(**overrides):
    return {
        "name": "wf",
        "strategy": "fixed_spread",
        "params": BASE,
        "search_space": SPACE,
        "objective": "net_pnl",
        "recording": "binance-spot-btcusdt",
        "max_events": 6000,
        "folds": 2,
        "n_trials": 5,
        "parallel": 2,
    } | overrides


@pytest.fixture(autouse=True)
def _close_optuna_connections():
    yield
    dispose_storage()


@pytest.fixture
def api(db):
    from apps.accounts.services import user_create

    user = user_create(username="opt-user", password="x", role="trader", check_password=False)
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.mark.parametrize(
    ("overrides", "field", "says"),
    [
        ({"search_space": {"bid_spread": {"low": "0.002", "high": "0.002"}}}, "search_space.bid_spread", "empty range"),
        (
            {"search_space": {"spread": {"low": "0.001", "high": "0.002"}}},
            "search_space.spread",
            "accepted: order_amount",
        ),
        (
            {"search_space": {"bid_spread": {"low": "1e-4", "high": "0.002"}}},
            "search_space.bid_spread",
            "plain decimal",
        ),
        ({"objective": "profit"}, "objective", "accepted: net_pnl"),
        ({"recording": "mine.gz"}, "recording", "accepted: binance-spot-btcusdt"),
        ({"sampler": "grid"}, "search_space.bid_spread", "list of 1 to 50 values"),
        ({"constraints": {"max_drawdown": "-5"}}, "constraints.max_drawdown", "above 0"),
        ({"folds": 40}, "folds", "0 to 12"),
    ],
)
def test_bad_optimisation_input_names_the_field_and_what_is_accepted(overrides, field, says):
    errors = validate_optimisation(_request(**overrides))
    assert says in str(errors[field]), errors


def test_walk_forward_segments_are_consecutive_and_cover_everything():
    assert segments(10, 0) == [(0, 10)]
    assert segments(10, 2) == [(0, 3), (3, 6), (6, 10)]


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_walk_forward_optimisation_runs_on_two_workers_and_reports_in_and_out_of_sample(api, celery_worker):
    celery_worker(queues="backtests")
    celery_worker(queues="backtests")
    started = time.monotonic()
    response = api.post("/api/v1/optimisations/", _request(), format="json")
    assert response.status_code == 201, response.content
    opt_id = response.json()["id"]
    seen_progress = set()

    def finished():
        opt = Optimisation.objects.get(pk=opt_id)
        seen_progress.add(opt.progress)
        return opt if opt.status in ("succeeded", "failed", "cancelled") else None

    opt = wait_for(finished, timeout=240, interval=0.5)
    assert opt is not None and opt.status == "succeeded", (opt and opt.status, opt and opt.error)
    folds = opt.results["folds"]
    assert [f["fold"] for f in folds] == [0, 1]
    for f in folds:
        assert f["trials"] >= 5 and f["completed"] >= 1
        assert f["train_events"][1] == f["test_events"][0]  # each test window follows its train window
        assert isinstance(f["in_sample"], float) and "out_of_sample" in f
        assert set(f["best_params"]) >= {"bid_spread", "ask_spread", "order_amount"}
        # the study lives in Optuna's PostgreSQL storage with every trial
        study = optuna.load_study(study_name=f"mm-opt-{opt_id}-fold-{f['fold']}", storage=storage())
        assert len(study.trials) == f["trials"]
    assert opt.results["best"] == folds[-1]["best_params"]
    assert max(seen_progress) == 100 and opt.trials_done == 10
    detail = api.get(f"/api/v1/optimisations/{opt_id}/").json()
    assert detail["results"]["best"] == opt.results["best"]
    print(f"walk-forward optimisation, 2 folds x 5 trials on 2 workers: {time.monotonic() - started:.1f} s")


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_out_of_sample_threshold_withholds_the_best_and_apply_refuses(api, celery_worker):
    celery_worker(queues="backtests")
    response = api.post("/api/v1/optimisations/", _request(n_trials=3, parallel=1, oos_min="1000000"), format="json")
    opt_id = response.json()["id"]
    opt = wait_for(
        lambda: Optimisation.objects.filter(pk=opt_id, status__in=("succeeded", "failed")).first(), timeout=240
    )
    assert opt is not None and opt.status == "succeeded", opt and opt.error
    assert opt.results["best"] is None and "below 1000000" in opt.results["best_refused"]
    refused = api.post(f"/api/v1/optimisations/{opt_id}/apply/", {"bot": 1}, format="json")
    assert refused.status_code == 409 and "no recommended parameters" in str(refused.json())


def test_another_users_optimisation_is_a_404(api, db):
    from apps.accounts.services import user_create

    other = user_create(username="opt-other", password="x", role="trader", check_password=False)
    opt = Optimisation.objects.create(
        owner=other, name="x", strategy="fixed_spread", search_space={}, objective="net_pnl",
        recording="binance-spot-btcusdt", n_trials=1,
    )  # fmt: skip
    assert api.get(f"/api/v1/optimisations/{opt.pk}/").status_code == 404
    assert api.post(f"/api/v1/optimisations/{opt.pk}/cancel/").status_code == 404


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_folds_are_optimised_side_by_side_on_two_workers(api, celery_worker):
    """Walk-forward folds are independent studies: with one task per fold and two workers, fold
    1's trials run while fold 0's still do (no worker waits for another fold to finish)."""
    celery_worker(queues="backtests")
    celery_worker(queues="backtests")
    response = api.post("/api/v1/optimisations/", _request(n_trials=6, parallel=1), format="json")
    assert response.status_code == 201, response.content
    opt_id = response.json()["id"]
    opt = wait_for(
        lambda: Optimisation.objects.filter(pk=opt_id, status__in=("succeeded", "failed", "cancelled")).first(),
        timeout=240,
        interval=0.5,
    )
    assert opt is not None and opt.status == "succeeded", opt and opt.error
    assert [f["fold"] for f in opt.results["folds"]] == [0, 1] and "claimed" not in opt.results
    trials = {
        fold: optuna.load_study(study_name=f"mm-opt-{opt_id}-fold-{fold}", storage=storage()).trials for fold in (0, 1)
    }
    fold0_last_done = max(t.datetime_complete for t in trials[0])
    fold1_first_start = min(t.datetime_start for t in trials[1])
    assert fold1_first_start < fold0_last_done, (fold1_first_start, fold0_last_done)
    assert opt.trials_done == 12 and opt.progress == 100
