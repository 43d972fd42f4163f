"""The number rule every trader input follows (trading/amounts.py)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from trading.amounts import AmountError, instrument_errors, plain_decimal, plain_float, plain_int
from trading.instruments import Instrument
from trading.risk import RiskLimits


@pytest.mark.parametrize(
    ("value", "expected"),
    [("0.5", Decimal("0.5")), (" 12 ", Decimal(12)), (".25", Decimal("0.25")), ("-3", Decimal(-3)),
     (0.001, Decimal("0.001")), (7, Decimal(7)), (Decimal("1.5"), Decimal("1.5"))],
)  # fmt: skip
def test_plain_decimals_and_finite_json_numbers_are_accepted(value, expected):
    assert plain_decimal(value) == expected


@pytest.mark.parametrize(
    ("value", "says"),
    [("1e30", "plain decimal"), ("1_000", "plain decimal"), ("\u0663", "plain decimal"), ("1,5", "plain decimal"),
     ("+1", "plain decimal"), ("0x10", "plain decimal"), ("NaN", "not finite"), ("-Infinity", "not finite"),
     (float("inf"), "not finite"), (Decimal("NaN"), "not finite"), (True, "boolean"), ([1], "list"),
     (1e30, "too large"), (10**400, "401-digit"), ("1" + "0" * 20, "too large"),
     ("0.0000000000000000001", "more than 18 decimals")],
)  # fmt: skip
def test_anything_else_is_refused_naming_value_and_what_is_accepted(value, says):
    with pytest.raises(AmountError) as info:
        plain_decimal(value)
    message = str(info.value)
    assert says in message and ("accepted" in message or "give a number" in message)


def test_model_floats_and_integers():
    assert plain_float("0.00000000000000000001") == 1e-20  # not stored as NUMERIC: any precision
    with pytest.raises(AmountError, match="at most 1e\\+15"):
        plain_float(1e16)
    assert plain_int(2**63 - 1) == 2**63 - 1
    with pytest.raises(AmountError, match="at most 9223372036854775807"):
        plain_int(2**63)
    with pytest.raises(AmountError, match="not an integer"):
        plain_int(3.0)


def test_amounts_and_quote_limits_fit_int64_on_the_instrument():
    inst = Instrument.create(symbol="BTC/USDT", tick_size="0.01", lot_size="0.00000001")
    ok = RiskLimits(max_order_size=Decimal("92233720368.54775807"), max_position_quote=Decimal("922337203.68"))
    assert instrument_errors(ok, inst) == {}
    bad = RiskLimits(max_order_size=Decimal("92233720368.54775808"), max_position_quote=Decimal("922337203.69"))
    errors = instrument_errors(bad, inst)
    assert "at most 92233720368.54775807 BTC (sizes in lots are 64-bit integers)" in errors["max_order_size"]
    assert "units of 0.0000000001 USDT; accepted: at most 922337203.6854775807 USDT" in errors["max_position_quote"]
