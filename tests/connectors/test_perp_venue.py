"""The live perpetual account through the real ccxt ``binanceusdm`` class against the local fake
USD-M API (tests/connectors/servers/binance_usdm.py): leverage, margin mode, reduce-only orders,
positions mapped onto the core's PerpPosition, funding, and the position comparison."""

from __future__ import annotations

import asyncio
import random
from decimal import Decimal
from fractions import Fraction

import pytest

from connectors.ccxt_gateway import CcxtGateway
from connectors.ccxt_perp import contract_spec_from_market
from connectors.ccxt_venue import make_exchange
from connectors.errors import Backoff, RetryPolicy
from connectors.perp_venue import CcxtPerpAccount, PerpVenueError, perp_position, position_mismatch
from connectors.ratelimit import LocalRateLimiter
from tests.connectors.conftest import binance_markets
from tests.connectors.servers.binance_usdm import FakeBinanceUsdm
from tests.connectors.test_ccxt_gateway import drain
from trading.contracts import MarginMode
from trading.events import OrderAccepted, OrderRejected, PlaceOrder, TimeInForce
from trading.instruments import Side
from trading.margin import BINANCE_USDM_BTCUSDT as TIERS
from trading.perp_risk import PerpRisk, PerpRiskLimits

SYMBOL = "BTC/USDT:USDT"


def exchange(fake):
    return make_exchange(
        "binanceusdm",
        api_key="test-key",
        secret="test-secret",
        markets=binance_markets(),
        http_base=fake.http_base,
        timeout_ms=2000,
        enable_rate_limit=False,
        streaming=False,
    )


@pytest.fixture
async def usdm(fake):
    return FakeBinanceUsdm(fake).install()


@pytest.fixture
async def account(fake):
    ex = exchange(fake)
    yield CcxtPerpAccount(ex)
    await ex.close()


def gateway(fake) -> CcxtGateway:
    async def no_wait(_s: float) -> None:
        return None

    return CcxtGateway(
        exchange(fake),
        limiter=LocalRateLimiter(rate=1000, burst=1000),
        retry_policy=RetryPolicy(attempts=2, backoff=Backoff(base_s=0.01, rng=random.Random(1)), sleep=no_wait),
        streaming=False,
        poll_interval_s=0.05,
    )


async def next_event(gw: CcxtGateway, wanted, timeout: float = 3.0):
    async def run():
        async for ev in gw.events():
            if wanted(ev):
                return ev
        return None

    return await asyncio.wait_for(run(), timeout)


async def test_leverage_is_set_on_the_venue_and_above_the_maximum_refused_before_sending(fake, usdm, account):
    assert await account.set_leverage(SYMBOL, 10) == 10
    (req,) = fake.calls("POST", "/fapi/v1/leverage")
    assert (req.query or req.body)["leverage"] == "10" and usdm.position("BTCUSDT").leverage == 10
    for bad in (126, 0, "5", 2.5, True):
        with pytest.raises(PerpVenueError, match=r"leverage: .* accepted: a whole number from 1 to 125"):
            await account.set_leverage(SYMBOL, bad)
    assert len(fake.calls("POST", "/fapi/v1/leverage")) == 1  # nothing more reached the venue
    with pytest.raises(PerpVenueError, match="spot market"):
        await account.set_leverage("BTC/USDT", 3)


async def test_margin_mode_switches_when_flat_and_is_refused_with_an_open_position(fake, usdm, account):
    assert await account.set_margin_mode(SYMBOL, "isolated") is True
    assert usdm.position("BTCUSDT").margin_type == "isolated"
    assert await account.set_margin_mode(SYMBOL, "isolated") is False  # already so: Binance's -4046, no error
    with pytest.raises(PerpVenueError, match="margin_mode: 'portfolio' is not accepted; accepted: cross, isolated"):
        await account.set_margin_mode(SYMBOL, "portfolio")
    usdm.position("BTCUSDT").amount, usdm.position("BTCUSDT").entry = Decimal("0.01"), Decimal("60000")
    sent = len(fake.calls("POST", "/fapi/v1/marginType"))
    with pytest.raises(PerpVenueError, match=r"cannot switch BTC/USDT:USDT to cross with an open position \(0.01"):
        await account.set_margin_mode(SYMBOL, "cross")
    assert len(fake.calls("POST", "/fapi/v1/marginType")) == sent and usdm.position("BTCUSDT").margin_type == "isolated"


