"""Whatever JSON a client sends as strategy params or risk limits, validation answers with
field errors (a 400) or accepts it: it never raises anything else (a 500)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.accounts.errors import FieldErrors
from apps.bots.services import bot_config_validate
from apps.exchanges.models import Market
from trading.risk import RiskLimits
from trading.strategies import STRATEGIES

MARKET = Market(
    venue="sim:alpha",
    symbol="BTC/USDT",
    base="BTC",
    quote="USDT",
    tick_size=Decimal("0.01"),
    lot_size=Decimal("0.0001"),
    min_notional=Decimal(0),
    maker_fee=Decimal("0.0001"),
    taker_fee=Decimal("0.0005"),
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(["0.001", "1e400", "-0", "NaN", "Infinity", "0x10", " 5 ", "widen", "pause"]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=6,
)


def _fields(strategy: str) -> list[str]:
    import dataclasses

    return [f.name for f in dataclasses.fields(STRATEGIES[strategy][0])]


def _documents(fields: list[str]):
    known = st.dictionaries(st.sampled_from(fields), json_values, max_size=len(fields))
    return known | st.dictionaries(st.text(max_size=8), json_values, max_size=3)


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
@given(data=st.data())
def test_any_params_give_field_errors_or_pass(strategy, data):
    params = data.draw(_documents(_fields(strategy)))
    try:
        bot_config_validate(strategy=strategy, params=params, risk={}, market=MARKET)
    except FieldErrors as exc:
        assert set(exc.errors) <= {"params", "strategy"} and exc.errors


@settings(max_examples=150, deadline=None, database=None)
@given(risk=_documents(list(RiskLimits.__dataclass_fields__)))
def test_any_risk_limits_give_field_errors_or_pass(risk):
    try:
        bot_config_validate(strategy="fixed_spread", params={"order_amount": "0.001"}, risk=risk, market=MARKET)
    except FieldErrors as exc:
        assert set(exc.errors) == {"risk"}
