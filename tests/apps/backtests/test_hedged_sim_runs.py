"""Hedged backtests on simulated venues (apps/backtests/hedged_sim.py): perp-to-perp on the
seeded sim perpetuals ``sim:gamma`` / ``sim:delta`` ``BTC/USDT:USDT`` over a window of the hosted
synthetic market (the books and trades the paper venues play live), from the API and
``run_backtest``; each perpetual leg keeps its own account (margin, funding at the 00:00 funding
time inside the window); every maker fill is hedged within the hedge venue's round trip plus the
hedge timeout and the exposure never passes its limit; with a small wallet each leg's pre-trade
margin check refuses what its margin cannot carry (counted, shown); bad sim inputs refused by
field, value and what is accepted."""

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
    "maker": "sim:gamma",
    "hedge": "sim:delta",
    "maker_latency_ms": 10,
    "hedge_latency_ms": 5,
    "sim_start": 1_796_687_700,  # 2026-12-07 23:55 UTC
    "sim_seconds": 600,
    "maker_perp": {"leverage": 10, "wallet": "100000", "funding_rate": "0.0001"},
    "hedge_perp": {"leverage": 5, "wallet": "60000", "funding_rate": "0.0001"},
    "bot": {"order_amount": "0.002", "min_profitability": "0.0007", "max_unhedged": "0.004",
            "hedge_timeout_ms": 500},
}  # fmt: skip


@pytest.fixture(autouse=True)
def sim_perpetuals(db):
    """The seeded sim perpetuals (a transactional test earlier in the session flushes them)."""
    import importlib

    from django.apps import apps as registry

    importlib.import_module("apps.exchanges.migrations.0006_seed_sim_perpetuals").seed(registry, None)


def errors(data):
    return validate_backtest_input(
        strategy="hedged_maker", params={}, risk={}, data_source="hedged_recordings", data_params=data
    )


def test_sim_legs_are_validated_by_field():
    assert errors(DATA) == {}
    bad = errors({**DATA, "hedge": "sim:nowhere"})["data_params"]
    assert bad["hedge"].startswith("'sim:nowhere' is not accepted: sim:nowhere has no stored market; accepted: a sim")
    assert "'sim:delta BTC/USDT:USDT'" in bad["hedge"]
    bad = errors({**DATA, "hedge": "binance-usdm-btcusdt"})["data_params"]
    assert bad["hedge"].startswith("'binance-usdm-btcusdt' is not accepted with a sim leg; accepted: another sim venue")
    bad = errors({**DATA, "sim_seconds": 0, "sim_start": "today"})["data_params"]
    assert bad["sim_seconds"] == "0 is not accepted; give a whole number of seconds from 1 to 86400"
    assert bad["sim_start"].startswith("'today' is not accepted; give a whole number of seconds")
    spot = {"maker": "binance-spot-btcusdt", "hedge": "binance-usdm-btcusdt", "sim_seconds": 60,
            "bot": {"order_amount": "0.002", "min_profitability": "0.002"}}  # fmt: skip
    assert errors(spot)["data_params"]["sim_seconds"] == "applies to sim legs only; remove it for recordings"
    # both perpetual legs' fees (maker 0.02 % + hedge taker 0.05 %) bound the profitability
    bad = errors({**DATA, "bot": {**DATA["bot"], "min_profitability": "0.0006"}})["data_params"]["bot"]
    assert "accepted: at least 0.0007" in bad["min_profitability"]
    bad = errors({**DATA, "bot": {**DATA["bot"], "order_amount": "0.0025"}})["data_params"]["bot"]
    assert "'0.0025' is not a multiple of the lot size 0.001" in bad["order_amount"]  # the maker's contract lot


