"""EmpiricalLatency: drawn round trips reproduce the measured quantiles, reproducibly by seed."""

import random

import pytest

from trading.latency import EmpiricalLatency, quantile_table


def _measured(n: int = 4000) -> list[int]:
    rng = random.Random(3)
    # a skewed round-trip distribution: 2 ms floor plus a lognormal tail
    return [2_000_000 + int(rng.lognormvariate(14.5, 0.6)) for _ in range(n)]


def _q(values: list[int], p: float) -> float:
    s = sorted(values)
    return s[round(p * (len(s) - 1))]


def test_round_trips_reproduce_measured_quantiles():
    data = _measured()
    model = EmpiricalLatency(quantile_table(data), quantile_table([v * 2 for v in data]), seed=11)
    places = [model.entry_ns(0) + model.response_ns(0) for _ in range(20_000)]
    cancels = [model.cancel_ns(0) + model.response_ns(0) for _ in range(20_000)]
    for p in (0.1, 0.5, 0.9, 0.99):
        assert _q(places, p) == pytest.approx(_q(data, p), rel=0.05)
        assert _q(cancels, p) == pytest.approx(2 * _q(data, p), rel=0.05)
    assert min(places) >= min(data) and max(places) <= max(data)


def test_same_seed_same_draws_other_seed_other_draws():
    table = quantile_table(_measured())
    a, b, c = (EmpiricalLatency(table, seed=s) for s in (5, 5, 6))
    draws = [[m.entry_ns(0) for _ in range(50)] for m in (a, b, c)]
    assert draws[0] == draws[1] and draws[0] != draws[2]


def test_response_is_half_the_fastest_round_trip_and_entries_never_negative():
    table = quantile_table(_measured())
    model = EmpiricalLatency(table)
    assert model.response_ns(0) == table[0] // 2
    assert min(model.entry_ns(0) for _ in range(5000)) >= 0


@pytest.mark.parametrize(
    ("args", "field"),
    [(([],), "place_ack"), (([5, 3],), "place_ack"), (([1, 2], [-1, 3]), "cancel_ack")],
)
def test_bad_tables_are_refused_by_field(args, field):
    with pytest.raises(ValueError, match=field):
        EmpiricalLatency(*args)


def test_quantile_table_endpoints_and_empty():
    assert quantile_table([7, 1, 4])[0] == 1 and quantile_table([7, 1, 4])[-1] == 7
    with pytest.raises(ValueError, match="samples"):
        quantile_table([])
