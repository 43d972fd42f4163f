"""Funding series: a CSV the user provides, validated line by line and stored whole or not at
all; perpetual backtests book the stored series at its funding times."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command

from apps.backtests import runner
from apps.backtests.models import RunStatus
from apps.backtests.services import backtest_create
from apps.derivatives.models import FundingRate
from apps.derivatives.services import FundingImportError, funding_from_ccxt, parse_funding_csv

pytestmark = pytest.mark.django_db


def test_csv_with_iso_and_epoch_times_parses_exactly():
    points = parse_funding_csv(b"time,rate\n2024-08-08T16:00:00Z,0.0001\n1723161600000,-0.00005\n")
    assert [p.rate for p in points] == [Decimal("0.0001"), Decimal("-0.00005")]
    assert points[1].ts == datetime(2024, 8, 9, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("content", "where", "says"),
    [
        (b"ts,funding\n1,0.1\n", "columns", "time,rate"),
        (b"time,rate\n2024-08-08T16:00:00Z,0.5\n", "line 2", "-0.03 to 0.03"),
        (b"time,rate\n2024-08-08T16:00:00Z,1e-4\n", "line 2", "plain decimal"),
        (b"time,rate\n2024-08-08T16:00:00Z,\xd9\xa3\n", "line 2", "plain decimal"),
        (b"time,rate\n2024-08-08 16:00,0.0001\n", "line 2", "with a zone"),
        (b"time,rate\n2024-08-08T16:00:00Z,0.0001\n2024-08-09T08:00:00Z,0.0001\n", "line 3", "at most 8 h"),
        (b"time,rate\n2024-08-08T16:00:00Z,0.0001\n2024-08-08T16:00:00Z,0.0001\n", "line 3", "not after"),
        (b"time,rate\n2024-08-08T16:00:00Z,0.0001,x\n", "line 2", "3 columns"),
    ],
)
def test_bad_csv_is_refused_naming_the_line_and_what_is_accepted(content, where, says):
    with pytest.raises(FundingImportError) as info:
        parse_funding_csv(content)
    assert says in info.value.errors[where]


def test_import_command_stores_the_series_or_nothing(tmp_path):
    good = tmp_path / "good.csv"
    good.write_text("time,rate\n2024-08-08T16:00:00Z,0.0001\n2024-08-09T00:00:00Z,0.0002\n")
    out = io.StringIO()
    call_command("import_funding", str(good), "--venue", "binanceusdm", "--symbol", "BTC/USDT:USDT", stdout=out)
    assert "stored 2" in out.getvalue() and FundingRate.objects.count() == 2
    bad = tmp_path / "bad.csv"
    bad.write_text("time,rate\n2024-08-10T00:00:00Z,0.0001\n2024-08-10T08:00:00Z,9\n")
    with pytest.raises(CommandError, match="line 3"):
        call_command("import_funding", str(bad), "--venue", "binanceusdm", "--symbol", "BTC/USDT:USDT")
    assert FundingRate.objects.count() == 2  # nothing of the bad file


def test_ccxt_funding_history_rows_become_points():
    points = funding_from_ccxt(
        [{"timestamp": 1723161600000, "fundingRate": 1e-05}, {"timestamp": 1723190400000, "fundingRate": 0.0001}]
    )
    assert [p.rate for p in points] == [Decimal("0.00001"), Decimal("0.0001")]


def test_a_perp_backtest_books_the_stored_series(trader):
    # the USD-M recording runs 23:54-00:00 UTC on 2024-08-08: a stored funding time at 23:57
    FundingRate.objects.create(
        venue="binanceusdm", symbol="BTC/USDT:USDT", ts=datetime(2024, 8, 8, 23, 57, tzinfo=UTC), rate=Decimal("0.0002")
    )
    run = backtest_create(
        owner=trader,
        name="stored funding",
        strategy="fixed_spread",
        params={"order_amount": "0.002", "bid_spread": "0.00005", "ask_spread": "0.00005", "refresh_time": "0.1"},
        data_source="recording",
        data_params={"recording": "binance-usdm-btcusdt", "perp": {"leverage": 10}},
    )
    done = runner.backtest_execute(run_id=run.pk)
    assert done.status == RunStatus.SUCCEEDED, done.error
    perp = done.metrics["perp"]
    assert perp["funding_source"] == "stored series"
    (payment,) = perp["fundings"]
    assert payment["ts"].startswith("2024-08-08T23:57") and payment["rate"] == "0.00020000"
    assert Decimal(perp["funding"]) == Decimal(payment["amount"])
