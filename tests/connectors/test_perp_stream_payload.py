"""A streamed Binance USD-M position (``ACCOUNT_UPDATE`` ``P`` row, fixtures/binanceusdm) parsed
by ccxt's own ``parse_ws_position`` reads as the same exact figures a REST read gives."""

from __future__ import annotations

import copy
from decimal import Decimal

from connectors.ccxt_venue import make_exchange
from tests.connectors.conftest import binance_markets
from tests.connectors.servers.binance_usdm_stream import account_update_template
from trading.contracts import MarginMode
from workers.perp_stream import stream_report


def parsed(row: dict) -> dict:
    ex = make_exchange("binanceusdm", api_key="k", secret="s", markets=binance_markets())
    return ex.parse_ws_position(row)


def test_a_streamed_short_isolated_position_keeps_the_exchange_figures_exactly():
    row = account_update_template()["a"]["P"][0]
    report = stream_report(parsed(row))
    assert report.symbol == "BTC/USDT:USDT" and report.position_side == "both"
    assert report.contracts == Decimal("-0.089")  # "pa", signed, as written
    assert report.entry_price == Decimal("19700.03933") and report.unrealized_pnl == Decimal("1.53058860")
    assert report.margin_mode is MarginMode.ISOLATED and report.isolated_wallet == Decimal("87.13658940")
    assert report.mark_price is None and report.liquidation_price is None  # not in the stream


def test_a_flat_streamed_position_has_no_side_and_no_contracts():
    row = copy.deepcopy(account_update_template()["a"]["P"][0])
    row.update(pa="0", ep="0.00000", up="0", mt="cross", iw="0")
    report = stream_report(parsed(row))
    assert report.contracts == 0 and report.margin_mode is MarginMode.CROSS and report.isolated_wallet is None


async def test_the_fake_usdm_user_data_stream_reaches_ccxt_watch_positions(fake) -> None:
    """ccxt's own listen key request and websocket against the fake: a position change and an
    isolated position's funding arrive as ``ACCOUNT_UPDATE`` positions; a cross position's
    funding moves only the balance (no position update)."""
    import asyncio

    from tests.connectors.servers.binance_usdm import FakeBinanceUsdm

    usdm = FakeBinanceUsdm(fake).install()
    ex = make_exchange(
        "binanceusdm",
        api_key="k",
        secret="s",
        markets=binance_markets(),
        http_base=fake.http_base,
        enable_rate_limit=False,
    )
    ex.options.setdefault("watchPositions", {})["fetchPositionsSnapshot"] = False
    try:
        watch = asyncio.create_task(ex.watch_positions(["BTC/USDT:USDT"]))
        for _ in range(100):
            if usdm.stream.sockets:
                break
            await asyncio.sleep(0.02)
        assert len(fake.calls("POST", "/fapi/v1/listenKey")) == 1
        usdm.move_position("BTCUSDT", "0.004", "60000")
        (report,) = [stream_report(r) for r in await asyncio.wait_for(watch, 3)]
        assert (report.contracts, report.entry_price) == (Decimal("0.004"), Decimal("60000"))

        usdm.pay_funding("BTCUSDT", "-0.25")  # cross: the balance only
        watch = asyncio.create_task(ex.watch_positions(["BTC/USDT:USDT"]))
        await asyncio.sleep(0.3)
        assert not watch.done() and usdm.stream.pushed[-1]["a"]["P"] == []
        pos = usdm.position("BTCUSDT")
        pos.margin_type, pos.isolated_wallet = "isolated", "48.00000000"
        usdm.pay_funding("BTCUSDT", "-0.25")
        (report,) = [stream_report(r) for r in await asyncio.wait_for(watch, 3)]
        assert report.margin_mode is MarginMode.ISOLATED and report.isolated_wallet == Decimal("48")
        assert usdm.stream.pushed[-1]["a"]["m"] == "FUNDING_FEE"
        assert usdm.stream.pushed[-1]["a"]["B"][0]["wb"] == "9999.50000000"
    finally:
        await ex.close()
