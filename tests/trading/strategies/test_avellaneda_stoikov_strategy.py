"""Avellaneda–Stoikov: reservation price and spread per the paper, inventory lean, clamps, estimation."""

from __future__ import annotations

import math
import random

import pytest

from trading.events import Timer, TradeTick
from trading.instruments import Side
from trading.strategies import build_strategy
from trading.strategies.avellaneda_stoikov import finite_horizon_quotes, infinite_horizon_quotes

from .support import INSTRUMENT, NS, make_ctx, prices, two_sided

# order_amount 0.01 = 10 lots, so q = position_lots / 10
PARAMS = {"order_amount": "0.01", "gamma": 0.01, "sigma": 1.0, "k": 1.5, "horizon": 100.0}
BOOK = two_sided(999_000, 1_001_000)  # mid 1,000,000 ticks = 10,000.00 quote


def strategy(**params):
    return build_strategy("avellaneda_stoikov", {**PARAMS, **params}, INSTRUMENT)


def test_quotes_match_the_paper_for_a_long_inventory() -> None:
    s = strategy()
    qs = s.on_event(Timer(NS), make_ctx(BOOK, NS, position=20))  # q = 2, tau = 100 s
    # r = 10000 - 2 * 0.01 * 1^2 * 100 = 9998
    assert s.reservation_price == pytest.approx(9998.0)
    # spread = 0.01 * 1 * 100 + (2 / 0.01) * ln(1 + 0.01 / 1.5) = 1 + 1.328904...
    assert s.optimal_spread == pytest.approx(1.0 + 200.0 * math.log(1.0 + 0.01 / 1.5))
    # bid 9998 - 1.164452 = 9996.835548 -> 999683 ticks (down); ask 9999.164452 -> 999917 (up)
    assert prices(qs.bids) == [999_683]
    assert prices(qs.asks) == [999_917]
    assert [q.qty for q in qs.all] == [10, 10]


def test_reservation_price_moves_against_inventory() -> None:
    reservations = {}
    for position in (-20, 0, 20):
        s = strategy()
        s.on_event(Timer(NS), make_ctx(BOOK, NS, position=position))
        reservations[position] = s.reservation_price
    assert reservations[0] == pytest.approx(10_000.0)
    assert reservations[20] < reservations[0] < reservations[-20]


def test_spread_shrinks_as_the_session_ends_and_does_not_depend_on_inventory() -> None:
    s = strategy()
    s.on_event(Timer(NS), make_ctx(BOOK, NS, position=30))
    early = s.optimal_spread
    s.on_event(Timer(76 * NS), make_ctx(BOOK, 76 * NS, position=0))  # tau = 25 s
    assert s.time_left(76 * NS) == pytest.approx(25.0)
    assert s.optimal_spread == pytest.approx(0.01 * 25 + 200 * math.log(1 + 0.01 / 1.5))
    assert s.optimal_spread < early


def test_session_restarts_after_the_horizon() -> None:
    s = strategy()
    s.on_event(Timer(NS), make_ctx(BOOK, NS))
    assert s.time_left(131 * NS) == pytest.approx(70.0)


def test_finite_horizon_formula_is_symmetric_around_reservation_price() -> None:
    r, spread, bid, ask = finite_horizon_quotes(100.0, -1.0, 0.1, 2.0, 1.5, 10.0)
    assert r == pytest.approx(100.0 + 0.1 * 4 * 10)
    assert spread == pytest.approx(0.1 * 4 * 10 + 20 * math.log(1 + 0.1 / 1.5))
    assert (bid + ask) / 2 == pytest.approx(r) and ask - bid == pytest.approx(spread)


def test_infinite_horizon_reservation_prices_follow_the_paper() -> None:
    gamma, sigma, k, q_max, s = 0.1, 2.0, 1.5, 5.0, 100.0
    g2s2 = gamma**2 * sigma**2
    omega = 0.5 * g2s2 * (q_max + 1) ** 2
    for q in (-3.0, 0.0, 2.0):
        r_a = s + math.log(1 + (1 - 2 * q) * g2s2 / (2 * omega - g2s2 * q * q)) / gamma
        r_b = s + math.log(1 + (-1 - 2 * q) * g2s2 / (2 * omega - g2s2 * q * q)) / gamma
        edge = math.log(1 + gamma / k) / gamma
        r, spread, bid, ask = infinite_horizon_quotes(s, q, gamma, sigma, k, q_max)
        assert bid == pytest.approx(r_b - edge) and ask == pytest.approx(r_a + edge)
        assert r == pytest.approx((r_a + r_b) / 2) and spread == pytest.approx(ask - bid)


def test_infinite_horizon_does_not_depend_on_sigma_and_survives_zero_sigma() -> None:
    a = infinite_horizon_quotes(100.0, 1.0, 0.1, 2.0, 1.5, 5.0)
    b = infinite_horizon_quotes(100.0, 1.0, 0.1, 0.0, 1.5, 5.0)
    assert a == pytest.approx(b)


def test_infinite_horizon_at_inventory_bound_quotes_asks_only() -> None:
    s = strategy(infinite_horizon=True, q_max=3.0)
    qs = s.on_event(Timer(NS), make_ctx(BOOK, NS, position=50))  # q = 5, capped at q_max 3
    assert qs.bids == () and len(qs.asks) == 1
    assert "inventory bound" in qs.reason
    qs = s.on_event(Timer(2 * NS), make_ctx(BOOK, 2 * NS, position=-50))
    assert len(qs.bids) == 1 and len(qs.asks) == 1


