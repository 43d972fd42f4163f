"""The perpetual limits ``max_margin_usage`` and ``max_funding_cost`` (trading.perp_limits,
enforced by trading.perp_risk.PerpRisk.check) with worked numbers: the initial margin held after
an order against a fraction of the margin balance, and the funding paid against a cap; orders
that reduce the position always pass; bad values refused by field."""

from __future__ import annotations

from fractions import Fraction

import pytest

from tests.trading.test_perp_risk import P60K, fill, order, risk, state
from trading.config import ConfigError
from trading.instruments import Side
from trading.perp_risk import PerpRiskLimits
from trading.risk import NORMAL


def test_margin_usage_counts_the_position_and_working_orders_against_the_margin_balance():
    r = risk({"max_margin_usage": "0.5"})  # 5,000 USDT at 10x
    r.on_fill(fill(Side.BUY, P60K, 200))  # long 0.2 at 60,000, maker fee 2.4
    r.evaluate(1, NORMAL, 2 * P60K)
    assert r.margin_balance() == Fraction("4997.6")
    # 0.2 + 0.1 working + 0.1 more at 60,000 / 10 = 2,400 held: 48.02 % of 4,997.6, allowed
    assert r.check(order(Side.BUY, 100), state(position=200, working_buy=100)).allowed
    # 0.2 + 0.1 + 0.2 = 0.5 BTC: 3,000 held = 60.03 % of 4,997.6 > 50 %
    d = r.check(order(Side.BUY, 200), state(position=200, working_buy=100))
    assert not d.allowed and d.code == "max_margin_usage"
    assert "would hold 3000.00 USDT of initial margin, 60.03% of the margin balance 4997.60 USDT" in d.message
    assert "limit 50.00%" in d.message and "(with 0.1 contracts already working on that side)" in d.message
    # a loss on the mark shrinks the balance: at 55,000 the 0.2 long is down 1,000 -> 3,997.6,
    # and the 2,400 that fitted before is 60.04 % of it
    r.evaluate(2, NORMAL, 2 * 550_000)
    assert r.check(order(Side.BUY, 100), state(position=200, working_buy=100)).code == "max_margin_usage"
    # selling (reducing) always passes
    assert r.check(order(Side.SELL, 200), state(position=200, working_buy=100)).allowed


def test_funding_paid_up_to_the_cap_stops_orders_that_grow_the_position():
    r = risk({"max_funding_cost": "3"})
    r.on_fill(fill(Side.BUY, P60K, 500))  # long 0.5
    r.position.funding -= 2  # paid 2 USDT so far: below the cap
    assert r.check(order(Side.BUY, 100), state(position=500)).allowed
    r.position.funding -= 1  # 3 paid: the cap
    d = r.check(order(Side.BUY, 100), state(position=500))
    assert not d.allowed and d.code == "max_funding_cost"
    assert d.message == ("max_funding_cost: 3.00 USDT of funding paid reached the limit 3.00 USDT; only orders "
                         "that reduce the position are accepted")  # fmt: skip
    # reducing passes; so does a reduce-only order
    assert r.check(order(Side.SELL, 500), state(position=500)).allowed
    assert r.check(order(Side.SELL, 100, reduce_only=True), state(position=500)).allowed
    # funding received brings the net back under the cap
    r.position.funding += 1
    assert r.check(order(Side.BUY, 100), state(position=500)).allowed


@pytest.mark.parametrize(
    ("limits", "field", "accepted"),
    [
        ({"max_margin_usage": "1.5"}, "max_margin_usage", "1"),
        ({"max_margin_usage": "0"}, "max_margin_usage", "0"),
        ({"max_funding_cost": "-1"}, "max_funding_cost", "0"),
        ({"max_funding_cost": "abc"}, "max_funding_cost", None),
    ],
)
def test_bad_values_are_refused_by_field(limits, field, accepted):
    with pytest.raises(ConfigError) as refused:
        PerpRiskLimits.from_dict(limits)
    assert field in refused.value.errors
    text = refused.value.errors[field]
    assert repr(limits[field]) in text or str(limits[field]) in text
    if accepted is not None:
        assert accepted in text
