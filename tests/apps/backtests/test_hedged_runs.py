"""Hedged backtests (spot maker, USD-M hedge) from the service layer, the API, the backtest page
and ``run_backtest``; bad hedged inputs refused by field, value and what is accepted."""

from __future__ import annotations

import io
import json
from decimal import Decimal

import pytest
from django.core.management import call_command

from apps.backtests import runner
from apps.backtests.models import RunStatus
from apps.backtests.validation import validate_backtest_input

pytestmark = pytest.mark.django_db
DATA = {
    "maker": "binance-spot-btcusdt",
    "hedge": "binance-usdm-btcusdt",
    "maker_fees": {"maker": "0", "taker": "0.001"},
    "maker_latency_ms": 10,
    "hedge_latency_ms": 5,
    "bot": {"order_amount": "0.002", "min_profitability": "0.0006", "max_unhedged": "0.004"},
    "hedge_perp": {"leverage": 20, "wallet": "1000"},
}


def errors(data=None, strategy="hedged_maker", params=None):
    return validate_backtest_input(
        strategy=strategy, params=params or {}, risk={}, data_source="hedged_recordings", data_params=data or DATA
    )


def test_bad_hedged_inputs_are_refused_by_name():
    assert errors() == {}
    bad = errors({**DATA, "hedge": "binance-coinm-btcusd"})["data_params"]
    assert bad["hedge"].startswith("BTC/USD:BTC is an inverse perpetual")
    bad = errors({**DATA, "hedge": "kraken-btcusd"})["data_params"]
    assert bad["hedge"].startswith("'kraken-btcusd' is not a shipped recording or a sim venue; accepted: binance-spot")
    bad = errors({**DATA, "bot": {**DATA["bot"], "order_amount": "0.0025"}})["data_params"]["bot"]
    assert "'0.0025' is not a whole number of BTC/USDT:USDT contracts" in bad["order_amount"]
    # default fees: spot maker 0.1 % + USD-M taker 0.05 % = 0.15 %
    bad = errors({k: v for k, v in DATA.items() if k != "maker_fees"})["data_params"]["bot"]
    assert bad["min_profitability"].startswith("'0.0006' is below the two venues' fees")
    assert "accepted: at least 0.0015" in bad["min_profitability"]
    assert errors(strategy="fixed_spread")["strategy"].startswith("'fixed_spread' does not run on hedged_recordings")
    wrong_source = validate_backtest_input(
        strategy="hedged_maker", params={}, risk={}, data_source="recording", data_params={}
    )
    assert wrong_source == {"data_source": "'recording' is not accepted for hedged_maker; accepted: hedged_recordings"}
    limits = validate_backtest_input(
        strategy="hedged_maker",
        params={},
        risk={"max_position": "1"},
        data_source="hedged_recordings",
        data_params=DATA,
    )
    assert limits == {"risk": "{'max_position': '1'}: hedged_maker has its own limits in data_params.bot; give risk {}"}
    bad = errors({**DATA, "hedge_perp": {"leverage": 500}, "maker_perp": {}})["data_params"]
    assert bad["hedge_perp"]["leverage"] == "500 is not accepted; give a whole number from 1 to 125"
    assert bad["maker_perp"].startswith("binance-spot-btcusdt is a spot market")
    bad = errors({**DATA, "hedge_latency_ms": -1, "color": "red"})["data_params"]
    assert bad["hedge_latency_ms"].startswith("-1 is not accepted") and bad["color"].startswith("unknown parameter")


def test_hedged_run_from_the_api_and_the_backtest_page(trader, api_for, client):
    response = api_for(trader).post(
        "/api/v1/backtests/",
        {
            "name": "hedged",
            "strategy": "hedged_maker",
            "params": {},
            "data_source": "hedged_recordings",
            "data_params": DATA,
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    done = runner.backtest_execute(run_id=response.json()["id"])
    assert done.status == RunStatus.SUCCEEDED, done.error
    h = done.metrics["hedged"]
    assert h["maker_fills"] > 5 and h["hedge_fills"] >= h["maker_fills"] // 2
    assert Decimal(h["exposure_max"]) <= Decimal("0.004") == Decimal(h["exposure_limit"])
    total = Decimal(done.metrics["total_pnl"])
    assert total == Decimal(h["maker_pnl"]) + Decimal(h["hedge_pnl"]) + Decimal(h["funding"])
    perp = h["hedge_perp"]  # the USD-M leg's account: 20x, 1,000 USDT isolated
    assert (perp["settle"], perp["kind"], perp["leverage"], Decimal(perp["wallet"])) == ("USDT", "linear", 20, 1000)
    assert Decimal(perp["max_margin_used"]) > 0 and perp["liquidated_at"] is None
    assert Decimal(perp["fees"]) == Decimal(h["hedge_fees"]) and "maker_perp" not in h
    assert Decimal(h["hedge_fees"]) > 0 and Decimal(h["maker_fees"]) == 0
    assert h["attribution"]["hedge_latency_ms"]["max"] <= 5 + 5 + 500  # hedge venue round trip + timeout
    assert len(h["attribution_fills"]) == h["maker_fills"] and done.fills.count() == h["maker_fills"]
    json.dumps(done.metrics)
    client.force_login(trader)
    page = client.get(f"/backtests/{done.pk}/").content.decode()
    assert "Hedged legs" in page and "expected edge" in page and h["hedge_pnl"] in page
    assert "hedge perp max_margin_used" in page and 'id="chart-exposure"' in page and "Unhedged exposure" in page


def test_run_backtest_prints_the_hedged_figures():
    out = io.StringIO()
    data = {**DATA, "max_events": 15_000}
    call_command(
        "run_backtest",
        "--strategy=hedged_maker",
        "--params={}",
        "--source=hedged_recordings",
        f"--data={json.dumps(data)}",
        stdout=out,
        stderr=io.StringIO(),
    )
    text = out.getvalue()
    for label in ("maker_pnl", "hedge_pnl", "maker_fees", "hedge_fees", "exposure max / limit", "slippage_bps"):
        assert label in text


def test_hedged_run_from_the_backtest_form(trader, client, django_capture_on_commit_callbacks):
    client.force_login(trader)
    form = {"name": "hedged form", "strategy": "hedged_maker", "data_source": "hedged_recordings"}
    bad = {**DATA, "bot": {**DATA["bot"], "min_profitability": "0.0001"}}
    response = client.post("/backtests/", {**form, "data_params": json.dumps(bad)})
    assert response.status_code == 400
    assert "below the two venues&#x27; fees" in response.content.decode()
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post("/backtests/", {**form, "data_params": json.dumps(DATA)})
    assert response.status_code == 302, response.content.decode()[-2000:]
    run = trader.backtest_runs.get(name="hedged form")
    assert (run.strategy, run.data_source, run.data_params["hedge"]) == (
        "hedged_maker",
        "hedged_recordings",
        "binance-usdm-btcusdt",
    )
