"""ccxt's real derivative payloads (Binance USD-M and COIN-M positions, funding history, markets)
parse into the core's perpetual types, and the liquidation formula agrees with Binance's."""

from __future__ import annotations

from decimal import Decimal

import ccxt
import pytest

from connectors.ccxt_perp import (
    PerpPayloadError,
    bracket_table_from_ccxt,
    contract_spec_from_market,
    funding_payment_from_ccxt,
    funding_rate_from_ccxt,
    position_from_ccxt,
)
from tests.connectors.conftest import binance_markets, case
from trading.contracts import ContractKind, MarginMode, to_decimal
from trading.margin import BINANCE_COINM_BTCUSD, BINANCE_USDM_BTCUSDT, liquidation_price


def test_market_metadata_gives_linear_and_inverse_specs() -> None:
    markets = binance_markets()
    usdm = contract_spec_from_market(markets["BTC/USDT:USDT"])
    coinm = contract_spec_from_market(markets["BTC/USD:BTC"])
    assert (usdm.kind, usdm.contract_size, usdm.settle) == (ContractKind.LINEAR, Decimal(1), "USDT")
    assert (coinm.kind, coinm.contract_size, coinm.settle) == (ContractKind.INVERSE, Decimal(100), "BTC")
    assert contract_spec_from_market(markets["BTC/USDT"]).kind is ContractKind.SPOT


@pytest.mark.parametrize(
    "description",
    ["Fetch linear positions without symbols", "Fetch linear positions with symbols", "inverse positions"],
)
def test_real_positions_parse_with_the_exchanges_exact_strings(description: str) -> None:
    c = case("response", "binance", "fetchPositions", description)
    parsed = c["parsedResponse"][0]
    report = position_from_ccxt(parsed)
    raw = parsed["info"]
    assert report.contracts == Decimal(raw["positionAmt"])  # signed, from Binance's own string
    assert report.entry_price == Decimal(raw["entryPrice"])
    assert report.mark_price == Decimal(raw["markPrice"])
    assert report.liquidation_price == Decimal(raw["liquidationPrice"])
    assert report.unrealized_pnl == Decimal(raw["unRealizedProfit"])
    assert report.margin_mode is MarginMode.CROSS and report.position_side == "both"


def test_real_inverse_position_liquidation_price_agrees_with_binance() -> None:
    """Short 3 BTCUSD_PERP contracts (300 USD) at 68,911.00000037, liquidation 72,491.16879818 BTC-margined,
    cross with ccxt's collateral 0.00023156 BTC as the wallet. ccxt rounds that collateral to 1e-8 BTC,
    which moves the price by about 0.18 USD per 1e-8 here, so the two agree to within 0.2 USD."""
    parsed = case("response", "binance", "fetchPositions", "inverse positions")["parsedResponse"][0]
    report = position_from_ccxt(parsed)
    spec = contract_spec_from_market(binance_markets()["BTC/USD:BTC"])
    lp = liquidation_price(
        spec, BINANCE_COINM_BTCUSD, Decimal(repr(parsed["collateral"])), [(report.contracts, report.entry_price)]
    )
    assert abs(to_decimal(lp, 8) - report.liquidation_price) < Decimal("0.2")


def test_real_linear_position_liquidation_price_agrees_with_binance() -> None:
    parsed = case("response", "binance", "fetchPositions", "Fetch linear positions without symbols")["parsedResponse"][
        0
    ]
    report = position_from_ccxt(parsed)
    spec = contract_spec_from_market(binance_markets()["BTC/USDT:USDT"])
    lp = liquidation_price(
        spec, BINANCE_USDM_BTCUSDT, Decimal(repr(parsed["collateral"])), [(report.contracts, report.entry_price)]
    )
    assert abs(to_decimal(lp, 8) - report.liquidation_price) <= Decimal("0.00000005")


def test_real_funding_payment_parses() -> None:
    c = case("response", "binance", "fetchFundingHistory")
    payment = funding_payment_from_ccxt(c["parsedResponse"][0])
    assert payment.amount == Decimal("-0.04618913") and payment.currency == "USDT"
    assert payment.ts == 1707465600000 and payment.symbol == "BTC/USDT:USDT"
    # Binance's FUNDING_FEE row names no position side: a hedge-mode bot splits it over its legs
    assert "positionSide" not in c["parsedResponse"][0]["info"] and payment.position_side is None
    # an exchange that says the leg (its raw row's position side) books it on that leg
    row = c["parsedResponse"][0]
    named = funding_payment_from_ccxt({**row, "info": {**row["info"], "positionSide": "SHORT"}})
    assert named.position_side == "short" and named.amount == payment.amount


def test_funding_rate_from_ccxts_own_parser_of_binances_premium_index() -> None:
    # The shape Binance documents for GET /fapi/v1/premiumIndex, parsed by ccxt's own code.
    exchange = ccxt.binance()
    exchange.set_markets(list(binance_markets().values()))
    raw = {
        "symbol": "BTCUSDT",
        "markPrice": "67502.68519858",
        "indexPrice": "67490.10000000",
        "estimatedSettlePrice": "67480.22",
        "lastFundingRate": "0.00010000",
        "interestRate": "0.00010000",
        "nextFundingTime": 1722182400000,
        "time": 1722161166529,
    }
    unified = exchange.parse_funding_rate(raw, exchange.market("BTC/USDT:USDT"))
    rate = funding_rate_from_ccxt(unified)
    assert rate.rate == Decimal("0.0001") and rate.next_funding_ts == 1722182400000
    assert rate.mark_price == Decimal("67502.68519858") and rate.symbol == "BTC/USDT:USDT"


def test_leverage_tiers_rebuild_the_maintenance_amounts() -> None:
    tiers = [
        {"tier": n, "maxNotional": cap, "maxLeverage": lev, "maintenanceMarginRate": mmr}
        for n, (cap, lev, mmr) in enumerate([(50000, 125, 0.004), (250000, 100, 0.005), (1000000, 50, 0.01)], 1)
    ]
    table = bracket_table_from_ccxt("BTC/USDT:USDT", tiers)
    assert [b.cum for b in table.brackets] == [b.cum for b in BINANCE_USDM_BTCUSDT.brackets[:3]]


@pytest.mark.parametrize(
    ("field", "value"),
    [("contracts", "1e400"), ("contracts", "NaN"), ("entryPrice", "٣"), ("marginMode", "portfolio")],
)
def test_bad_position_fields_are_refused_by_name(field: str, value: str) -> None:
    parsed = case("response", "binance", "fetchPositions", "inverse positions")["parsedResponse"][0]
    parsed["info"].pop("positionAmt" if field == "contracts" else field, None)
    parsed[field] = value
    with pytest.raises(PerpPayloadError, match=field):
        position_from_ccxt(parsed)
