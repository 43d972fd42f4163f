"""Binance USD-M's mark price stream (``markPriceUpdate``, fixtures/binanceusdm) served by the fake
USD-M server reaches ccxt's own ``watch_mark_price``, and :func:`workers.perp_mark_stream.parse_update`
reads the exchange's exact figures from it or refuses an absurd one with its reason."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from fractions import Fraction

import pytest

from connectors.ccxt_venue import make_exchange
from tests.connectors.conftest import binance_markets
from tests.connectors.servers.binance_usdm_stream import mark_price_template
from workers.perp_mark_stream import BadMark, parse_update

SYMBOL = "BTC/USDT:USDT"
TICK = Decimal("0.1")


def ticker(**info) -> dict:
    return {"symbol": SYMBOL, "info": {**mark_price_template(), **info}}


def test_the_documented_frame_reads_exactly():
    mark, rate, next_ms, _index = parse_update(ticker(), SYMBOL, TICK)
    assert (mark, rate, next_ms) == (Decimal("11794.15000000"), Decimal("0.00038167"), 1562306400000)


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("p", "-5", "bad_mark"),
        ("p", "0", "bad_mark"),
        ("p", "abc", "bad_mark"),
        ("p", "1e400", "bad_mark"),  # a decimal, but beyond 2**63-1 ticks
        ("p", "NaN", "bad_mark"),
        ("p", float("inf"), "bad_mark"),
        ("p", None, "bad_mark"),
        ("r", "abc", "bad_funding_rate"),
        ("r", "1e400", "bad_funding_rate"),
        ("T", "x", "bad_funding_time"),
        ("T", -1, "bad_funding_time"),
    ],
)
def test_an_absurd_figure_is_refused_naming_it(field, value, reason):
    with pytest.raises(BadMark) as err:
        parse_update(ticker(**{field: value}), SYMBOL, TICK)
    assert err.value.reason == reason and repr(value) in str(err.value)


def test_another_markets_update_is_refused():
    with pytest.raises(BadMark) as err:
        parse_update({**ticker(), "symbol": "ETH/USDT:USDT"}, SYMBOL, TICK)
    assert err.value.reason == "wrong_symbol"


async def test_the_fake_mark_stream_reaches_ccxt_watch_mark_price(fake) -> None:
    """ccxt subscribes ``btcusdt@markPrice@1s`` on its market stream path; the fake answers with
    the current mark at once, every interval, and on ``set_mark``; a dropped stream fails the
    pending watch and a new one subscribes again."""
    from tests.connectors.servers.binance_usdm import FakeBinanceUsdm

    usdm = FakeBinanceUsdm(fake).install()
    usdm.marks.interval_s = 0.2
    usdm.mark_prices["BTCUSDT"] = "60000.10000000"
    usdm.funding["BTCUSDT"] = ("0.00012500", 1_900_000_000_000)
    ex = make_exchange("binanceusdm", markets=binance_markets(), http_base=fake.http_base, enable_rate_limit=False)
    try:
        first = await asyncio.wait_for(ex.watch_mark_price(SYMBOL), 3)
        assert parse_update(first, SYMBOL, TICK)[:3] == (Decimal("60000.1"), Decimal("0.000125"), 1_900_000_000_000)
        assert usdm.marks.received == [{"method": "SUBSCRIBE", "params": ["btcusdt@markPrice@1s"], "id": 1}]
        watch = asyncio.create_task(ex.watch_mark_price(SYMBOL))
        await asyncio.sleep(0.05)
        await usdm.set_mark("BTCUSDT", "59000.50000000", ("-0.00030000", 1_900_000_028_800))
        got = await asyncio.wait_for(watch, 3)
        assert parse_update(got, SYMBOL, TICK)[:3] == (Decimal("59000.5"), Decimal("-0.0003"), 1_900_000_028_800)
        assert json.loads(usdm.marks.pushed[-1])["e"] == "markPriceUpdate"

        ticks = len(usdm.marks.pushed)
        await asyncio.sleep(0.5)  # the 1 s stream, here 0.2 s
        assert len(usdm.marks.pushed) >= ticks + 2

        watch = asyncio.create_task(ex.watch_mark_price(SYMBOL))
        await asyncio.sleep(0)
        usdm.marks.accepting = False
        await usdm.marks.drop()
        with pytest.raises(Exception):  # noqa: B017 - ccxt's NetworkError for a closed connection
            await asyncio.wait_for(watch, 3)
        usdm.marks.accepting = True
        again = await asyncio.wait_for(ex.watch_mark_price(SYMBOL), 5)
        assert again["info"]["p"] == "59000.50000000" and usdm.marks.connections == 2
    finally:
        await ex.close()


def test_an_update_without_funding_gives_the_mark_only():
    info = {k: v for k, v in mark_price_template().items() if k not in ("r", "T")}
    assert parse_update({"symbol": SYMBOL, "info": info}, SYMBOL, TICK)[:3] == (Decimal("11794.15"), None, None)


async def test_ccxt_unified_fields_are_read_first_and_binance_fields_fill_in(fake) -> None:
    """ccxt's own mark price ticker of the fake's frame: the unified ``markPrice`` / ``indexPrice``
    (floats ccxt parsed from Binance's strings, so those exact strings stand for them), the
    funding from Binance's ``r`` / ``T`` (ccxt's ticker has none)."""
    from tests.connectors.servers.binance_usdm import FakeBinanceUsdm

    usdm = FakeBinanceUsdm(fake).install()
    usdm.mark_prices["BTCUSDT"] = "60000.12345678"
    usdm.funding["BTCUSDT"] = ("0.00038167", 1562306400000)
    ex = make_exchange("binanceusdm", markets=binance_markets(), http_base=fake.http_base, enable_rate_limit=False)
    try:
        parsed = await asyncio.wait_for(ex.watch_mark_price(SYMBOL), 3)
    finally:
        await ex.close()
    assert isinstance(parsed["markPrice"], float) and parsed["markPrice"] == 60000.12345678
    assert parsed.get("fundingRate") is None  # ccxt's ticker: the funding is Binance's own fields
    update = parse_update(parsed, SYMBOL, TICK)
    assert update == (Decimal("60000.12345678"), Decimal("0.00038167"), 1562306400000, Decimal("60000.12345678"))
    # ccxt's unified mark wins over Binance's field when they differ (another exchange's layout)
    assert parse_update({**parsed, "markPrice": 60001.5}, SYMBOL, TICK).mark == Decimal("60001.5")


def test_another_exchanges_unified_funding_rate_structure_is_read():
    """A structure with ccxt's unified fields only (no Binance ``p`` / ``r`` / ``T``), as ccxt's
    ``watchFundingRate`` gives on the exchanges that stream one: here ccxt's own parse of a
    Binance ``premiumIndex`` reply, whose ``info`` holds none of the stream's field names."""
    import ccxt

    ex = ccxt.binanceusdm()
    ex.set_markets(binance_markets())
    unified = ex.parse_funding_rate(
        {
            "symbol": "BTCUSDT",
            "markPrice": "61234.50000000",
            "indexPrice": "61230.00000000",
            "lastFundingRate": "-0.00021000",
            "nextFundingTime": 1900000028800,
            "time": 1899999999000,
        }
    )
    assert "p" not in unified["info"] and "r" not in unified["info"]
    assert parse_update(unified, SYMBOL, TICK) == (
        Decimal("61234.5"),
        Decimal("-0.00021"),
        1900000028800,
        Decimal("61230"),
    )
    # the same structure with floats ccxt might write and no info at all: still exact by repr
    bare = {"symbol": SYMBOL, "markPrice": 61234.5, "fundingRate": 0.0001, "nextFundingTimestamp": 1900000028800}
    assert parse_update(bare, SYMBOL, TICK)[:3] == (Decimal("61234.5"), Decimal("0.0001"), 1900000028800)


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("markPrice", float("inf"), "bad_mark"),  # ccxt's float of Binance's "1e400"
        ("markPrice", float("nan"), "bad_mark"),
        ("markPrice", -5.0, "bad_mark"),
        ("fundingRate", 2.0, "bad_funding_rate"),
        ("fundingRate", float("nan"), "bad_funding_rate"),
        ("fundingTimestamp", 1.5, "bad_funding_time"),
    ],
)
def test_an_absurd_unified_figure_is_refused_naming_it(field, value, reason):
    good = {"symbol": SYMBOL, "markPrice": 61234.5, "fundingRate": 0.0001, "fundingTimestamp": 1900000028800}
    with pytest.raises(BadMark) as err:
        parse_update({**good, field: value}, SYMBOL, TICK)
    assert err.value.reason == reason and field in str(err.value)