def test_perp_to_perp_backtest_on_two_sim_perpetuals(trader, api_for):
    response = api_for(trader).post(
        "/api/v1/backtests/",
        {"name": "perp-perp", "strategy": "hedged_maker", "params": {}, "data_source": "hedged_recordings",
         "data_params": DATA},
        format="json",
    )  # fmt: skip
    assert response.status_code == 201, response.json()
    done = runner.backtest_execute(run_id=response.json()["id"])
    assert done.status == RunStatus.SUCCEEDED, done.error
    h = done.metrics["hedged"]
    assert h["maker"] == "sim:gamma (BTC/USDT:USDT)" and h["hedge"] == "sim:delta (BTC/USDT:USDT)"
    assert h["maker_fills"] >= 3 and h["hedge_fills"] >= 1, h
    assert 590 <= done.metrics["duration_s"] <= 600
    assert Decimal(h["exposure_max"]) <= Decimal("0.004") == Decimal(h["exposure_limit"])
    # every maker fill covered, within the hedge venue's round trip (2 x 5 ms) plus the timeout
    rows = h["attribution_fills"]
    assert len(rows) == min(500, h["maker_fills"])  # the payload keeps the first 500 rows
    covered = [r for r in rows if Decimal(r["open_qty"]) == 0]
    assert len(covered) >= len(rows) - 1, rows  # the last fill may still be in flight at the window's end
    assert h["attribution"]["hedge_latency_ms"]["max"] <= 5 + 5 + 500
    # each perpetual leg's own account: its leverage and wallet, margin used, funding at 00:00
    maker, hedge = h["maker_perp"], h["hedge_perp"]
    assert (maker["leverage"], Decimal(maker["wallet"])) == (10, 100000)
    assert (hedge["leverage"], Decimal(hedge["wallet"])) == (5, 60000)
    assert Decimal(maker["max_margin_used"]) > 0 and Decimal(hedge["max_margin_used"]) > 0
    assert maker["liquidated_at"] is None and hedge["liquidated_at"] is None
    # the legs hold opposite positions at the funding time: one pays what the other receives
    assert Decimal(maker["funding"]) * Decimal(hedge["funding"]) < 0
    assert Decimal(h["funding"]) == Decimal(maker["funding"]) + Decimal(hedge["funding"])
    assert Decimal(maker["fees"]) == Decimal(h["maker_fees"]) and Decimal(hedge["fees"]) == Decimal(h["hedge_fees"])
    total = Decimal(done.metrics["total_pnl"])
    assert total == Decimal(h["maker_pnl"]) + Decimal(h["hedge_pnl"]) + Decimal(h["funding"])
    json.dumps(done.metrics)


def test_a_small_wallet_never_shows_margin_used_above_it(trader, client):
    """Both legs on 100 USDT at 5x (500 USDT of notional, about 0.008 BTC): each maker quote of
    0.002 BTC needs about 24 USDT of initial margin, so from the fourth 0.002 held on one side on
    the maker leg's pre-trade check refuses the quotes that would add to it; the run counts the
    refusals and shows them, and neither leg's margin used passes its wallet (before the check the
    same run used over 4,000 USDT of margin and was liquidated)."""
    from apps.backtests.services import backtest_create

    small = {"leverage": 5, "wallet": "100", "funding_rate": "0.0001"}
    data = {**DATA, "maker_perp": small, "hedge_perp": small}
    run = backtest_create(
        owner=trader, name="small wallet", strategy="hedged_maker", params={}, risk={},
        data_source="hedged_recordings", data_params=data,
    )  # fmt: skip
    done = runner.backtest_execute(run_id=run.pk)
    assert done.status == RunStatus.SUCCEEDED, done.error
    h = done.metrics["hedged"]
    for leg in ("maker", "hedge"):
        perp = h[f"{leg}_perp"]
        assert Decimal(perp["max_margin_used"]) <= Decimal(perp["wallet"]) == 100, (leg, perp)
        assert perp["liquidated_at"] is None
        assert abs(Decimal(perp["position_contracts"])) <= Decimal("0.008")  # 4 quotes of 0.002 at most
    assert h["margin_refused"]["maker"] > 100 and h["margin_refused_codes"]["maker"].keys() == {"insufficient_margin"}
    first = h["margin_refused_first"]["maker"]
    assert "needs 24." in first and "USDT initial margin at 5x; free margin is" in first
    assert first.endswith("(not sent: the maker leg's pre-trade margin check)")
    assert h["maker_fills"] >= 4 and h["maker_fills"] == h["hedge_fills"]  # every maker fill still hedged
    client.force_login(trader)
    page = client.get(f"/backtests/{done.pk}/").content.decode()
    assert "maker perp orders refused (margin check)" in page and str(h["margin_refused"]["maker"]) in page
    assert "maker perp first refusal" in page


def test_run_backtest_runs_a_sim_perp_to_perp_hedge():
    out = io.StringIO()
    call_command(
        "run_backtest",
        "--strategy=hedged_maker",
        "--params={}",
        "--source=hedged_recordings",
        f"--data={json.dumps({**DATA, 'sim_seconds': 120})}",
        stdout=out,
        stderr=io.StringIO(),
    )
    text = out.getvalue()
    for label in ("maker_pnl", "hedge_pnl", "exposure max / limit", "maker perp orders refused (margin check)"):
        assert label in text