async def test_reduce_only_orders_reach_the_venue_and_one_that_would_increase_is_rejected(fake, usdm):
    gw = gateway(fake)
    await gw.connect()
    try:
        inst = await gw.instrument(SYMBOL)
        price, lots = inst.ticks("60000"), inst.lots("0.01")
        # flat: a reduce-only sell would open a short; Binance refuses it (-2022)
        await gw.place(SYMBOL, PlaceOrder("mm1-s-1", Side.SELL, price, lots, TimeInForce.GTC, reduce_only=True))
        (rejected,) = await drain(gw, 1)
        assert isinstance(rejected, OrderRejected) and "ReduceOnly Order is rejected" in rejected.reason
        # long 0.01 after a fill: the reduce-only sell is accepted and sent as reduceOnly
        await gw.place(SYMBOL, PlaceOrder("mm1-b-1", Side.BUY, price, lots, TimeInForce.GTC))
        await drain(gw, 1)
        usdm.fill("mm1-b-1", "0.01")
        await gw.place(SYMBOL, PlaceOrder("mm1-s-2", Side.SELL, price + 10, lots, TimeInForce.GTC, reduce_only=True))
        accepted = await next_event(gw, lambda e: getattr(e, "client_order_id", "") == "mm1-s-2")
    finally:
        await gw.close()
    assert isinstance(accepted, OrderAccepted)
    assert usdm.orders["mm1-s-2"]["reduceOnly"] is True
    last = fake.calls("POST", "/fapi/v1/order")[-1]
    assert (last.query or last.body)["reduceOnly"] == "true"


async def test_positions_map_onto_the_core_position_and_funding_reaches_perp_risk(fake, usdm, account):
    pos = usdm.position("BTCUSDT")
    pos.amount, pos.entry, pos.leverage, pos.liquidation_price = Decimal("-0.025"), Decimal("61234.5"), 20, "63900.1"
    usdm.mark_prices["BTCUSDT"] = "61000.00000000"
    usdm.funding["BTCUSDT"] = ("0.00012500", 1723161600000)
    (report,) = await account.fetch_positions(SYMBOL)
    assert report.contracts == Decimal("-0.025") and report.entry_price == Decimal("61234.5")
    assert report.mark_price == Decimal("61000") and report.liquidation_price == Decimal("63900.1")
    inst = await gateway(fake).instrument(SYMBOL)
    spec = contract_spec_from_market(binance_markets()[SYMBOL])
    ours = perp_position([report], inst, spec)
    assert ours.net_lots == -25 and ours.entry_price() == Fraction("61234.5")
    # short 0.025 from 61,234.5 marked at 61,000: +0.025 x 234.5 = 5.8625 USDT, as the venue says
    assert ours.unrealized(Fraction(61000)) == Fraction("5.8625") == Fraction(report.unrealized_pnl)
    funding = await account.fetch_funding(SYMBOL)
    assert funding.rate == Decimal("0.000125") and funding.next_funding_ts == 1723161600000
    risk = PerpRisk(PerpRiskLimits(), inst, spec, TIERS, wallet="1000", leverage=20, margin_mode=MarginMode.CROSS)
    risk.set_funding(funding.rate, funding.next_funding_ts * 1_000_000)
    risk.set_mark(funding.mark_price)
    assert risk.funding_rate == Fraction(1, 8000) and risk.mark == 61000


def test_position_mismatch_beyond_the_tolerance_is_a_sentence(fake=None):
    from connectors.ccxt_perp import PositionReport

    venue = [
        PositionReport(SYMBOL, "both", Decimal("0.012"), Decimal(1), None, None, Decimal(0), None, None,
                       MarginMode.CROSS, 0)
    ]  # fmt: skip
    assert position_mismatch(SYMBOL, Decimal("0.012"), venue) is None
    assert position_mismatch(SYMBOL, Decimal("0.011"), venue, Decimal("0.001")) is None
    text = position_mismatch(SYMBOL, Decimal("0.010"), venue, Decimal("0.001"))
    assert text == (
        "BTC/USDT:USDT: our position is 0.01 contracts, the venue's 0.012 (difference -0.002, tolerance 0.001)"
    )