def test_infinite_horizon_strategy_leans_against_inventory() -> None:
    long_, short = strategy(infinite_horizon=True), strategy(infinite_horizon=True)
    long_.on_event(Timer(NS), make_ctx(BOOK, NS, position=30))
    short.on_event(Timer(NS), make_ctx(BOOK, NS, position=-30))
    assert long_.reservation_price < 10_000.0 < short.reservation_price


def test_spread_is_clamped_to_max_spread_around_the_model_centre() -> None:
    s = strategy(sigma=5.0, max_spread="0.001")  # model spread 25 + 1.33 > cap 10
    qs = s.on_event(Timer(NS), make_ctx(BOOK, NS))
    assert s.optimal_spread > 10.0
    bid, ask = qs.bids[0].price, qs.asks[0].price
    assert ask - bid in (1000, 1001)  # 10 quote = 1000 ticks, plus at most one tick of safe rounding
    assert "clamped" in qs.reason


def test_quotes_are_pulled_while_estimates_warm_up() -> None:
    s = build_strategy("avellaneda_stoikov", {"order_amount": "0.01"}, INSTRUMENT)
    qs = s.on_event(Timer(NS), make_ctx(BOOK, NS))
    assert qs.all == ()
    assert "sigma" in qs.reason and "k" in qs.reason


@pytest.mark.parametrize("volatility", [{"volatility_halflife": 600.0}, {"volatility_window": 1500}])
def test_online_sigma_and_k_converge_on_synthetic_market(volatility: dict) -> None:
    rng = random.Random(11)
    true_sigma, true_k, true_a = 0.05, 20.0, 1.0  # quote/sqrt(s), per quote unit, per second
    s = build_strategy(
        "avellaneda_stoikov",
        {"order_amount": "0.01", "intensity_window": 3000.0, **volatility},
        INSTRUMENT,
    )
    mid_ticks, t, next_trade = 1_000_000.0, 0.0, rng.expovariate(true_a)
    qs = None
    while t < 2000.0:
        t += 0.5
        mid_ticks += rng.gauss(0, true_sigma / 0.01 * math.sqrt(0.5))
        mid = round(mid_ticks)
        book = two_sided(mid - 1, mid + 1)  # integer mid
        while next_trade <= t:
            distance = round(rng.expovariate(true_k) / 0.01)  # ticks
            side = Side.BUY if rng.random() < 0.5 else Side.SELL
            price = mid + distance if side is Side.BUY else mid - distance
            s.on_event(TradeTick(int(next_trade * NS), price, 1, side), make_ctx(book, int(next_trade * NS)))
            next_trade += rng.expovariate(true_a)
        qs = s.on_event(Timer(int(t * NS)), make_ctx(book, int(t * NS)))
    sigma, k = s.parameters()
    assert sigma == pytest.approx(true_sigma, rel=0.1)
    assert k == pytest.approx(true_k, rel=0.15)
    assert s.arrival_rate is not None
    assert qs is not None and len(qs.bids) == 1 and len(qs.asks) == 1


def test_risk_aversion_is_scaled_to_price_so_the_spread_fraction_is_the_same_on_any_price() -> None:
    # Same relative volatility (sigma / mid) and the same k x mid at 10,000 and at 100: the
    # default risk aversion (no gamma) gives the same spread as a fraction of the mid.
    from trading.strategies.avellaneda_stoikov import AvellanedaStoikovConfig

    fractions = []
    for mid_ticks, scale in ((1_000_000, 1.0), (10_000, 0.01)):
        params = {"order_amount": "0.01", "sigma": 1.0 * scale, "k": 1.5 / scale, "horizon": 100.0}
        s = build_strategy("avellaneda_stoikov", params, INSTRUMENT)
        s.on_event(Timer(NS), make_ctx(two_sided(mid_ticks - 1000, mid_ticks + 1000), NS))
        fractions.append(s.optimal_spread / (mid_ticks / 100))
    assert fractions[0] == pytest.approx(fractions[1])
    cfg = AvellanedaStoikovConfig(order_amount=1)  # type: ignore[arg-type]
    assert cfg.gamma_at(10_000.0) == pytest.approx(1.0 / 10_000.0)  # risk_aversion 1 per order value


def test_an_explicit_gamma_still_overrides_risk_aversion() -> None:
    a = strategy(risk_aversion=50.0)  # PARAMS give gamma 0.01: risk_aversion is not used
    b = strategy()
    a.on_event(Timer(NS), make_ctx(BOOK, NS))
    b.on_event(Timer(NS), make_ctx(BOOK, NS))
    assert a.optimal_spread == pytest.approx(b.optimal_spread)


def test_spread_preview_warns_when_the_model_spread_would_be_capped() -> None:
    from trading.strategies import validate_params
    from trading.strategies.avellaneda_stoikov import spread_preview

    defaults = validate_params("avellaneda_stoikov", {"order_amount": "0.001"})
    # BTC/USDT-like: mid 60,000, sigma 8 USDT/sqrt(s), k 0.1 per USDT
    fine = spread_preview(defaults, 60_000.0, 8.0, 0.1)
    assert not fine["capped"] and fine["spread"] < fine["cap"] and fine["spread"] > 20.0
    old_default = validate_params("avellaneda_stoikov", {"order_amount": "0.001", "gamma": 0.1})
    capped = spread_preview(old_default, 60_000.0, 8.0, None)  # lower bound without k: already capped
    assert capped["capped"] and capped["spread"] == pytest.approx(0.1 * 64 * 3600)