def test_the_stream_watched_is_the_mark_price_else_the_funding_rate():
    from workers.perp_mark_stream import supported, watch_method

    class Exchange:
        def __init__(self, has):
            self.has = has

        async def watch_mark_price(self, symbol):  # pragma: no cover - never awaited here
            return {}

        async def watch_funding_rate(self, symbol):  # pragma: no cover
            return {}

    assert watch_method(Exchange({"watchMarkPrice": True, "watchFundingRate": True})) == "watch_mark_price"
    assert watch_method(Exchange({"watchMarkPrice": False, "watchFundingRate": True})) == "watch_funding_rate"
    assert watch_method(Exchange({})) is None and not supported(Exchange({}))


async def test_a_stream_with_ccxt_unified_fields_only_feeds_risk(fake) -> None:
    """An exchange without ``watchMarkPrice`` whose ``watchFundingRate`` gives ccxt's unified
    funding rate structure only (none of Binance's stream fields): the :class:`MarkStream` watches
    it and moves perpetual risk's mark, funding rate and next funding time; an absurd update is
    dropped and counted. The structure comes through the fake's real websocket: ccxt's own
    ``parse_funding_rate`` of each ``markPriceUpdate`` under the REST names, ``info`` emptied."""
    import types

    import ccxt.pro

    from tests.connectors.servers.binance_usdm import FakeBinanceUsdm
    from trading.contracts import ContractSpec
    from trading.instruments import Instrument
    from trading.isolated_margin import LivePerpRisk
    from trading.margin import BINANCE_USDM_BTCUSDT
    from trading.perp_risk import PerpRiskLimits
    from workers.perp_mark_stream import MarkStream

    class Other(ccxt.pro.binanceusdm):
        def describe(self):
            d = super().describe()
            d["has"] = {**d["has"], "watchMarkPrice": False, "watchMarkPrices": False, "watchFundingRate": True}
            return d

        async def watch_funding_rate(self, symbol, params={}):  # noqa: B006 - ccxt's signature
            t = await self.watch_mark_price(symbol)
            i = t["info"]
            rest = {"symbol": i["s"], "markPrice": i["p"], "indexPrice": i["i"], "lastFundingRate": i["r"]}
            unified = self.parse_funding_rate({**rest, "nextFundingTime": i["T"], "time": i["E"]})
            return {**unified, "info": {}}

    usdm = FakeBinanceUsdm(fake).install()
    usdm.mark_prices["BTCUSDT"] = "60000.10000000"
    usdm.funding["BTCUSDT"] = ("0.00012500", 1_900_000_000_000)
    ex = make_exchange("binanceusdm", markets=binance_markets(), http_base=fake.http_base, enable_rate_limit=False)
    other = Other({"enableRateLimit": False})
    other.urls, other.markets, other.markets_by_id, other.symbols = ex.urls, ex.markets, ex.markets_by_id, ex.symbols
    inst = Instrument.create(symbol=SYMBOL, tick_size="0.1", lot_size="0.001", min_notional="5")
    spec = ContractSpec.create(kind="linear", contract_size=1, settle="USDT", max_leverage=125)
    risk = LivePerpRisk(PerpRiskLimits(), inst, spec, BINANCE_USDM_BTCUSDT, wallet="1000", leverage=10)
    said: list[str] = []
    runner = types.SimpleNamespace(
        bot_id=1, engine=types.SimpleNamespace(instrument=inst, perp=risk), _event=lambda *a: said.append(a[1])
    )
    perp = types.SimpleNamespace(
        runner=runner,
        symbol=SYMBOL,
        venue=types.SimpleNamespace(gateway=types.SimpleNamespace(exchange=other), scrub=str),
        timer=types.SimpleNamespace(soon=lambda _d: None),
    )
    stream = MarkStream(perp)
    assert stream.method == "watch_funding_rate"
    stream.start()
    try:
        for _ in range(100):
            if stream.updates:
                break
            await asyncio.sleep(0.02)
        assert risk.mark == Fraction("60000.1") and risk.funding_rate == Fraction("0.000125")
        assert risk.next_funding_ts == 1_900_000_000_000 * 1_000_000 and stream.index == Decimal("60000.1")
        assert said == ["mark_stream_live"]
        await usdm.set_mark("BTCUSDT", "59000.50000000", ("-0.00030000", 1_900_000_028_800))
        for _ in range(100):
            if risk.mark == Fraction("59000.5"):
                break
            await asyncio.sleep(0.02)
        assert risk.mark == Fraction("59000.5") and risk.funding_rate == Fraction("-0.0003")
        await usdm.set_mark("BTCUSDT", "-5")  # absurd: dropped, counted, the figures in use stay
        for _ in range(100):
            if stream.dropped["bad_mark"]:
                break
            await asyncio.sleep(0.02)
        assert stream.dropped["bad_mark"] == 1 and risk.mark == Fraction("59000.5")
    finally:
        await stream.stop()
        await other.close()
        await ex.close()
