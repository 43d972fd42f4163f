"""``manage.py fetch_funding``: a perpetual's funding-rate history read through ccxt's real
``binanceusdm`` class (``fetchFundingRateHistory``, ``GET /fapi/v1/fundingRate``) from the local
fake USD-M server, paged past Binance's 1,000-row limit, stored whole as the market's funding
series (source ``ccxt``) and read back as a backtest's funding schedule; refused by field, with
nothing stored, for a symbol the venue does not list, a gap in the history, bad dates."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from tests.workers.test_live_venue import FakeBinanceThread

pytestmark = pytest.mark.django_db

EIGHT_H_MS = 8 * 3600 * 1000
START_MS = 1_762_000_000_000 - 1_762_000_000_000 % EIGHT_H_MS  # a funding time in 2025-11


@pytest.fixture
def usdm(monkeypatch):
    from connectors import ccxt_venue
    from tests.connectors.conftest import binance_markets
    from tests.connectors.servers.binance_usdm import FakeBinanceUsdm

    fake = FakeBinanceThread()
    server = fake.run(lambda: FakeBinanceUsdm(fake.server).install())
    monkeypatch.setenv("MM_LIVE_HTTP_BASE", fake.server.http_base)
    real = ccxt_venue.make_exchange

    def offline_markets(exchange_id, **kwargs):  # ccxt's recorded markets: the fake serves no exchangeInfo
        return real(exchange_id, markets=binance_markets(), **kwargs)

    monkeypatch.setattr(ccxt_venue, "make_exchange", offline_markets)
    yield fake, server
    fake.stop()


def _history(n: int, start_ms: int = START_MS) -> list[tuple[int, str]]:
    rates = ("0.00010000", "-0.00002500", "0.00031250")
    return [(start_ms + i * EIGHT_H_MS, rates[i % 3]) for i in range(n)]


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat()


def test_the_history_is_paged_stored_and_read_back_as_the_funding_schedule(usdm):
    from apps.derivatives.models import FundingRate
    from apps.derivatives.services import funding_schedule

    fake, server = usdm
    history = _history(2_500)  # three pages of Binance's 1,000
    fake.run(server.funding_history.__setitem__, "BTCUSDT", history)
    out = io.StringIO()
    call_command("fetch_funding", venue="binanceusdm", symbol="BTC/USDT:USDT", since=_iso(START_MS), stdout=out)
    assert out.getvalue().strip() == "stored 2500 funding times for binanceusdm BTC/USDT:USDT from the exchange"
    rows = list(FundingRate.objects.filter(venue="binanceusdm", symbol="BTC/USDT:USDT").order_by("ts"))
    assert len(rows) == 2_500 and {r.source for r in rows} == {"ccxt"}
    assert [(int(r.ts.timestamp() * 1000), r.rate) for r in rows[:3]] == [
        (START_MS, Decimal("0.0001")), (START_MS + EIGHT_H_MS, Decimal("-0.000025")),
        (START_MS + 2 * EIGHT_H_MS, Decimal("0.0003125"))]  # fmt: skip
    queries = fake.run(lambda: [r.query for r in fake.server.requests if r.path == "/fapi/v1/fundingRate"])
    # each page starts just after the newest funding time of the one before
    assert [int(q["startTime"]) for q in queries] == [
        START_MS, START_MS + 999 * EIGHT_H_MS + 1, START_MS + 1999 * EIGHT_H_MS + 1]  # fmt: skip
    assert {q["limit"] for q in queries} == {"1000"} and {q["symbol"] for q in queries} == {"BTCUSDT"}
    schedule = funding_schedule(venue="binanceusdm", symbol="BTC/USDT:USDT")
    assert schedule is not None
    # --until bounds the range; fetched again, the stored times are replaced, not doubled
    call_command("fetch_funding", venue="binanceusdm", symbol="BTC/USDT:USDT", since=_iso(START_MS),
                 until=_iso(START_MS + 9 * EIGHT_H_MS), stdout=io.StringIO())  # fmt: skip
    assert FundingRate.objects.filter(venue="binanceusdm", symbol="BTC/USDT:USDT").count() == 2_500


def test_a_gap_in_the_exchanges_history_is_refused_and_nothing_is_stored(usdm):
    from apps.derivatives.models import FundingRate

    fake, server = usdm
    history = _history(10)
    del history[4]  # a funding time missing: 16 h between two
    fake.run(server.funding_history.__setitem__, "BTCUSDT", history)
    with pytest.raises(CommandError) as refused:
        call_command("fetch_funding", venue="binanceusdm", symbol="BTC/USDT:USDT", since=_iso(START_MS))
    assert "gap of 16:00:00" in str(refused.value) and "at most 8 h between funding times" in str(refused.value)
    assert not FundingRate.objects.exists()
    # the same history with the gap allowed
    call_command("fetch_funding", venue="binanceusdm", symbol="BTC/USDT:USDT", since=_iso(START_MS),
                 max_gap_hours=16, stdout=io.StringIO())  # fmt: skip
    assert FundingRate.objects.count() == 9


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"symbol": "BTC/USDT"}, "symbol: 'BTC/USDT' is not a perpetual on binanceusdm; accepted: e.g."),
        ({"venue": "nosuchexchange"}, "venue: exchange_id: 'nosuchexchange' is not a ccxt exchange"),
        ({"since": "yesterday"}, "--since: 'yesterday'; accepted: ISO 8601 with a zone"),
        ({"since": "2025-11-01T00:00:00"}, "--since: '2025-11-01T00:00:00'; accepted: ISO 8601 with a zone"),
        ({"until": "2025-10-01T00:00:00Z"}, "until: 2025-10-01T00:00:00+00:00 is not after --since"),
        ({"since": "2030-01-01T00:00:00Z"}, "rows: binanceusdm returned no funding time for BTC/USDT:USDT"),
    ],
)
def test_bad_options_are_refused_by_name(usdm, options, expected):
    from apps.derivatives.models import FundingRate

    fake, server = usdm
    fake.run(server.funding_history.__setitem__, "BTCUSDT", _history(5))
    args = {"venue": "binanceusdm", "symbol": "BTC/USDT:USDT", "since": _iso(START_MS), **options}
    with pytest.raises(CommandError) as refused:
        call_command("fetch_funding", **args)
    assert expected in str(refused.value), str(refused.value)
    assert not FundingRate.objects.exists()
