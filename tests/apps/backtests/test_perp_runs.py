"""Backtest runs of the perpetual recordings from the service layer and ``run_backtest``: the
USD-M recording as a linear perp, the COIN-M one as an inverse perp, bad perp settings refused."""

from __future__ import annotations

import io
import json
from decimal import Decimal

import pytest
from django.core.management import call_command

from apps.backtests import runner
from apps.backtests.models import BacktestRun, RunStatus
from apps.backtests.services import backtest_create
from apps.backtests.validation import validate_backtest_input

pytestmark = pytest.mark.django_db
PARAMS = {"order_amount": "0.002", "bid_spread": "0.00005", "ask_spread": "0.00005", "refresh_time": "0.1"}


def test_usdm_recording_runs_as_a_linear_perp_with_margin_and_funding(trader):
    run = backtest_create(
        owner=trader,
        name="usdm perp",
        strategy="fixed_spread",
        params=PARAMS,
        data_source="recording",
        data_params={
            "recording": "binance-usdm-btcusdt",
            "max_events": 20_000,
            "perp": {"leverage": 20, "wallet": "2000", "funding_rate": "0.0001"},
        },
    )
    done = runner.backtest_execute(run_id=run.pk)
    assert done.status == RunStatus.SUCCEEDED, done.error
    perp = done.metrics["perp"]
    assert perp["settle"] == "USDT" and perp["kind"] == "linear" and perp["leverage"] == 20
    assert Decimal(perp["wallet"]) == 2000 and done.metrics["fills"] > 0
    money = {k: Decimal(perp[k]) for k in ("realized", "unrealized", "funding", "fees", "equity", "wallet")}
    assert (
        money["equity"] == money["wallet"] + money["realized"] + money["unrealized"] + money["funding"] - money["fees"]
    )
    assert perp["fundings"] == []  # the recording's minutes hold no 00:00/08:00/16:00 UTC funding time
    assert done.pnl_decomposition["funding"] == perp["funding"]
    json.dumps(done.metrics)  # stored as JSON: nothing that does not serialize


def test_coinm_recording_run_reports_pnl_in_btc(trader):
    params = {"order_amount": "2", "bid_spread": "0.00005", "ask_spread": "0.00005", "refresh_time": "0.1"}
    run = backtest_create(
        owner=trader,
        name="coinm perp",
        strategy="fixed_spread",
        params=params,
        data_source="recording",
        data_params={"recording": "binance-coinm-btcusd", "perp": {"wallet": "0.5", "leverage": 20}},
    )
    done = runner.backtest_execute(run_id=run.pk)
    assert done.status == RunStatus.SUCCEEDED, done.error
    assert done.metrics["perp"]["settle"] == "BTC" and done.metrics["pnl_currency"] == "BTC"
    assert done.pnl_decomposition["currency"] == "BTC"
    assert done.metrics["total_pnl"] == done.metrics["perp"]["net_pnl"]


@pytest.mark.parametrize(
    ("perp", "field", "accepted"),
    [
        ({"leverage": 126}, "leverage", "1 to 125"),
        ({"wallet": "1e30"}, "wallet", "decimal string"),
        ({"wallet": "٣"}, "wallet", "decimal string"),
        ({"funding_rate": "0.5"}, "funding_rate", "-0.03"),
        ({"margin_mode": "portfolio"}, "margin_mode", "isolated, cross"),
        ({"leverag": 3}, "leverag", "accepted: leverage"),
    ],
)
def test_bad_perp_settings_name_the_field_and_what_is_accepted(perp, field, accepted):
    errors = validate_backtest_input(
        strategy="fixed_spread",
        params=PARAMS,
        risk={},
        data_source="recording",
        data_params={"recording": "binance-usdm-btcusdt", "perp": perp},
    )
    assert accepted in errors["data_params"]["perp"][field]


def test_perp_settings_on_a_spot_recording_are_refused():
    errors = validate_backtest_input(
        strategy="fixed_spread",
        params=PARAMS,
        risk={},
        data_source="recording",
        data_params={"recording": "binance-spot-btcusdt", "perp": {"leverage": 3}},
    )
    assert "spot market" in errors["data_params"]["perp"] and "binance-usdm-btcusdt" in errors["data_params"]["perp"]


def test_run_backtest_command_prints_the_perp_figures(trader):
    out = io.StringIO()
    call_command(
        "run_backtest",
        "--source",
        "recording",
        "--data",
        json.dumps({"recording": "binance-usdm-btcusdt", "max_events": 8000, "perp": {"leverage": 5}}),
        "--params",
        json.dumps(PARAMS),
        "--owner",
        trader.username,
        stdout=out,
        stderr=io.StringIO(),
    )
    text = out.getvalue()
    assert "liquidation_price" in text and "USDT" in text
    assert BacktestRun.objects.filter(owner=trader).exists()


def test_perp_limits_hold_the_position_in_a_recording_run(trader):
    def run(limits):
        perp = {"leverage": 20, "wallet": "2000"} | ({"limits": limits} if limits else {})
        created = backtest_create(
            owner=trader,
            name="usdm limits",
            strategy="fixed_spread",
            params=PARAMS,
            data_source="recording",
            data_params={"recording": "binance-usdm-btcusdt", "max_events": 20_000, "perp": perp},
        )
        done = runner.backtest_execute(run_id=created.pk)
        assert done.status == RunStatus.SUCCEEDED, done.error
        return done.metrics

    free = run(None)
    held = run({"max_position_contracts": "0.002", "min_liquidation_distance": "0.05"})

    def widest(metrics):
        inv = metrics["quality"]["inventory"]
        return max(abs(Decimal(inv["min"])), abs(Decimal(inv["max"])))

    # The limit counts the position and the working orders not being cancelled: a quote being
    # replaced can still fill before its cancel lands (1 ms each way here), so the position can
    # pass 0.002 by at most that one 0.002 order; without the limit it wanders much further.
    assert widest(free) > Decimal("0.004")
    assert widest(held) <= Decimal("0.004")


def test_bad_perp_limits_are_refused_by_name():
    errors = validate_backtest_input(
        strategy="fixed_spread",
        params=PARAMS,
        risk={},
        data_source="recording",
        data_params={"recording": "binance-usdm-btcusdt", "perp": {"limits": {"max_position_contracts": "-1"}}},
    )
    assert "-1" in errors["data_params"]["perp"]["limits.max_position_contracts"]