async def test_configure_applies_margin_mode_and_leverage_all_or_nothing(fake, usdm, account):
    # Leverage above the market's maximum: refused before the margin mode is touched.
    with pytest.raises(PerpVenueError, match=r"leverage: 126 .* from 1 to 125 \(the market's maximum on binanceusdm\)"):
        await account.configure(SYMBOL, 126, "isolated")
    assert fake.calls("POST", "/fapi/v1/marginType") == [] and fake.calls("POST", "/fapi/v1/leverage") == []
    # An open position in the other mode: the switch is refused and the leverage not sent.
    usdm.position("BTCUSDT").amount, usdm.position("BTCUSDT").entry = Decimal("-0.02"), Decimal("60000")
    with pytest.raises(PerpVenueError, match=r"margin_mode: cannot switch .* open position \(-0.02 contracts, cross\)"):
        await account.configure(SYMBOL, 5, "isolated")
    assert fake.calls("POST", "/fapi/v1/marginType") == [] and fake.calls("POST", "/fapi/v1/leverage") == []
    assert usdm.position("BTCUSDT").leverage == 20
    # The same mode as the open position: nothing to switch, the leverage is set.
    assert await account.configure(SYMBOL, 5, "cross") == ["leverage 5"]
    assert usdm.position("BTCUSDT").leverage == 5
    # Flat: both applied, margin mode first; None leaves a setting as the exchange has it.
    usdm.position("BTCUSDT").amount = Decimal(0)
    assert await account.configure(SYMBOL, 3, "isolated") == ["margin_mode isolated", "leverage 3"]
    assert await account.configure(SYMBOL, None, None) == []
    assert (usdm.position("BTCUSDT").leverage, usdm.position("BTCUSDT").margin_type) == (3, "isolated")


async def test_funding_payments_are_read_with_their_ids_from_the_income_history(fake, usdm, account):
    """ccxt ``fetchFundingHistory`` against ``/fapi/v1/income`` (``FUNDING_FEE`` rows in the
    recorded shape): exact amounts, the exchange's ids, from ``since`` (inclusive), oldest first;
    another market's payments are not ours."""
    usdm.pay_funding("BTCUSDT", "-0.02999500", 1_800_000_000_000)
    usdm.pay_funding("ETHUSDT", "0.5", 1_800_000_000_000)
    later = usdm.pay_funding("BTCUSDT", "0.01", 1_800_028_800_000)
    payments = await account.fetch_funding_payments(SYMBOL, 1_800_000_000_000)
    assert [(p.amount, p.currency, p.ts) for p in payments] == [
        (Decimal("-0.02999500"), "USDT", 1_800_000_000_000),
        (Decimal("0.01000000"), "USDT", 1_800_028_800_000),
    ]
    assert payments[1].payment_id == later["tranId"] and payments[0].payment_id != later["tranId"]
    assert [p.payment_id for p in await account.fetch_funding_payments(SYMBOL, 1_800_000_000_001)] == [later["tranId"]]
    sent = fake.calls("GET", "/fapi/v1/income")[-1].query
    assert (sent["incomeType"], sent["symbol"], sent["limit"]) == ("FUNDING_FEE", "BTCUSDT", "1000")


async def test_an_isolated_positions_margin_is_read_from_position_risk(fake, usdm, account):
    pos = usdm.position("BTCUSDT")
    pos.amount, pos.entry, pos.margin_type, pos.isolated_wallet = (
        Decimal("0.004"),
        Decimal("59940"),
        "isolated",
        "23.97600000",
    )
    (report,) = await account.fetch_positions(SYMBOL)
    assert report.margin_mode is MarginMode.ISOLATED and report.isolated_wallet == Decimal("23.976")
    pos.margin_type, pos.isolated_wallet = "cross", "0"
    (report,) = await account.fetch_positions(SYMBOL)
    assert report.isolated_wallet is None
